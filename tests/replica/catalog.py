"""The ground truth: `generate(seed, size)` gives every shop's catalog, products made lazily.

    >>> from tests.replica.catalog import generate
    >>> catalog = generate(seed=1, size="small")
    >>> shop = catalog["hookedonhallmark_com"]
    >>> product = shop.product(0)
    >>> product.expected("http://127.0.0.1:8001")  # the §C2 item a spider must yield

Product i of a shop is derived from (seed, shop, i) when first asked for, so a 20,000-product
catalog is ready in milliseconds and only the pages actually requested are ever built.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .layout import LARGE_SIZE, SMALL_SIZE, ShopLayout, build_layout
from .models import (
    EDGE_CASES,
    EXPECT_ITEM,
    OS,
    VENDORS,
    Category,
    ExpectedItem,
    Product,
)
from .ornaments import ornament
from .products import IdMap, from_fixture, from_ornament

SIZES = {"small": SMALL_SIZE, "large": LARGE_SIZE}


def parse_size(value: int | str) -> int:
    """'small' → 60, 'large' → 20000, '250' → 250."""
    if isinstance(value, int):
        return value
    if value in SIZES:
        return SIZES[value]
    if value.isdigit():
        return int(value)
    raise ValueError(f"size must be 'small', 'large' or a number of products, not {value!r}")


class ShopCatalog:
    """One shop's products and categories for one (seed, size)."""

    def __init__(self, layout: ShopLayout) -> None:
        self.layout = layout
        self.vendor = layout.vendor
        self.seed = layout.seed
        self.size = layout.size
        self.categories: dict[str, Category] = layout.categories
        self.ids = IdMap.create(layout.seed, layout.vendor, layout.size)
        self._fill_starts = [block.start for block in layout.fill_blocks]
        self._by_catid = {category.catid: category for category in self.categories.values()}
        self._by_path = {category.path: category for category in self.categories.values()}
        self.product = lru_cache(maxsize=16384)(self._build)
        self._paths: dict[str, int] | None = None
        self._paths_lock = threading.Lock()

    def __len__(self) -> int:
        return self.size

    def _build(self, index: int) -> Product:
        if not 0 <= index < self.size:
            raise IndexError(f"{self.vendor} has no product {index}")
        product_id = self.ids.to_id(index)
        spec = self.layout.fixtures_at.get(index)
        if spec is not None:
            return from_fixture(
                self.vendor, index, product_id, spec, self.categories[spec.category]
            )
        block = self.layout.fill_blocks[bisect.bisect_right(self._fill_starts, index) - 1]
        slot = block.slot_start + index - block.start
        made = ornament(self.seed, block.year, block.kind, slot)
        return from_ornament(self.vendor, self.seed, index, product_id, block, made)

    def products(self, start: int = 0, stop: int | None = None) -> Iterator[Product]:
        for index in range(start, self.size if stop is None else min(stop, self.size)):
            yield self.product(index)

    def by_id(self, product_id: int | str) -> Product | None:
        try:
            index = self.ids.to_index(int(product_id))
        except ValueError:
            return None
        return None if index is None else self.product(index)

    def by_path(self, path: str) -> Product | None:
        """The product whose canonical or listed path is `path` (OS slugs carry no id)."""
        if self._paths is None:
            with self._paths_lock:
                if self._paths is None:
                    paths: dict[str, int] = {}
                    for product in self.products():
                        paths.setdefault(product.path, product.index)
                        paths.setdefault(product.listed_path, product.index)
                    self._paths = paths
        index = self._paths.get(path)
        return None if index is None else self.product(index)

    def warm(self) -> None:
        """Build the lookups a server needs before its first request."""
        if self.vendor == OS:
            self.by_path("/")

    def category(self, key: str) -> Category:
        return self.categories[key]

    def category_by_catid(self, catid: int) -> Category | None:
        return self._by_catid.get(catid)

    def category_by_path(self, path: str) -> Category | None:
        return self._by_path.get(path)

    @property
    def index(self) -> Category:
        return self.categories[self.layout.index_key]

    def year_categories(self) -> list[Category]:
        """The lists a spider reaches from the year index (regular and miniature)."""
        return [c for c in self.categories.values() if c.role == "year"]

    def listing(self, key: str, start: int = 0, stop: int | None = None) -> list[Product]:
        return [self.product(index) for index in self.categories[key].indices(start, stop)]

    def expected_items(self, origin: str, years: set[int] | None = None) -> list[ExpectedItem]:
        """The items a full crawl (or a crawl of `years`) must yield, in catalog order."""
        found = []
        for product in self.products():
            if product.expect == EXPECT_ITEM and (years is None or product.year in years):
                item = product.expected(origin)
                assert item is not None
                found.append(item)
        return found

    def edge_case_coverage(self) -> dict[str, list[str]]:
        """Edge case → where it lives: 'product:<id>' or 'page:<path>'."""
        coverage: dict[str, list[str]] = {case: [] for case in EDGE_CASES}
        for index, spec in self.layout.fixtures_at.items():
            for case in spec.edge_cases:
                coverage.setdefault(case, []).append(f"product:{self.ids.to_id(index)}")
        for page in self.layout.page_cases:
            coverage.setdefault(page.edge_case, []).append(f"page:{page.path}")
        return coverage


@dataclass(frozen=True)
class Catalog:
    """The three shops of one (seed, size)."""

    seed: int
    size: int
    shops: dict[str, ShopCatalog]

    def __getitem__(self, vendor: str) -> ShopCatalog:
        return self.shops[vendor]

    def __iter__(self) -> Iterator[ShopCatalog]:
        return iter(self.shops.values())


def generate(seed: int = 1, size: int | str = "small") -> Catalog:
    """Every shop's catalog for `seed`: 'small' (60 products), 'large' (20,000) or N per shop."""
    count = parse_size(size)
    return Catalog(
        seed=seed,
        size=count,
        shops={vendor: ShopCatalog(build_layout(vendor, seed, count)) for vendor in VENDORS},
    )


def product_record(shop: ShopCatalog, product: Product, origin: str) -> dict[str, Any]:
    """A product as `GET /__replica__/catalog` reports it."""
    item = product.expected(origin)
    category = shop.category(product.category)
    return {
        "vendor": product.vendor,
        "vendor_product_id": product.vendor_product_id,
        "index": product.index,
        "url": origin + product.listed_path,
        "category": category.key,
        "category_url": origin + category.path,
        "release_year": product.year,
        "kind": product.kind,
        "status": product.status,
        "expect": product.expect,
        "note": product.note,
        "edge_cases": list(product.edge_cases),
        "quirks": sorted(product.quirks),
        "expected_item": item.as_json() if item else None,
    }


def category_record(category: Category, origin: str) -> dict[str, Any]:
    return {
        "key": category.key,
        "catid": category.catid,
        "name": category.name,
        "url": origin + category.path,
        "role": category.role,
        "year": category.year,
        "kind": category.kind,
        "parent": category.parent,
        "product_count": category.count,
    }
