"""hallmarkornaments.com: year index → year grid in view-all mode, rendered in the browser
(§C4) → product pages over plain HTTP.

The shop setting ``RENDER_YEAR_GRIDS`` (on) sends every year grid to the Selenium middleware;
``LISTING_VIEW_ALL`` (on) asks for the one-page view-all mode, off follows Next links.
With it off, grids are fetched over HTTP and one that arrives unfilled is re-requested through
the browser once (adaptive fetching, counted as ``render/adaptive``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

import scrapy
from scrapy.http import Response

from christmas_spiders.parsers import ProductPage
from christmas_spiders.parsers import hallmark_ornaments_com as parser
from christmas_spiders.parsers.threedcart import view_all_url
from christmas_spiders.spiders._vendor import VendorSpider

# A view-all grid is complete when it shows as many products as `.product-count` announces; a
# paged view shows fewer (the count is the year's), so it waits for a grid that stops changing.
GRID_RENDER = {"wait_for": "#itemsBlock .product-item", "count_from": ".product-count"}
PAGE_RENDER = {"wait_for": "#itemsBlock .product-item"}
MAX_LISTING_PAGES = 200


class HallmarkOrnamentsSpider(VendorSpider):
    name = "hallmark_ornaments_com"
    year_index_path = "/Hallmark-Ornaments-By-Year_c_200.html"
    # Two years at a time: one grid renders in the browser while the other year's pages load.
    custom_settings: ClassVar[dict] = {"RENDER_YEAR_GRIDS": True, "YEAR_LISTINGS_AT_ONCE": 2}

    def year_links(self, response: Response) -> list[tuple[int, str]]:
        return parser.year_links(response.selector, response.url)

    def category_request(
        self, url: str, year: int, page: int = 1, render: bool | None = None
    ) -> scrapy.Request:
        """A year grid: the first request asks for the view-all mode (every product on one page);
        Next links are still followed where a shop ignores it."""
        if render is None:
            render = self.settings.getbool("RENDER_YEAR_GRIDS")
        use_view_all = page == 1 and self.settings.getbool("LISTING_VIEW_ALL", True)
        return scrapy.Request(
            view_all_url(url) if use_view_all else url,
            callback=self.parse_category,
            cb_kwargs={"year": year, "page": page},
            meta={"render": GRID_RENDER if use_view_all else PAGE_RENDER} if render else {},
        )

    def parse_category(
        self, response: Response, year: int, page: int = 1
    ) -> Iterable[scrapy.Request]:
        rendered = "render" in response.meta
        if not rendered and parser.grid_is_unfilled(response.selector):
            self.crawler.stats.inc_value("render/adaptive")
            render = GRID_RENDER if "viewall=1" in response.url else PAGE_RENDER
            yield response.request.replace(
                meta={**response.meta, "render": render}, dont_filter=True
            )
            return
        listing = parser.parse_listing(response.selector, response.url)
        whole_year = page == 1 and not listing.next_page
        if whole_year and len(listing.products) < (listing.expected_count or 0):
            self.crawler.stats.inc_value("pages/problems/grid_short")
            self.logger.warning(
                "%s: grid shows %d of %d products",
                response.url,
                len(listing.products),
                listing.expected_count,
            )
        yield from self.listed_products(response, year, listing.products)
        if listing.next_page:
            if page < MAX_LISTING_PAGES:
                yield self.category_request(listing.next_page, year, page + 1, render=rendered)
            else:
                self.logger.warning("%s: stopped paging after %d pages", response.url, page)

    def parse_product_page(self, response: Response) -> ProductPage:
        return parser.parse_product(response.selector, response.url)
