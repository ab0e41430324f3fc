"""ornament-shop.com: year index (sidebar) → year category → Next pages → product pages.
All static HTML (Stencil renders server-side)."""

from __future__ import annotations

from collections.abc import Iterable

import scrapy
from scrapy.http import Response

from christmas_spiders.parsers import ProductPage
from christmas_spiders.parsers import ornament_shop_com as parser
from christmas_spiders.spiders._vendor import VendorSpider

MAX_LISTING_PAGES = 500  # per category: a guard against paging loops (12 products a page)


class OrnamentShopSpider(VendorSpider):
    name = "ornament_shop_com"
    year_index_path = "/hallmark-ornaments-by-year.html"

    def year_links(self, response: Response) -> list[tuple[int, str]]:
        return parser.year_links(response.selector, response.url)

    def category_request(self, url: str, year: int, page: int = 1) -> scrapy.Request:
        return scrapy.Request(
            url, callback=self.parse_category, cb_kwargs={"year": year, "page": page}
        )

    def parse_category(
        self, response: Response, year: int, page: int = 1
    ) -> Iterable[scrapy.Request]:
        products, next_page = parser.parse_listing(response.selector, response.url)
        yield from self.listed_products(response, year, products)
        if next_page and products:
            if page < MAX_LISTING_PAGES:
                yield self.category_request(next_page, year, page + 1)
            else:
                self.logger.warning("%s: stopped paging after %d pages", response.url, page)

    def parse_product_page(self, response: Response) -> ProductPage:
        return parser.parse_product(response.selector, response.url)
