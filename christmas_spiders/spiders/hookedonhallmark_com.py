"""hookedonhallmark.com: year index → year category (→ View All sub-category, or the
category's ?viewall=1 mode, or Next pages) → product pages. All static HTML.

Setting ``LISTING_VIEW_ALL`` (on): read a paged category through its one-page view-all mode;
off, follow its Next links page by page.
"""

from __future__ import annotations

from collections.abc import Iterable

import scrapy
from scrapy.http import Response

from christmas_spiders.parsers import ProductPage
from christmas_spiders.parsers import hookedonhallmark_com as parser
from christmas_spiders.spiders._vendor import VendorSpider

MAX_LISTING_PAGES = 200  # per category: far above any real year, a guard against paging loops
MAX_DEPTH = 3  # year → segment → segment: deeper is a loop


class HookedOnHallmarkSpider(VendorSpider):
    name = "hookedonhallmark_com"
    year_index_path = "/keepsake-hallmark-ornaments-by-year.html"

    def year_links(self, response: Response) -> list[tuple[int, str]]:
        return parser.year_links(response.selector, response.url)

    def category_request(self, url: str, year: int, depth: int = 0, page: int = 1):
        return scrapy.Request(
            url,
            callback=self.parse_category,
            cb_kwargs={"year": year, "depth": depth, "page": page},
        )

    def parse_category(
        self, response: Response, year: int, depth: int = 0, page: int = 1
    ) -> Iterable[scrapy.Request]:
        listing = parser.parse_listing(response.selector, response.url)
        for url in listing.products:
            yield scrapy.Request(url, callback=self.parse_product, cb_kwargs={"year": year})
        if depth < MAX_DEPTH:
            # A segmented year: its View All sub-category has every product; without one,
            # every segment is crawled (E17).
            if listing.view_all_category:
                yield self.category_request(listing.view_all_category, year, depth + 1)
            elif not listing.products:
                for url in listing.subcategories:
                    yield self.category_request(url, year, depth + 1)
        if page == 1 and listing.view_all and self.settings.getbool("LISTING_VIEW_ALL", True):
            # One page with every product instead of paging (page 0: view-all mode, no paging).
            yield self.category_request(listing.view_all, year, depth, page=0)
        elif page and listing.next_page:
            if page < MAX_LISTING_PAGES:
                yield self.category_request(listing.next_page, year, depth, page + 1)
            else:
                self.logger.warning("%s: stopped paging after %d pages", response.url, page)

    def parse_product_page(self, response: Response) -> ProductPage:
        return parser.parse_product(response.selector, response.url)
