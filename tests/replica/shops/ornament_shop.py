"""ornament-shop.com (OS): a BigCommerce Stencil store, Cornerstone-derived (contract §2).

Year index = a category page whose sidebar `navList` lists g1 (regular) and g2 (miniature)
years next to a Shop By Price block; listings are `article.card`s, 12 per page, with
`?page=N` paging; product pages carry `var BCData`, schema.org microdata, a `dl` of labelled
rows, and (with --jsonld) a JSON-LD Product block. Product URLs carry no id: `/{slug}/`, or a
legacy `/{slug}.html`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode
from xml.sax.saxutils import escape as xml_escape

from werkzeug.wrappers import Response

from ..models import OS, PREORDER, STATUS_GONE, UNAVAILABLE, Category, Product
from .base import Page, Route, Shop, json_number, money, route, script_json, xml_response

PER_PAGE = 12  # Cornerstone's default categorypage_products_per_page
PAGE_WINDOW = 2
SITEMAP_PAGE = 1000  # [A] product URLs per xmlsitemap.php page
SCHEMA_AVAILABILITY = {UNAVAILABLE: "OutOfStock", PREORDER: "PreOrder"}
SORTS = (
    ("featured", "Featured Items"),
    ("newest", "Newest Items"),
    ("bestselling", "Best Selling"),
    ("alphaasc", "A to Z"),
    ("alphadesc", "Z to A"),
    ("avgcustomerreview", "By Review"),
    ("priceasc", "Price: Ascending"),
    ("pricedesc", "Price: Descending"),
)
PRICE_RANGES = ((0, 25), (25, 50), (50, 100), (100, 1500))


def _price_object(value: Any) -> dict[str, Any]:
    return {"formatted": money(value), "value": json_number(value), "currency": "USD"}


def bcdata(product: Product) -> str:
    """The `BCData` object BigCommerce injects into product pages."""
    sold_out = product.availability == UNAVAILABLE
    token = hashlib.sha1(f"csrf:{product.product_id}".encode()).hexdigest()[:32]
    if "bcdata_not_json" in product.quirks:  # E23: a JS object literal, not JSON
        return (
            f"{{csrf_token:'{token}',product_attributes:{{sku:'{product.raw_sku}',"
            f"price:{{without_tax:{{formatted:'{money(product.price)}',"
            f"value:{json_number(product.price)}}}}},instock:{str(not sold_out).lower()}}}}}"
        )
    price: dict[str, Any] = {}
    if product.price is not None:
        price["without_tax"] = _price_object(product.price)
    if product.on_sale:
        price["non_sale_price_without_tax"] = _price_object(product.regular_price)
    if product.msrp:
        price["rrp_without_tax"] = _price_object(product.msrp)
    price["tax_label"] = "Tax"
    attributes = {
        "sku": product.raw_sku,
        "upc": None,
        "mpn": None,
        "gtin": None,
        "weight": None,
        "base": True,
        "image": None,
        "price": price,
        "out_of_stock_behavior": "label_option",
        "out_of_stock_message": "Sold Out",
        "available_modifier_values": [],
        "in_stock_attributes": [],
        "stock": 0 if sold_out else None,
        "instock": not sold_out,
        "stock_message": "Sold Out" if sold_out else None,
        "purchasable": not sold_out,
        "purchasing_message": None,
    }
    return script_json({"csrf_token": token, "product_attributes": attributes})


class OrnamentShop(Shop):
    vendor = OS
    folder = "ornament_shop"
    robots_disallow = ("/cart.php", "/checkout", "/compare", "/account.php", "/search.php")
    sitemap_path = "/xmlsitemap.php"
    per_page = PER_PAGE

    def routes(self) -> list[Route]:
        return [
            route(r"/", "home", self._home),
            route(r"/xmlsitemap\.php", "sitemap", self._sitemap),
            route(r"/products\.php", "alias", self._products_php),
            route(r"/cart\.php", "cart", self._cart),
            route(r"/(?:[^/]+/)*[^/]+\.html", "category", self._html_page),
            route(r"/(?P<slug>[a-z0-9-]+)/", "product", self._product),
            route(r"/(?P<slug>[a-z0-9-]+)", "alias", self._add_slash),
        ]

    def series_categories(self) -> list[Category]:
        return [c for c in self.catalog.categories.values() if c.role == "series"]

    def not_found(self, page: Page) -> Response:
        return self.render("not_found.html", page, status=404)

    def _home(self, page: Page, match: re.Match[str]) -> Response:
        return self.render("home.html", page, index=self.catalog.index)

    def _cart(self, page: Page, match: re.Match[str]) -> Response:
        return self.render("cart.html", page)

    def _crumbs(self, page: Page, *categories: Category) -> list[tuple[str, str]]:
        return [("Home", page.url("/"))] + [(c.name, page.url(c.path)) for c in categories]

    # --- categories ---------------------------------------------------------------------------

    def _html_page(self, page: Page, match: re.Match[str]) -> tuple[str, Response]:
        category = self.catalog.category_by_path(page.request.path)
        if category is not None:
            if category.role == "index":
                return "index", self._year_index(page, category)
            return "category", self._category(page, category)
        return "product", self._product_at(page, page.request.path)

    def _year_index(self, page: Page, category: Category) -> Response:
        years = [c for c in self.catalog.categories.values() if c.role == "year"]
        return self.render(
            "index.html",
            page,
            category=category,
            years=years,
            price_ranges=PRICE_RANGES,
            breadcrumbs=self._crumbs(page, category),
        )

    def _category(self, page: Page, category: Category) -> Response:
        sort = page.arg("sort") or None
        number = page.int_arg("page", 1) or 1
        pages = max(1, -(-self.state.listed_count(category.key) // PER_PAGE))
        start = (number - 1) * PER_PAGE
        products = self.state.listing(category.key, start, start + PER_PAGE)

        def url(n: int) -> str:
            query = {"page": n, **({"sort": sort} if sort else {})}
            return page.url(f"{category.path}?{urlencode(query)}")

        on_a_page = 1 <= number <= pages and products
        first, last = max(1, number - PAGE_WINDOW), min(pages, number + PAGE_WINDOW)
        crumbs = self._crumbs(page, self.catalog.index, category)
        if category.role != "year":
            crumbs = self._crumbs(page, category)
        return self.render(
            "category.html",
            page,
            category=category,
            canonical=category.path + (f"?page={number}" if number > 1 else ""),
            description=f"{category.name}: every ornament of the collection, new and retired."
            if category.year
            else "",
            products=products,
            first_position=start + 1,
            category_label=f"{self.catalog.index.name}/{category.name}",
            sorts=SORTS,
            sort=sort or "featured",
            pages=pages,
            current=number,
            numbers=[(n, url(n)) for n in range(first, last + 1)] if on_a_page else [],
            prev_url=url(number - 1) if on_a_page and number > 1 else None,
            next_url=url(number + 1) if on_a_page and number < pages else None,
            breadcrumbs=crumbs,
        )

    # --- products -----------------------------------------------------------------------------

    def _product(self, page: Page, match: re.Match[str]) -> Response:
        return self._product_at(page, page.request.path)

    def _add_slash(self, page: Page, match: re.Match[str]) -> tuple[str, Response]:
        product = self.state.by_path(page.request.path + "/")
        if product is None:
            return "not_found", self.not_found(page)
        return "alias", self.redirect(page, product.path)

    def _products_php(self, page: Page, match: re.Match[str]) -> Response:
        product = self.state.by_id(page.arg("productId", "x"))
        if product is None or product.status == STATUS_GONE:
            return self.not_found(page)
        return self.redirect(page, product.path)

    def _product_at(self, page: Page, path: str) -> Response:
        product = self.state.by_path(path)
        if product is None or product.status != "ok":
            return self.not_found(page)
        if path != product.path:  # E21: an old URL of a moved product
            return self.redirect(page, product.path)
        product = self.state.shown(product)  # a broken theme hides some of it
        category = self.catalog.category(product.category)
        crumbs = [
            *self._crumbs(page, self.catalog.index, category),
            (product.raw_name, page.url(product.path)),
        ]
        return self.render(
            "product.html",
            page,
            product=product,
            bcdata=bcdata(product),
            json_ld=self.json_ld(page, product) if self.jsonld else None,
            schema_availability=SCHEMA_AVAILABILITY.get(product.availability, "InStock"),
            breadcrumbs=crumbs,
        )

    def json_ld(self, page: Page, product: Product) -> str:
        """The Cornerstone (late 2021+) Product block, added with --jsonld (§2.4)."""
        offers: dict[str, Any] = {"@type": "Offer"}
        if product.price is not None:
            offers["price"] = f"{product.price:.2f}"
        offers.update(
            priceCurrency="USD",
            availability="https://schema.org/"
            + SCHEMA_AVAILABILITY.get(product.availability, "InStock"),
            itemCondition="https://schema.org/NewCondition",
            url=page.url(product.path),
            priceValidUntil="2026-12-31",
        )
        data: dict[str, Any] = {
            "@context": "https://schema.org",
            "@type": "Product",
            "name": product.raw_name,
        }
        if product.raw_sku:
            data["sku"] = product.raw_sku
        data.update(
            brand={"@type": "Brand", "name": "Hallmark"},
            image=page.url(product.image_path or ""),
            offers=offers,
        )
        text = json.dumps(data, ensure_ascii=False).replace("</", "<\\/")
        if "jsonld_trailing_comma" in product.quirks:
            text = text[:-1] + ",}"  # E23
        return text

    # --- sitemap ------------------------------------------------------------------------------

    def _sitemap(self, page: Page, match: re.Match[str]) -> Response:
        kind = page.arg("type")
        number = page.int_arg("page", 1)
        if kind == "products":
            return xml_response(self._product_urls(page, number))
        if kind == "categories":
            paths = [c.path for c in self.catalog.categories.values()]
            return xml_response(self._urlset(page, paths))
        if kind == "pages":
            return xml_response(self._urlset(page, ["/", "/brands/Hallmark.html"]))
        pages = max(1, -(-len(self.catalog) // SITEMAP_PAGE))
        locs = [f"/xmlsitemap.php?type=products&page={n}" for n in range(1, pages + 1)]
        locs += ["/xmlsitemap.php?type=categories&page=1", "/xmlsitemap.php?type=pages&page=1"]
        body = ['<?xml version="1.0" encoding="UTF-8"?>\n']
        body.append('<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n')
        body += [f"<sitemap><loc>{xml_escape(page.url(loc))}</loc></sitemap>\n" for loc in locs]
        body.append("</sitemapindex>\n")
        return xml_response(body)

    def _urlset(self, page: Page, paths: list[str]) -> Iterator[str]:
        yield '<?xml version="1.0" encoding="UTF-8"?>\n'
        yield '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
        for path in paths:
            yield f"<url><loc>{xml_escape(page.url(path))}</loc></url>\n"
        yield "</urlset>\n"

    def _product_urls(self, page: Page, number: int) -> Iterator[str]:
        start = (max(number, 1) - 1) * SITEMAP_PAGE
        stop = min(start + SITEMAP_PAGE, len(self.catalog))
        paths = [
            product.path
            for product in (self.state.product(i) for i in range(start, stop))
            if product.status == "ok"
        ]
        return self._urlset(page, paths)
