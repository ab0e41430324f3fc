"""Figure 1 — crawl efficiency: requests per stored product and browser renders of a full sync of
every year, per shop, against the minimum the shop's layout allows.

    python -m bench.crawl_efficiency [--quick]

Each shop of the replica (20,000 products a shop; `--quick`: 120) is crawled once, every year,
with the real spider into a fresh database, politeness off (AutoThrottle off, 16 requests at a
time: request counts do not depend on it, and figures 2 and 8 reuse these runs). "Requests" are
Scrapy's `downloader/request_count` without robots.txt: every page the crawler asked for, a
browser render counting as one. The replica's own count (what the shop saw, browser
sub-requests included) is shown beside it.

The minimum is computed from the replica's catalog (tests/replica/layout.py), not from the
crawl — see `minimum()`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.constants import HO, OS, SHORT, UNTHROTTLED, VENDORS
from bench.crawls import Crawl, replica_control, scrapy_crawl
from bench.report import Row, log, markdown
from bench.session import Session, standalone
from tests.replica.catalog import ShopCatalog, generate
from tests.replica.shops.ornament_shop import PER_PAGE as OS_PER_PAGE

FIGURE = "1"


@dataclass(frozen=True)
class Minimum:
    """The fewest requests a crawl of every year of a shop can make."""

    index: int  # the year index
    listing: int  # year lists: view-all pages, Next pages, segment pages
    products: int  # distinct product pages linked from the year lists
    redirects: int  # of those, listed at a URL that answers 301 to the product page
    renders: int  # listing pages that need a browser (HO year grids)

    @property
    def requests(self) -> int:
        return self.index + self.listing + self.products + self.redirects


def minimum(shop: ShopCatalog) -> Minimum:
    """One request per index page, per listing page and per product page (plus one per redirect
    hop to reach it), for a crawl that must find every product of every year the index lists:

    * index: the year index, 1.
    * listing, per year list the index links:
      - HooH (3dcart): a plain year is one page in view-all mode (`?viewall=1`, any size); a
        segmented year is its tile page plus its View All sub-category in view-all mode (1), or,
        without one, each segment in view-all mode.
      - OS (BigCommerce, no view-all): ceil(products / 12) Next pages, at least 1 (an empty
        year still answers one page).
      - HO (3dcart, JS grid): one view-all grid per year list (the regular lists and the 1994
        miniature list), each a browser render.
    * products: each product linked from those lists once (a product in several lists — View
      All and its segment, featured blocks — is one page), plus one request for each listed
      URL that redirects to the product (a retired product's 301 to its category is one request:
      the category was fetched already).
    """
    years = shop.year_categories()
    listing = 0
    listed: set[int] = set()
    for category in years:
        if shop.vendor == OS:
            listing += max(1, math.ceil(category.count / OS_PER_PAGE))
        elif shop.vendor == HO or not category.children:
            listing += 1
        else:  # a segmented HooH year
            children = [shop.category(key) for key in category.children]
            view_all = [child for child in children if child.role == "view_all"]
            listing += 1 + (1 if view_all else len(children))
        for key in (category.key, *category.children):
            listed.update(shop.category(key).indices())
        listed.update(category.featured)
    redirects = sum(
        1 for index in listed if shop.product(index).listed_path != shop.product(index).path
    )
    renders = len(years) if shop.vendor == HO else 0
    return Minimum(1, listing, len(listed), redirects, renders)


def full_sync(
    session: Session,
    vendor: str,
    size: int | None = None,
    label: str = "",
    settings: dict[str, str] | None = None,
) -> Crawl:
    """A full sync of every year of `vendor` on the replica of `size`, measured; cached (by
    vendor, size and label: give a label with `settings`)."""
    size = size or session.size
    key = ("full_sync", vendor, size, label)
    if key not in session.cache:
        process = session.replica(size)
        origin = process.base_urls[vendor]
        replica_control(origin, "reset", {})
        database = session.services.scratch_database()
        log(f"full sync of {vendor}, {size:,} products{' (' + label + ')' if label else ''}")
        crawl = scrapy_crawl(
            vendor,
            database,
            session.work,
            origin=origin,
            settings={**UNTHROTTLED, **(settings or {})},
            label=label or f"full-{size}",
        )
        crawl.shop_stats = replica_control(origin, "stats")
        crawl.stored_products = session.services.count_products(database, vendor)
        session.services.drop(database)
        session.cache[key] = crawl
        log(
            f"  {crawl.stored_products:,} stored, {crawl.requests:,} requests, "
            f"{crawl.renders} renders, {crawl.wall_seconds:.0f} s, {crawl.cpu_seconds:.0f} CPU-s"
        )
    return session.cache[key]


def measure(session: Session) -> list[Row]:
    catalog = generate(1, session.size)
    rows, details = [], []
    for vendor in VENDORS:
        crawl = full_sync(session, vendor)
        least = minimum(catalog[vendor])
        shop = crawl.shop_stats
        shop_total = shop["total"] - shop["by_kind"].get("robots", 0)
        browser_side = sum(shop["by_kind"].get(kind, 0) for kind in ("asset", "ajax"))
        extra = crawl.requests - least.requests
        renders_ok = crawl.renders == least.renders
        met = extra == 0 and renders_ok and crawl.stat("retry/count") == 0
        rows.append(
            Row(
                FIGURE,
                f"{SHORT[vendor]} full sync ({catalog.size:,} products): requests per stored "
                f"product; browser renders",
                f"{crawl.requests / crawl.stored_products:.4f} ({crawl.requests:,} for "
                f"{crawl.stored_products:,}); {crawl.renders} renders",
                f"minimum {least.requests / crawl.stored_products:.4f} ({least.requests:,}); "
                f"{least.renders} renders",
                f"{'+' if extra >= 0 else ''}{extra:,} requests vs minimum; goal = minimum, "
                f"renders {'only HO grids' if vendor == HO else '0'}",
                met,
            )
        )
        details.append(
            [
                SHORT[vendor],
                f"{crawl.stored_products:,}",
                f"{crawl.requests:,}",
                f"{least.requests:,} = {least.index} + {least.listing} + {least.products:,} + "
                f"{least.redirects}",
                f"{extra:+,}",
                f"{crawl.renders} / {least.renders}",
                f"{shop_total:,}" + (f" ({browser_side} by the browser)" if browser_side else ""),
                f"{crawl.stat('retry/count')}",
                f"{crawl.wall_seconds:.0f} s",
            ]
        )
    session.detail(
        FIGURE,
        "Crawl efficiency per shop",
        markdown(
            [
                "shop",
                "stored",
                "requests",
                "minimum = index + listing + products + redirects",
                "excess",
                "renders / grids",
                "requests the shop saw",
                "retries",
                "wall",
            ],
            details,
        )
        + "\n\nRequests exclude robots.txt (one per crawl). The minimum's formula is under "
        "*How the figures are made*.",
    )
    return rows


if __name__ == "__main__":
    standalone(measure, __doc__.splitlines()[0])
