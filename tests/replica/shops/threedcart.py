"""What HooH and HO share as 3dcart / Shift4Shop stores.

SEO URLs `{slug}_c_{catid}.html` / `{slug}_p_{catalogid}.html`, paging `-{page}-{sort}.html`,
`?viewall=1`, the dynamic aliases `view_category.asp?cat=` and `product.asp?itemid=` (301),
the quick-view page `product.asp?lt_c=1&itemid=N&qv=1&`, `var _3d_item`, and one streamed
`/sitemap.xml`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar
from xml.sax.saxutils import escape as xml_escape

from werkzeug.wrappers import Response

from ..models import (
    STATUS_GONE,
    STATUS_SOFT_404,
    STATUS_TO_CATEGORY,
    UNAVAILABLE,
    Category,
    Product,
)
from .base import Page, Route, Shop, json_number, route, script_json, xml_response

PER_PAGE = 24  # [A] products per page on both 3dcart shops
DEFAULT_SORT = 3  # [A] the second number of "-2-3.html"
PAGE_WINDOW = 4  # page links shown either side of the current page


@dataclass(frozen=True)
class Paging:
    """The `.paging` block of a 3dcart listing."""

    page: int
    pages: int
    total: int
    viewall: bool
    numbers: tuple[tuple[int, str], ...]
    prev_url: str | None
    next_url: str | None
    viewall_url: str
    exit_url: str


def page_path(category: Category, number: int, sort: int) -> str:
    return category.path.removesuffix(".html") + f"-{number}-{sort}.html"


def make_paging(
    page: Page, category: Category, number: int, sort: int, viewall: bool, total: int
) -> Paging:
    """Page `number` of `category`, or page 1 when it is past the end (3dcart, E15)."""
    pages = max(1, -(-total // PER_PAGE))
    if not 1 <= number <= pages:
        number = 1
    first, last = max(1, number - PAGE_WINDOW), min(pages, number + PAGE_WINDOW)
    numbers = tuple((n, page.url(page_path(category, n, sort))) for n in range(first, last + 1))
    next_url = None
    if number < pages:
        next_url = page.url(page_path(category, number + 1, sort))
    elif pages > 1 and "next_self" in category.quirks:
        next_url = page.url(page_path(category, number, sort))  # E14: Next points to itself
    return Paging(
        page=number,
        pages=pages,
        total=total,
        viewall=viewall,
        numbers=numbers,
        prev_url=page.url(page_path(category, number - 1, sort)) if number > 1 else None,
        next_url=next_url,
        viewall_url=page.url(category.path + "?viewall=1"),
        exit_url=page.url(category.path + "?viewall=0"),
    )


def three_d_item(product: Product) -> str:
    """The `var _3d_item = {...};` statement: compact JSON, key order of the platform."""
    price = product.price
    if "price_disagree" in product.quirks and price is not None:
        price -= 2  # C3: the platform variable says something else than the page
    data = {
        "catalogid": product.product_id,
        "id": product.raw_sku or "",
        "name": product.raw_name,
        "price": json_number(price),
        "availability": 0 if product.availability == UNAVAILABLE else 1,
        "currency": "USD",
    }
    statement = f"var _3d_item = {script_json(data)};"
    if "no_name" in product.quirks:
        return statement[: statement.index('"name"') + 4]  # cut before the name (E23)
    if "truncated_3d_item" in product.quirks:
        return statement[: statement.index('"price"') - 7]  # cut inside the name (E23)
    return statement


class ThreeDCartShop(Shop):
    index_template: ClassVar[str] = "index.html"
    robots_disallow = ("/add_cart.asp", "/view_cart.asp", "/checkout.asp", "/myaccount.asp")
    per_page = PER_PAGE

    def routes(self) -> list[Route]:
        return [
            route(r"/", "home", self._home),
            route(r"/sitemap\.xml", "sitemap", self._sitemap),
            route(r"/product\.asp", "alias", self._product_asp),
            route(r"/view_category\.asp", "alias", self._view_category),
            route(
                r"/(?P<slug>[^/]+?)_c_(?P<catid>\d+)(?:-(?P<page>\d+)-(?P<sort>\d+))?\.html",
                "category",
                self._category,
            ),
            route(r"/(?P<slug>[^/]+)_p_(?P<id>\d+)\.html", "product", self._product),
            route(r"/(?:add_cart|view_cart)\.asp", "cart", self._cart),
        ]

    # --- to be provided by each shop ----------------------------------------------------------

    def year_index(self, page: Page, category: Category) -> Response:
        raise NotImplementedError

    def category_page(
        self, page: Page, category: Category, number: int, sort: int, viewall: bool
    ) -> Response:
        raise NotImplementedError

    def product_page(self, page: Page, product: Product, quickview: bool) -> Response:
        raise NotImplementedError

    # --- shared handlers ----------------------------------------------------------------------

    def _home(self, page: Page, match: re.Match[str]) -> Response:
        return self.render("home.html", page, index=self.catalog.index)

    def _cart(self, page: Page, match: re.Match[str]) -> Response:
        return self.render("cart.html", page)

    def _category(self, page: Page, match: re.Match[str]) -> Response:
        category = self.catalog.category_by_catid(int(match["catid"]))
        if category is None:
            return self.not_found(page)
        wanted = category.path.removeprefix("/").rsplit("_c_", 1)[0]
        if match["slug"] != wanted:  # [A] a stale slug: 301 to the category's own URL
            return self.redirect(page, category.path)
        if category.role == "index":
            return self.year_index(page, category)
        number = int(match["page"] or 1)
        sort = int(match["sort"] or DEFAULT_SORT)
        return self.category_page(page, category, number, sort, page.arg("viewall") == "1")

    def _view_category(self, page: Page, match: re.Match[str]) -> Response:
        category = self.catalog.category_by_catid(page.int_arg("cat", -1))
        if category is None:
            return self.not_found(page)
        number = page.int_arg("page", 1)
        if number > 1:
            return self.redirect(
                page, page_path(category, number, page.int_arg("sortby", DEFAULT_SORT))
            )
        return self.redirect(page, category.path)

    def _product_asp(self, page: Page, match: re.Match[str]) -> tuple[str, Response]:
        product = self.state.by_id(page.arg("itemid", "x"))
        quickview = page.arg("qv") == "1"
        kind = "quickview" if quickview else "alias"
        if product is None or product.status in (STATUS_GONE, STATUS_TO_CATEGORY):
            return kind, self.not_found(page)
        if product.status == STATUS_SOFT_404:
            return kind, self.soft_404(page, product)
        if quickview:
            return kind, self.product_page(page, self.state.shown(product), quickview=True)
        return kind, self.redirect(page, product.path)

    def _product(self, page: Page, match: re.Match[str]) -> Response:
        product = self.state.by_id(match["id"])
        if product is None or product.status == STATUS_GONE:
            return self.not_found(page)
        if page.request.path != product.path:  # [A] a stale slug: 301 to the current URL
            return self.redirect(page, product.path)
        if product.status == STATUS_TO_CATEGORY:
            return self.redirect(page, self.catalog.category(product.category).path)
        if product.status == STATUS_SOFT_404:
            return self.soft_404(page, product)
        return self.product_page(page, self.state.shown(product), quickview=False)

    def soft_404(self, page: Page, product: Product) -> Response:
        return self.render("soft_404.html", page, product=product)

    def not_found(self, page: Page) -> Response:
        return self.render("not_found.html", page, status=404)

    def _sitemap(self, page: Page, match: re.Match[str]) -> Response:
        return xml_response(self._sitemap_chunks(page))

    def _sitemap_chunks(self, page: Page) -> Iterator[str]:
        yield '<?xml version="1.0" encoding="UTF-8"?>\n'
        yield '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
        yield f"<url><loc>{xml_escape(page.url('/'))}</loc></url>\n"
        for category in self.catalog.categories.values():
            yield f"<url><loc>{xml_escape(page.url(category.path))}</loc></url>\n"
        batch: list[str] = []
        for index in range(len(self.catalog)):
            product = self.state.product(index)
            if product.status == "ok":
                batch.append(f"<url><loc>{xml_escape(page.url(product.path))}</loc></url>\n")
            if len(batch) >= 500:
                yield "".join(batch)
                batch = []
        yield "".join(batch)
        yield "</urlset>\n"

    # --- context shared by the product templates ----------------------------------------------

    def product_context(self, page: Page, product: Product) -> dict[str, Any]:
        category = self.catalog.category(product.category)
        return {
            "product": product,
            "category": category,
            "year_category": self.year_category(category),
            "three_d_item": three_d_item(product),
            "display_name": "" if "no_name" in product.quirks else product.raw_name,
        }

    def year_category(self, category: Category) -> Category:
        while category.role != "year" and category.parent:
            category = self.catalog.category(category.parent)
        return category
