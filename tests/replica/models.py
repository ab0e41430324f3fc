"""The replica's data model: products, categories, and the item a spider must yield.

Everything here is plain, immutable data. `Product` is what the replica renders; its
`expected()` is the ground truth of contract §C2 for that product page, or None when a spider
must not yield an item (deleted, soft-404, unreadable).
"""

from __future__ import annotations

import bisect
import itertools
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import Any

HOOH = "hookedonhallmark_com"
OS = "ornament_shop_com"
HO = "hallmark_ornaments_com"
VENDORS: tuple[str, ...] = (HOOH, OS, HO)

AVAILABLE, PREORDER, UNAVAILABLE = "available", "preorder", "unavailable"
REGULAR, MINIATURE = "regular", "miniature"

# Product.status: how the product URL answers.
STATUS_OK = "ok"  # 200, a normal product page
STATUS_GONE = "gone"  # 404 page (deleted product still linked from a listing)
STATUS_SOFT_404 = "soft_404"  # 200 page saying the item is not available, no structured data
STATUS_TO_CATEGORY = "to_category"  # 301 to its category (retired product)

# Product.expect: what a spider must do with the product page.
EXPECT_ITEM = "item"  # yield exactly `expected()`
EXPECT_GONE = "gone"  # no item: mark the product gone / skip, no crash
EXPECT_SKIP = "skip"  # no item: structured data broken and no name; report and skip

EDGE_CASES: tuple[str, ...] = tuple(f"E{number}" for number in range(1, 27))


def clean_name(raw: str) -> str:
    """A name as a spider must report it: NFC, whitespace (incl. no-break space) collapsed."""
    return " ".join(unicodedata.normalize("NFC", raw).split())


def clean_sku(raw: str | None) -> str | None:
    text = (raw or "").strip().upper()
    return text or None


@dataclass(frozen=True)
class ExpectedItem:
    """One item of contract §C2, with absolute URLs for one replica origin."""

    vendor: str
    vendor_product_id: str | None
    sku: str | None
    name: str
    price: Decimal | None
    regular_price: Decimal | None
    currency: str
    availability: str
    availability_text: str | None
    release_year: int
    brand: str
    link: str
    image_url: str | None
    series: str | None
    series_number: int | None
    artist: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def as_json(self) -> dict[str, Any]:
        """As in a feed export: Decimals written as strings."""
        return {
            key: str(value) if isinstance(value, Decimal) else value
            for key, value in asdict(self).items()
        }


@dataclass(frozen=True)
class Product:
    """One listing of one shop, as the replica renders it."""

    vendor: str
    index: int  # position in the shop's catalog, 0-based
    product_id: int  # 3dcart catalogid / BigCommerce product_id
    category: str  # key of the category that owns it (breadcrumb, hidden category_id)
    year: int  # year of that category = the release year a spider must report
    kind: str  # regular | miniature
    raw_name: str  # the name exactly as written into the page (may hold NFD, U+00A0)
    raw_sku: str | None  # the SKU exactly as shown (may be lower-case, padded, empty)
    price: Decimal | None  # what a buyer pays; None = "Call for pricing" / $0.00
    regular_price: Decimal | None  # the pre-sale price when on sale, else None
    msrp: Decimal | None  # a retail-price / MSRP block on a page not on sale
    availability: str
    availability_text: str
    series: str | None  # stated on the page (name, description or labelled row)
    series_number: int | None
    artist: str | None  # stated on the page
    description: str
    path: str  # canonical path, e.g. "/2019-Frosty-Friends-QX1234_p_24813.html"
    listed_path: str  # path the listings link to (differs when it redirects)
    image_path: str | None
    status: str = STATUS_OK
    expect: str = EXPECT_ITEM
    note: str | None = None  # what a spider is expected to do, for special products
    quirks: frozenset[str] = frozenset()
    edge_cases: tuple[str, ...] = ()
    retail_price: Decimal | None = None  # Hallmark retail price, used for price-prefixed SKUs
    # The ornament it is a listing of, equal at every shop (the test truth of ornament linking).
    ornament: str | None = None

    @property
    def name(self) -> str:
        return clean_name(self.raw_name)

    @property
    def sku(self) -> str | None:
        return clean_sku(self.raw_sku)

    @property
    def on_sale(self) -> bool:
        return self.regular_price is not None

    @property
    def vendor_product_id(self) -> str:
        return str(self.product_id)

    def expected(self, origin: str) -> ExpectedItem | None:
        """The item a spider must yield from this product page, or None (see `expect`)."""
        if self.expect != EXPECT_ITEM:
            return None
        return ExpectedItem(
            vendor=self.vendor,
            vendor_product_id=self.vendor_product_id,
            sku=self.sku,
            name=self.name,
            price=self.price,
            regular_price=self.regular_price,
            currency="USD",
            availability=self.availability,
            availability_text=clean_name(self.availability_text) or None,
            release_year=self.year,
            brand="Hallmark",
            link=origin + self.path,
            image_url=origin + self.image_path if self.image_path else None,
            series=self.series,
            series_number=self.series_number,
            artist=self.artist,
        )


@dataclass(frozen=True)
class Category:
    """A category page. `members` are runs of product indices, listed in this order."""

    key: str
    catid: int
    name: str
    path: str
    role: str  # index | year | segment | view_all | series | other | brand
    year: int | None = None
    kind: str | None = None  # regular | miniature | None (mixed or not a year)
    parent: str | None = None
    children: tuple[str, ...] = ()
    members: tuple[Sequence[int], ...] = ()
    featured: tuple[int, ...] = ()
    quirks: frozenset[str] = frozenset()

    @cached_property
    def _offsets(self) -> list[int]:
        return list(itertools.accumulate((len(run) for run in self.members), initial=0))

    @property
    def count(self) -> int:
        return self._offsets[-1]

    def indices(self, start: int = 0, stop: int | None = None) -> list[int]:
        """Product indices at listing positions [start, stop)."""
        stop = self.count if stop is None else min(stop, self.count)
        found: list[int] = []
        position = max(start, 0)
        while position < stop:
            run_number = bisect.bisect_right(self._offsets, position) - 1
            run = self.members[run_number]
            offset = position - self._offsets[run_number]
            take = min(len(run) - offset, stop - position)
            found.extend(run[offset : offset + take])
            position += take
        return found


@dataclass(frozen=True)
class PageCase:
    """An edge case that lives on a page rather than on one product."""

    edge_case: str
    path: str
    note: str


@dataclass(frozen=True)
class FillBlock:
    """A run of generated products: catalog indices [start, start+count) in one category."""

    start: int
    count: int
    category: str
    year: int
    kind: str
    slot_start: int  # ornament slot of the first product within (year, kind)


@dataclass(frozen=True)
class FixtureSpec:
    """A hand-written product that exercises edge cases; see fixtures.py."""

    category: str
    name: str
    sku: str | None
    price: str | None
    regular_price: str | None = None
    msrp: str | None = None
    availability: str = AVAILABLE
    availability_text: str | None = None
    kind: str = REGULAR
    series: str | None = None
    series_number: int | None = None
    artist: str | None = None
    description: str | None = None
    status: str = STATUS_OK
    expect: str = EXPECT_ITEM
    note: str | None = None
    slug: str | None = None  # overrides the generated slug (OS URL forms)
    listed_slug: str | None = None  # OS: an old URL that 301s to the product
    featured: bool = False
    also_in: tuple[str, ...] = ()  # further categories listing it (series categories)
    quirks: frozenset[str] = frozenset()
    edge_cases: tuple[str, ...] = field(default_factory=tuple)
