"""hookedonhallmark.com: year index → year category (→ its View All sub-category, or each
segment) → product pages. All static HTML.

Setting ``LISTING_VIEW_ALL`` (on): ask every category for its view-all mode (`?viewall=1`, one
page with every product) straight away; off, or where a shop ignores the mode, follow Next links
page by page.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import scrapy
from scrapy.http import Response

from christmas_spiders.parsers import ProductPage
from christmas_spiders.parsers import hookedonhallmark_com as parser
from christmas_spiders.parsers.threedcart import view_all_url
from christmas_spiders.spiders._vendor import VendorSpider

MAX_LISTING_PAGES = 200  # per category: far above any real year, a guard against paging loops
MAX_DEPTH = 3  # year → segment → segment: deeper is a loop


class HookedOnHallmarkSpider(VendorSpider):
    name = "hookedonhallmark_com"
    year_index_path = "/keepsake-hallmark-ornaments-by-year.html"

    def year_links(self, response: Response) -> list[tuple[int, str]]:
        return parser.year_links(response.selector, response.url)

    def category_request(self, url: str, year: int, depth: int = 0, page: int = 1):
        if page == 1 and self.settings.getbool("LISTING_VIEW_ALL", True):
            url = view_all_url(url)
        return scrapy.Request(
            url,
            callback=self.parse_category,
            cb_kwargs={"year": year, "depth": depth, "page": page},
        )

    def parse_category(
        self, response: Response, year: int, depth: int = 0, page: int = 1
    ) -> Iterable[scrapy.Request]:
        listing = parser.parse_listing(response.selector, response.url)
        yield from self.listed_products(response, year, listing.products)
        if depth < MAX_DEPTH:
            # A segmented year: its View All sub-category has every product; without one,
            # every segment is crawled (E17).
            if listing.view_all_category:
                yield self.category_request(listing.view_all_category, year, depth + 1)
            elif not listing.products:
                for url in listing.subcategories:
                    yield self.category_request(url, year, depth + 1)
        if listing.next_page:  # paging on, or view-all mode ignored
            if page < MAX_LISTING_PAGES:
                yield self.category_request(listing.next_page, year, depth, page + 1)
            else:
                self.logger.warning("%s: stopped paging after %d pages", response.url, page)

    def product_request(self, url: str, year: int) -> scrapy.Request:
        return self.listed_product_request(url, year)

    def listed_product_request(
        self, url: str, year: int, redirect_urls: tuple[str, ...] = ()
    ) -> scrapy.Request:
        """A product page found in a listing. Its redirects are followed here, not by Scrapy: a
        retired product 301s to its year category (E21), which this crawl reads anyway. The
        chain is kept as Scrapy keeps it (``redirect_urls``), so a loop is caught the same way:
        by the duplicate filter, or after REDIRECT_MAX_TIMES."""
        meta: dict[str, Any] = {
            "dont_redirect": True,
            "handle_httpstatus_list": [301, 302, 303, 307, 308],
        }
        if redirect_urls:
            meta["redirect_urls"] = list(redirect_urls)
        return scrapy.Request(
            url,
            callback=self.parse_listed_product,
            errback=self.product_failed,
            cb_kwargs={"year": year},
            meta=meta,
        )

    def parse_listed_product(self, response: Response, year: int) -> Iterable[Any]:
        if not 300 <= response.status < 400:
            yield from self.parse_product(response, year)
            return
        target = response.urljoin(response.headers.get("Location", b"").decode("latin-1"))
        chain = (*response.meta.get("redirect_urls", ()), response.url)
        if len(chain) > self.settings.getint("REDIRECT_MAX_TIMES"):
            self.note_unread(response.request, "redirect_loop")
        elif parser.is_product_url(target):  # a renamed product or an alias
            yield self.listed_product_request(target, year, chain)
        else:
            self.crawler.stats.inc_value("pages/skipped/redirected_to_listing")
            self.logger.info("%s: redirects to %s, no longer a product page", response.url, target)

    def parse_product_page(self, response: Response) -> ProductPage:
        return parser.parse_product(response.selector, response.url)
