"""What the three shop spiders share: arguments, start requests and the product-page step.

A shop spider only says how to navigate its shop: ``year_index_path``, ``parse_year_index``
(year → category URL) and ``parse_category`` (listing pages → product pages). Product pages are
parsed by the shop's pure parser (``christmas_spiders.parsers``) into the fields of §C2; this
base turns them into items, counting and logging what a page got wrong.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import scrapy
import sqlalchemy as sa
from scrapy.crawler import Crawler
from scrapy.http import Response

from christmas_spiders import arguments
from christmas_spiders.config import Config
from christmas_spiders.items import ProductItem
from christmas_spiders.parsers import ProductPage
from christmas_spiders.storage import get_engine
from christmas_spiders.storage.schema import products
from christmas_spiders.vendors import VENDORS

logger = logging.getLogger(__name__)


def stored_link(config: Config, vendor: str, product_id: int) -> str:
    """The link of a stored product of this vendor (raises ArgumentError when there is none)."""
    with get_engine(config).connect() as connection:
        link = connection.execute(
            sa.select(products.c.link).where(
                products.c.id == product_id, products.c.vendor == vendor
            )
        ).scalar()
    if link is None:
        raise arguments.ArgumentError(f"product_id {product_id} is not a stored {vendor} product.")
    return link


def _on_origin(url: str, origin: str) -> str:
    """The same path on another origin (a stored live-shop link, crawled on a replica)."""
    parts, base = urlsplit(url), urlsplit(origin)
    return urlunsplit((base.scheme, base.netloc, parts.path, parts.query, ""))


class VendorSpider(scrapy.Spider):
    year_index_path: ClassVar[str]
    years_crawled: frozenset[int] = frozenset()  # the years a year/all crawl covered
    product_gone: bool = False  # url/product_id mode: the product page is gone

    def __init__(self, *, run_id: str | None = None, **kwargs: Any) -> None:
        unknown = arguments.unknown_arguments(kwargs)
        if unknown:
            raise arguments.ArgumentError(
                f"unknown argument(s) {', '.join(unknown)}; "
                "use year, url, product_id, base_url or run_id."
            )
        super().__init__()
        self.raw_arguments = {
            key: value for key, value in kwargs.items() if value not in ("", None)
        }
        self.run_id = arguments.parse_run_id(run_id)

    @classmethod
    def check_arguments(cls, spider_arguments: dict[str, Any], config: Config) -> dict[str, Any]:
        """Validate arguments before anything starts; returns what the spider will use."""
        spider_arguments = dict(spider_arguments)
        arguments.parse_run_id(spider_arguments.pop("run_id", None))
        unknown = arguments.unknown_arguments(spider_arguments)
        if unknown:
            raise arguments.ArgumentError(
                f"unknown argument(s) {', '.join(unknown)}; "
                "use year, url, product_id, base_url or run_id."
            )
        base_url = (
            arguments.parse_base_url(spider_arguments["base_url"])
            if spider_arguments.get("base_url")
            else config.base_url(cls.name)
        )
        origins = tuple(dict.fromkeys((base_url, VENDORS[cls.name].base_url)))
        target = arguments.parse_target(spider_arguments, origins)
        link = None
        if target.product_id is not None:
            link = _on_origin(stored_link(config, cls.name, target.product_id), base_url)
        return {"base_url": base_url, "target": target, "product_link": link}

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> VendorSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        checked = cls.check_arguments(spider.raw_arguments, crawler.settings["CHRISTMAS_CONFIG"])
        spider.base_url = checked["base_url"]
        spider.target = checked["target"]
        spider.product_link = checked["product_link"]
        # What crawl_runs.arguments records (base_url included: a replica run is not a live one).
        spider.run_arguments = spider.raw_arguments
        return spider

    # -- navigation ------------------------------------------------------------------------------

    async def start(self) -> AsyncIterator[Any]:
        if self.target.mode in ("url", "product_id"):
            url = self.target.url or self.product_link
            yield scrapy.Request(
                url,
                callback=self.parse_product,
                cb_kwargs={"year": None},
                # A gone product page is news here: the product gets delisted (E22).
                meta={"handle_httpstatus_list": [404, 410]},
            )
            return
        yield scrapy.Request(self.base_url + self.year_index_path, callback=self.parse_year_index)

    def parse_year_index(self, response: Response) -> Iterable[scrapy.Request]:
        links = self.year_links(response)
        wanted = set(self.target.years) if self.target.years else None
        listed = {year for year, _ in links}
        for year in sorted((wanted or set()) - listed):
            logger.warning("%s lists no year %d", self.name, year)
        self.crawler.stats.set_value("years/listed", len(listed))
        self.years_crawled = frozenset(listed if wanted is None else listed & wanted)
        for year, url in links:
            if wanted is None or year in wanted:
                yield self.category_request(url, year)

    def year_links(self, response: Response) -> list[tuple[int, str]]:
        """(year, category URL) pairs of the year index; both kinds of a year are kept."""
        raise NotImplementedError

    def category_request(self, url: str, year: int) -> scrapy.Request:
        return scrapy.Request(url, callback=self.parse_category, cb_kwargs={"year": year})

    def parse_category(self, response: Response, year: int) -> Iterable[scrapy.Request]:
        raise NotImplementedError

    # -- product pages ---------------------------------------------------------------------------

    def parse_product_page(self, response: Response) -> ProductPage:
        raise NotImplementedError

    def parse_product(self, response: Response, year: int | None) -> Iterable[ProductItem]:
        stats = self.crawler.stats
        if response.status in (404, 410):
            self.product_gone = True
            stats.inc_value("pages/skipped/not_found")
            logger.warning("%s: the product page is gone (%d)", response.url, response.status)
            return
        page = self.parse_product_page(response)
        for problem in page.problems:
            stats.inc_value(f"pages/problems/{problem.code}")
            logger.warning("%s: %s", response.url, problem.message)
        if page.fields is None:
            self.product_gone = self.product_gone or page.skipped == "no_product"
            stats.inc_value(f"pages/skipped/{page.skipped}")
            logger.warning("%s: no product on this page (%s), skipped", response.url, page.skipped)
            return
        fields = dict(page.fields)
        page_year = fields.pop("release_year", None)
        if year is not None and page_year is not None and page_year != year:
            stats.inc_value("pages/problems/year_conflict")
            logger.info(
                "%s: listed under %d but the page says %d; keeping %d",
                response.url,
                year,
                page_year,
                year,
            )
        yield ProductItem(
            vendor=self.name,
            release_year=year if year is not None else page_year,
            link=fields.pop("link", None) or response.url,
            **fields,
        )
