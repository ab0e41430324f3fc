"""hookedonhallmark.com (HooH): a 3dcart store with static pages (contract §1).

Year index `ul.columns-5` tiles; year categories either list products directly or, for
segmented years, show sub-category tiles (View All first, when there is one) and a featured
block; listings are `.product-item`s with `.paging` rendered twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from werkzeug.wrappers import Response

from ..models import HOOH, PREORDER, UNAVAILABLE, Category, Product
from .base import Page, Route, route
from .threedcart import PER_PAGE, ThreeDCartShop, make_paging

SCHEMA_AVAILABILITY = {UNAVAILABLE: "OutOfStock", PREORDER: "PreOrder"}


@dataclass(frozen=True)
class Tile:
    name: str
    path: str
    image: str | None = None  # tiles with an image carry the name in img@alt only
    alt: str = ""


class HoohShop(ThreeDCartShop):
    vendor = HOOH
    folder = "hooh"

    def routes(self) -> list[Route]:
        return [
            route(re.escape(self.catalog.index.path), "index", self._index),
            *super().routes(),
        ]

    def _index(self, page: Page, match: re.Match[str]) -> Response:
        return self.year_index(page, self.catalog.index)

    def breadcrumbs(self, page: Page, category: Category) -> list[tuple[str, str | None]]:
        chain = [category]
        while chain[-1].parent:
            chain.append(self.catalog.category(chain[-1].parent))
        crumbs: list[tuple[str, str | None]] = [("Home", page.url("/"))]
        crumbs += [(c.name, page.url(c.path)) for c in reversed(chain)]
        return crumbs

    def year_index(self, page: Page, category: Category) -> Response:
        tiles = []
        for child in self.catalog.categories.values():
            if child.role == "year":  # [A] every third year is a text-only tile
                image = (
                    None if (child.year or 0) % 3 == 0 else f"/assets/images/years/{child.year}.jpg"
                )
                tiles.append(Tile(child.name, child.path, image))
            elif child.role == "other":  # E18: a tile without a year
                tiles.append(Tile(child.name, child.path, "/assets/images/storage.jpg"))
        crumbs = [("Home", page.url("/")), (category.name, None)]
        return self.render("index.html", page, category=category, tiles=tiles, breadcrumbs=crumbs)

    def category_page(
        self, page: Page, category: Category, number: int, sort: int, viewall: bool
    ) -> Response:
        tiles = [self._sub_tile(self.catalog.category(key)) for key in category.children]
        hidden = self.state.hidden
        featured = [self.state.product(i) for i in category.featured if i not in hidden]
        paging, products = None, []
        if not category.children:
            paging = make_paging(
                page, category, number, sort, viewall, self.state.listed_count(category.key)
            )
            if viewall:
                products = self.state.listing(category.key)
            else:
                start = (paging.page - 1) * PER_PAGE
                products = self.state.listing(category.key, start, start + PER_PAGE)
        crumbs = self.breadcrumbs(page, category)
        crumbs[-1] = (category.name, None)
        return self.render(
            "category.html",
            page,
            category=category,
            tiles=tiles,
            featured=featured,
            paging=paging,
            products=products,
            breadcrumbs=crumbs,
        )

    def _sub_tile(self, child: Category) -> Tile:
        if child.role == "view_all":
            parent_name = child.name.removesuffix(" - View All")
            return Tile(
                "View All",
                child.path,
                f"/assets/images/viewall-{child.year}.jpg",
                f"View All {parent_name}",
            )
        return Tile(child.name, child.path)

    def product_page(self, page: Page, product: Product, quickview: bool) -> Response:
        context = self.product_context(page, product)
        category = context["category"]
        crumbs = [*self.breadcrumbs(page, category), (context["display_name"], None)]
        neighbours = {}
        for label, index in (("previous", product.index - 1), ("following", product.index + 1)):
            other = self.state.product(index) if 0 <= index < len(self.catalog) else None
            ok = other is not None and other.category == product.category and other.status == "ok"
            neighbours[label] = other if ok else None
        return self.render(
            "quickview.html" if quickview else "product.html",
            page,
            breadcrumbs=crumbs,
            schema_availability=SCHEMA_AVAILABILITY.get(product.availability, "InStock"),
            **neighbours,
            **context,
        )
