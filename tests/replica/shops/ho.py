"""hallmarkornaments.com (HO, "The Ornament Factory"): a 3dcart store (contract §3).

The year index lists `a.subcat` links. Year grids arrive empty (`#itemsBlock`) and are filled
by `category-grid.js` from the replica-only endpoint `/ajax_category_items.asp` (§C4, §3.5),
so only a browser sees their products. Product pages carry `_3d_item` as the 7th head script,
then a JSON-LD Product block.
"""

from __future__ import annotations

import json
import re
from typing import Any

from werkzeug.wrappers import Response

from ..models import HO, PREORDER, STATUS_SOFT_404, UNAVAILABLE, Category, Product
from .base import Page, Route, money, route
from .threedcart import PER_PAGE, ThreeDCartShop, make_paging

SCHEMA_AVAILABILITY = {UNAVAILABLE: "OutOfStock", PREORDER: "PreOrder"}
GRID_SCRIPT = "/assets/templates/ornamentfactory/js/category-grid.js"
SIZES = ('3.25"H', '2.5"H', '4"H', '1.25"H', '3"W')


class HoShop(ThreeDCartShop):
    vendor = HO
    folder = "ho"
    deleted_status = STATUS_SOFT_404

    def routes(self) -> list[Route]:
        return [
            route(r"/ajax_category_items\.asp", "ajax", self._grid_items),
            route(re.escape(GRID_SCRIPT), "asset", self._grid_script),
            route(r"/assets/templates/.+\.js", "asset", self._stub_script),
            *super().routes(),
        ]

    def year_index(self, page: Page, category: Category) -> Response:
        links = []
        for child in self.catalog.categories.values():
            if child.role == "year" and child.kind is None:
                links.append((f"{child.year} Hallmark Ornaments", child.path))
            elif child.role == "year":
                links.append((child.name, child.path))
        links += [
            (child.name, child.path)
            for child in self.catalog.categories.values()
            if child.role in ("other", "series")  # E18: links without a year
        ]
        crumbs = [("Home", page.url("/")), (category.name, None)]
        return self.render("index.html", page, category=category, links=links, breadcrumbs=crumbs)

    def category_page(
        self, page: Page, category: Category, number: int, sort: int, viewall: bool
    ) -> Response:
        paging = make_paging(
            page, category, number, sort, viewall, self.state.listed_count(category.key)
        )
        crumbs = [
            ("Home", page.url("/")),
            (self.catalog.index.name, page.url(self.catalog.index.path)),
            (category.name, None),
        ]
        header = f"{category.year} Hallmark Keepsake Ornaments" if category.year else category.name
        return self.render(
            "category.html",
            page,
            category=category,
            paging=paging,
            breadcrumbs=crumbs,
            header=header,
        )

    def _grid_items(self, page: Page, match: re.Match[str]) -> Response:
        category = self.catalog.category_by_catid(page.int_arg("cat", -1))
        if category is None or category.role == "index":
            return Response('{"error":"unknown category"}', 404, content_type="application/json")
        viewall = page.arg("viewall") == "1"
        paging = make_paging(
            page,
            category,
            page.int_arg("page", 1),
            3,
            viewall,
            self.state.listed_count(category.key),
        )
        if viewall:
            products = self.state.listing(category.key)
        else:
            start = (paging.page - 1) * PER_PAGE
            products = self.state.listing(category.key, start, start + PER_PAGE)
        body = {
            "total": paging.total,
            "page": paging.page,
            "pages": paging.pages,
            "items": [self._grid_item(page, product) for product in products],
        }
        return Response(json.dumps(body, ensure_ascii=False), content_type="application/json")

    def _grid_item(self, page: Page, product: Product) -> dict[str, Any]:
        url = page.url(product.listed_path)
        if "relative_href" in product.quirks:  # E20: a root-relative link
            url = product.listed_path
        return {
            "catalogid": product.product_id,
            "name": product.raw_name,
            "url": url,
            "qv_url": f"product.asp?lt_c=1&itemid={product.product_id}&qv=1&",
            "thumb": f"thumbnail.asp?file={product.image_path.lstrip('/')}&maxx=200&maxy=0",
            "price": money(product.regular_price if product.on_sale else product.price),
            "sale_price": money(product.price) if product.on_sale else None,
        } | ({"price": None, "sale_price": None} if "broken_tile" in product.quirks else {})

    def _grid_script(self, page: Page, match: re.Match[str]) -> Response:
        return self.static_script("category-grid.js")

    def _stub_script(self, page: Page, match: re.Match[str]) -> Response:
        return Response(
            "/* replica: theme script not reproduced */\n",
            content_type="application/javascript; charset=utf-8",
        )

    def product_page(self, page: Page, product: Product, quickview: bool) -> Response:
        context = self.product_context(page, product)
        year_category = context["year_category"]
        crumbs = [
            ("Home", page.url("/")),
            (self.catalog.index.name, page.url(self.catalog.index.path)),
            (year_category.name, page.url(year_category.path)),
        ]
        if context["display_name"]:
            crumbs.append((context["display_name"], None))
        return self.render(
            "quickview.html" if quickview else "product.html",
            page,
            breadcrumbs=crumbs,
            canonical=not quickview,
            quickview=quickview,
            json_ld=self.json_ld(page, product),
            schema_availability=SCHEMA_AVAILABILITY.get(product.availability, "InStock"),
            size=SIZES[product.product_id % len(SIZES)],
            **context,
        )

    def json_ld(self, page: Page, product: Product) -> str | None:
        if "no_name" in product.quirks:
            return None
        data: dict[str, Any] = {
            "@context": "https://schema.org",
            "@type": "Product",
            "name": product.raw_name,
        }
        if product.raw_sku:
            data["sku"] = data["mpn"] = product.raw_sku
        data["brand"] = {"@type": "Brand", "name": "Hallmark"}
        data["image"] = [page.url(product.image_path or "")]
        data["offers"] = {
            "@type": "Offer",
            "price": f"{product.price or 0:.2f}",
            "priceCurrency": "USD",
            "availability": "https://schema.org/"
            + SCHEMA_AVAILABILITY.get(product.availability, "InStock"),
            "url": page.url(product.path),
        }
        text = json.dumps(data, ensure_ascii=False).replace("</", "<\\/")
        if "jsonld_trailing_comma" in product.quirks:
            text = text[:-1] + ",}"  # E23: not valid JSON
        return text
