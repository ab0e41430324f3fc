"""What changes while a replica runs: product overrides, products taken off or put back on the
listings, what a listing tile shows, throttling, latency, fault plans, robots.txt lines, a
broken theme, request counts and the request log.

One `ShopState` per shop origin. The generated catalog stays immutable; an override is a small
dict of field changes applied whenever the product is read, so the control API can change a
price in a 20,000-product catalog without touching anything else.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from .catalog import ShopCatalog
from .faults import Fault, FaultPlan
from .models import Product


@dataclass(frozen=True)
class Throttle:
    """Answer `status` with Retry-After to every `every`-th request and to the next `burst`."""

    every: int | None = None
    burst: int = 0
    status: int = 429
    retry_after: int = 1

    def as_json(self) -> dict[str, Any]:
        return {
            "every": self.every,
            "burst": self.burst,
            "status": self.status,
            "retry_after": self.retry_after,
        }


# What a broken theme can break (POST /__replica__/theme): product pages that show no price
# anywhere, no availability text, or an empty name; listings cut to their first page.
THEME_BREAKS = ("price", "availability_text", "name", "listing")


@dataclass(frozen=True)
class Theme:
    """A theme update gone wrong, as the shop's pages show it; the catalog (the truth the
    control API reports) is unchanged. `empty_years`: the shop emptied those years' listings
    (a genuine removal, not a break)."""

    broken: frozenset[str] = frozenset()
    first_page: int = 0  # products on a listing's first page (the shop's page size)
    empty_years: frozenset[int] = frozenset()

    def shown(self, product: Product) -> Product:
        changes: dict[str, Any] = {}
        if "price" in self.broken:
            changes.update(price=None, regular_price=None, msrp=None)
        if "availability_text" in self.broken:
            changes["availability_text"] = ""
        if "name" in self.broken:
            changes["raw_name"] = ""
        return replace(product, **changes) if changes else product

    def as_json(self) -> dict[str, Any]:
        return {"broken": sorted(self.broken), "empty_years": sorted(self.empty_years)}


class ShopState:
    def __init__(self, catalog: ShopCatalog, latency_ms: int = 0, throttle: Throttle | None = None):
        self.catalog = catalog
        self._default_latency_ms = latency_ms
        self._default_throttle = throttle or Throttle()
        self._lock = threading.Lock()
        self.overrides: dict[int, dict[str, Any]] = {}
        self.latency_ms = latency_ms
        self.throttle = self._default_throttle
        self._burst_left = self.throttle.burst
        self._seen = 0
        self._by_kind: Counter[str] = Counter()
        self._by_status: Counter[str] = Counter()
        self._throttled = 0
        self._in_flight = 0
        self._max_in_flight = 0
        self.fault_plan: FaultPlan | None = None  # the shop's next requests
        self.path_plans: dict[str, FaultPlan] = {}  # the requests of one path
        self.robots_disallow: tuple[str, ...] = ()  # added to robots.txt
        self._faulted: Counter[str] = Counter()
        self.theme = Theme()
        self.hidden: set[int] = set()  # products off every listing (removed from the shop)
        self.tiles: dict[int, dict[str, Any]] = {}  # what a product's listing tile shows instead
        self._log: list[tuple[str, str]] = []  # (path kind, path with query) of each request

    # --- products ---------------------------------------------------------------------------

    def product(self, index: int) -> Product:
        product = self.catalog.product(index)
        changes = self.overrides.get(index)
        return replace(product, **changes) if changes else product

    def by_id(self, product_id: int | str) -> Product | None:
        product = self.catalog.by_id(product_id)
        return None if product is None else self.product(product.index)

    def by_path(self, path: str) -> Product | None:
        product = self.catalog.by_path(path)
        return None if product is None else self.product(product.index)

    def listing(self, key: str, start: int = 0, stop: int | None = None) -> list[Product]:
        """The products a listing shows at positions [start, stop), as the theme shows it and
        as their tiles show them (`tile`)."""
        category, theme = self.catalog.categories[key], self.theme
        if category.year in theme.empty_years:
            return []
        if "listing" in theme.broken:
            stop = theme.first_page if stop is None else min(stop, theme.first_page)
        if self.hidden:
            indices = [i for i in category.indices() if i not in self.hidden][start:stop]
        else:
            indices = category.indices(start, stop)
        return [self.tile(i) for i in indices]

    def listed_count(self, key: str) -> int:
        """How many products the listing has (those taken off it not counted)."""
        category = self.catalog.categories[key]
        if not self.hidden:
            return category.count
        return sum(1 for index in category.indices() if index not in self.hidden)

    def tile(self, index: int) -> Product:
        """A product as its listing tile shows it: `price` (then not on sale), or `broken`
        (the tile's price markup missing, quirk "broken_tile")."""
        product, changes = self.product(index), self.tiles.get(index)
        if not changes:
            return product
        if "price" in changes:
            product = replace(product, price=changes["price"], regular_price=None)
        if changes.get("broken"):
            product = replace(product, quirks=product.quirks | {"broken_tile"})
        return product

    def set_listed(self, index: int, listed: bool) -> None:
        with self._lock:
            (self.hidden.discard if listed else self.hidden.add)(index)

    def set_tile(self, index: int, changes: dict[str, Any]) -> None:
        with self._lock:
            self.tiles[index] = {**self.tiles.get(index, {}), **changes}

    def shown(self, product: Product) -> Product:
        """A product as its page shows it under the current theme."""
        return self.theme.shown(product)

    def override(self, index: int, changes: dict[str, Any]) -> Product:
        with self._lock:
            merged = {**self.overrides.get(index, {}), **changes}
            self.overrides[index] = merged
        return self.product(index)

    # --- throttling, latency, stats -----------------------------------------------------------

    def set_throttle(self, throttle: Throttle) -> None:
        with self._lock:
            self.throttle = throttle
            self._burst_left = throttle.burst
            self._seen = 0

    def take_throttle(self) -> Throttle | None:
        """Count one shop request; the throttle to answer it with, or None to serve it."""
        with self._lock:
            self._seen += 1
            throttle = self.throttle
            hit = False
            if self._burst_left > 0:
                self._burst_left -= 1
                hit = True
            elif throttle.every and self._seen % throttle.every == 0:
                hit = True
            if hit:
                self._throttled += 1
            return throttle if hit else None

    def set_faults(self, plan: FaultPlan | None, path: str | None = None) -> None:
        """The fault plan of the shop's next requests, or of one path; None removes it."""
        with self._lock:
            if path is None:
                self.fault_plan = plan
            elif plan is None:
                self.path_plans.pop(path, None)
            else:
                self.path_plans[path] = plan

    def take_fault(self, path: str) -> Fault | None:
        """The fault answering this request (its path's plan first), or None."""
        with self._lock:
            plan = self.path_plans.get(path)
            fault = plan.take() if plan is not None else None
            if fault is None and self.fault_plan is not None:
                fault = self.fault_plan.take()
            if fault is not None:
                self._faulted[fault.kind] += 1
            return fault

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        """Count a request in flight while it is answered (stats: most at once)."""
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1

    def record(self, kind: str, status: int, path: str = "") -> None:
        with self._lock:
            self._by_kind[kind] += 1
            self._by_status[str(status)] += 1
            self._log.append((kind, path))

    def requests(self, kind: str | None = None) -> list[str]:
        """The paths requested (with their query), in order; of one path kind, or all."""
        with self._lock:
            return [path for logged, path in self._log if kind is None or logged == kind]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total": sum(self._by_kind.values()),
                "by_kind": dict(self._by_kind),
                "by_status": dict(self._by_status),
                "throttled": self._throttled,
                "max_in_flight": self._max_in_flight,
                "faulted": dict(self._faulted),
            }

    def reset(self) -> None:
        """Back to the state the replica started with: no overrides, no counts."""
        with self._lock:
            self.overrides.clear()
            self.latency_ms = self._default_latency_ms
            self.throttle = self._default_throttle
            self._burst_left = self.throttle.burst
            self._seen = 0
            self._by_kind.clear()
            self._by_status.clear()
            self._throttled = 0
            self._max_in_flight = self._in_flight
            self.fault_plan = None
            self.path_plans.clear()
            self.robots_disallow = ()
            self._faulted.clear()
            self.theme = Theme()
            self.hidden.clear()
            self.tiles.clear()
            self._log.clear()
