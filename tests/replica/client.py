"""A handle on a running replica: its origins, its ground truth, and its control API.

    replica.base_urls["hookedonhallmark_com"]           # 'http://127.0.0.1:40571'
    replica.url("ornament_shop_com", "/hallmark-ornaments-by-year.html")
    replica.expected_items("hallmark_ornaments_com")    # [ExpectedItem, ...] of §C2
    replica.set_product("ornament_shop_com", "1036", price="12.50")
    replica.throttle("hookedonhallmark_com", every=3)   # None = all three shops
    replica.faults("ornament_shop_com", {"kind": "reset"}, path="/some-product/")
    replica.disallow("ornament_shop_com", "/some-product/")   # a robots.txt line
    replica.theme("ornament_shop_com", "price", "listing")      # a broken theme; () restores
    replica.stats("hookedonhallmark_com")["by_kind"]["product"]
    replica.requests("ornament_shop_com", "product")   # the product pages requested, in order
    replica.set_product("ornament_shop_com", "1036", listed=False)   # off the shop, page gone
    replica.reset()

The Python catalog (`replica.catalog`) is the generated ground truth; control-API overrides
live only in the server, so `live_catalog()` reads the truth including them.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from .catalog import Catalog, ShopCatalog, generate
from .models import VENDORS, ExpectedItem, Product
from .process import ReplicaProcess

CONTROL = "/__replica__"


class ReplicaError(RuntimeError):
    """The control API refused a request."""


@dataclass
class Replica:
    base_urls: dict[str, str]
    catalog: Catalog
    process: ReplicaProcess | None = None

    @classmethod
    def attach(cls, process: ReplicaProcess) -> Replica:
        seed = int(process.options.get("seed", 1))
        size = process.options.get("size", "small")
        return cls(dict(process.base_urls), generate(seed, size), process)

    # --- ground truth -------------------------------------------------------------------------

    def url(self, vendor: str, path: str = "/") -> str:
        return self.base_urls[vendor] + path

    def shop(self, vendor: str) -> ShopCatalog:
        return self.catalog[vendor]

    def product_url(self, product: Product) -> str:
        return self.base_urls[product.vendor] + product.listed_path

    def expected_items(self, vendor: str, years: set[int] | None = None) -> list[ExpectedItem]:
        """What a crawl of `vendor` (or of `years`) must yield, without overrides."""
        return self.catalog[vendor].expected_items(self.base_urls[vendor], years)

    def live_catalog(
        self, vendor: str, offset: int = 0, limit: int | None = None
    ) -> dict[str, Any]:
        """GET /__replica__/catalog: the ground truth with control-API overrides applied."""
        query = f"?offset={offset}" + (f"&limit={limit}" if limit is not None else "")
        return self.control(vendor, "GET", "/catalog" + query)

    # --- control API --------------------------------------------------------------------------

    def control(
        self, vendor: str, method: str, endpoint: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url(vendor, CONTROL + endpoint),
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            with error:
                detail = error.read().decode(errors="replace")
            raise ReplicaError(f"{method} {endpoint} on {vendor}: {error.code} {detail}") from None

    def set_product(
        self, vendor: str, vendor_product_id: int | str, **changes: Any
    ) -> dict[str, Any]:
        """Change a product: price, regular_price, msrp (decimal strings or None),
        availability, availability_text, name, sku, gone; how the listings show it: listed
        (False: off every listing, its page deleted; True: back), tile_price, tile_broken
        (its tile shows another price, or none; its page unchanged). Returns its record."""
        return self.control(vendor, "POST", f"/products/{vendor_product_id}", changes)

    def _each(self, vendor: str | None) -> tuple[str, ...]:
        return VENDORS if vendor is None else (vendor,)

    def throttle(
        self,
        vendor: str | None = None,
        *,
        every: int | None = None,
        burst: int = 0,
        status: int = 429,
        retry_after: int = 1,
    ) -> None:
        """Throttle one shop (or all): every Nth request and/or the next `burst` requests."""
        body = {"every": every, "burst": burst, "status": status, "retry_after": retry_after}
        for name in self._each(vendor):
            self.control(name, "POST", "/throttle", body)

    def faults(
        self, vendor: str, *faults: dict[str, Any], path: str | None = None, skip: int = 0
    ) -> dict[str, Any]:
        """Hostile answers (tests/replica/faults.py) for the shop's next requests after `skip`,
        or for one path; each fault e.g. {"kind": "429", "retry_after": 120, "times": 1}.
        No faults switches them off."""
        body = {"path": path, "skip": skip, "faults": list(faults)}
        return self.control(vendor, "POST", "/faults", body)

    def disallow(self, vendor: str, *paths: str) -> None:
        """Add `Disallow:` lines for these paths to the shop's robots.txt."""
        self.control(vendor, "POST", "/robots", {"disallow": list(paths)})

    def theme(self, vendor: str, *broken: str, empty_years: tuple[int, ...] = ()) -> None:
        """Break the shop's theme: "price" (product pages show no price anywhere),
        "availability_text", "name" (empty), "listing" (cut to its first page); and/or empty
        the listings of `empty_years`. No arguments restore the shop's own theme."""
        body = {"broken": list(broken), "empty_years": list(empty_years)}
        self.control(vendor, "POST", "/theme", body)

    def set_latency(self, milliseconds: int, vendor: str | None = None) -> None:
        for name in self._each(vendor):
            self.control(name, "POST", "/latency", {"ms": milliseconds})

    def stats(self, vendor: str) -> dict[str, Any]:
        return self.control(vendor, "GET", "/stats")

    def requests(self, vendor: str, kind: str | None = None) -> list[str]:
        """The paths (with their query) the shop was asked for since its last reset, in order;
        of one path kind (`product`, `category`, …) or all."""
        query = f"?kind={kind}" if kind else ""
        return self.control(vendor, "GET", "/requests" + query)["paths"]

    def reset(self, vendor: str | None = None) -> None:
        """Drop overrides, request counts, throttling and latency changes."""
        for name in self._each(vendor):
            self.control(name, "POST", "/reset")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
