"""What the three shop spiders share: arguments, start requests and the product-page step.

A shop spider only says how to navigate its shop: ``year_index_path``, ``parse_year_index``
(year → category URL) and ``parse_category`` (listing pages → product pages). Product pages are
parsed by the shop's pure parser (``christmas_spiders.parsers``) into the fields of §C2; this
base turns them into items, counting and logging what a page got wrong.

Year discovery goes through the year-link cache (``christmas_spiders.distributed.yearlinks``):
a crawl of some years whose category links are all cached skips the year index; a cached link
that answers 404/410 is dropped and the index read again. With Redis, a worker joining a run
(``-a run_id=``) takes the run's arguments, and what the run learns (years crawled, a gone
product) is recorded in the run for whichever worker ends it.

A product page the crawl could not read — forbidden by robots.txt, over DOWNLOAD_MAXSIZE, a
redirect loop, retries given up — is counted (``pages/unread/<reason>``) and its link kept in
``unread_links``: the crawl-run recorder does not delist it as gone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import scrapy
import sqlalchemy as sa
from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import DownloadCancelledError, IgnoreRequest
from scrapy.http import Response
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.python.failure import Failure

from christmas_spiders import arguments
from christmas_spiders.config import Config
from christmas_spiders.config.keys import CONTACT_URL_UNSET
from christmas_spiders.distributed import yearlinks
from christmas_spiders.health.counting import product_page_skipped
from christmas_spiders.items import ProductItem
from christmas_spiders.parsers import ProductPage
from christmas_spiders.quick.sync import QuickSync
from christmas_spiders.storage import get_engine
from christmas_spiders.storage.schema import crawl_runs, products
from christmas_spiders.vendors import VENDORS

logger = logging.getLogger(__name__)
NO_CONTACT = (
    "%s: contact_url is not set, so the shop cannot tell who crawls it; set "
    "CHRISTMAS_CONTACT_URL to a page about your crawl or a mailto: address "
    "(docs/configuration.md)"
)

# Below the default (0) of the pages a listing yields: the next year waits for them, except
# for the last few, held below it (see _parse_year_listing).
YEAR_LISTING_PRIORITY = -1
HELD_PRIORITY = -2

# IgnoreRequest messages of Scrapy's robots.txt and redirect middlewares (other IgnoreRequests,
# such as a request handed back to the shared queue, are not pages lost).
_IGNORED = {"Forbidden by robots.txt": "robots_txt", "max redirections reached": "redirect_loop"}


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


def run_arguments(config: Config, vendor: str, run_id: int) -> dict[str, Any]:
    """The arguments a crawl run was started with (raises ArgumentError when there is no run)."""
    with get_engine(config).connect() as connection:
        found = connection.execute(
            sa.select(crawl_runs.c.arguments).where(
                crawl_runs.c.id == run_id, crawl_runs.c.spider == vendor
            )
        ).first()
    if found is None:
        raise arguments.ArgumentError(f"crawl run {run_id} does not exist for spider {vendor}.")
    return {str(key): str(value) for key, value in (found.arguments or {}).items()}


def _adopt_run_arguments(
    run_id: int, of_run: Mapping[str, str], given: Mapping[str, Any]
) -> dict[str, Any]:
    """A worker joining a distributed run crawls what the run crawls: the run's arguments,
    which the worker may repeat but not contradict."""
    for key, value in given.items():
        if of_run.get(key) != str(value):
            started = " ".join(f"-a {k}={v}" for k, v in sorted(of_run.items())) or "none"
            raise arguments.ArgumentError(
                f"crawl run {run_id} was started with arguments {started}; a worker joining it "
                f"takes them, so give only -a run_id={run_id} (not {key}={value})."
            )
    return dict(of_run)


def _on_origin(url: str, origin: str) -> str:
    """The same path on another origin (a stored live-shop link, crawled on a replica)."""
    parts, base = urlsplit(url), urlsplit(origin)
    return urlunsplit((base.scheme, base.netloc, parts.path, parts.query, ""))


class VendorSpider(scrapy.Spider):
    year_index_path: ClassVar[str]
    years_crawled: frozenset[int] = frozenset()  # the years a year/all crawl covered
    quick: QuickSync | None = None  # a quick sync's helper (-a mode=quick)
    product_gone: bool = False  # url/product_id mode: the product page is gone

    def __init__(self, *, run_id: str | None = None, **kwargs: Any) -> None:
        unknown = arguments.unknown_arguments(kwargs)
        if unknown:
            raise arguments.ArgumentError(
                f"unknown argument(s) {', '.join(unknown)}; "
                "use year, url, product_id, base_url, run_id, mode or refresh."
            )
        super().__init__()
        self.raw_arguments = {
            key: value for key, value in kwargs.items() if value not in ("", None)
        }
        self.run_id = arguments.parse_run_id(run_id)
        self.year_listings_asked: set[str] = set()
        self.unread_links: set[str] = set()  # product pages not read (see the module doc)

    @classmethod
    def check_arguments(cls, spider_arguments: dict[str, Any], config: Config) -> dict[str, Any]:
        """Validate arguments before anything starts; returns what the spider will use."""
        spider_arguments = dict(spider_arguments)
        run_id = arguments.parse_run_id(spider_arguments.pop("run_id", None))
        unknown = arguments.unknown_arguments(spider_arguments)
        if unknown:
            raise arguments.ArgumentError(
                f"unknown argument(s) {', '.join(unknown)}; "
                "use year, url, product_id, base_url, run_id, mode or refresh."
            )
        if run_id is not None and config.redis_url:
            of_run = run_arguments(config, cls.name, run_id)
            spider_arguments = _adopt_run_arguments(run_id, of_run, spider_arguments)
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
        return {
            "base_url": base_url,
            "target": target,
            "product_link": link,
            "arguments": spider_arguments,
        }

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> VendorSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        config = crawler.settings["CHRISTMAS_CONFIG"]
        given = {**spider.raw_arguments, "run_id": spider.run_id}
        checked = cls.check_arguments(given, config)
        spider.base_url = checked["base_url"]
        if (
            spider.base_url == VENDORS[cls.name].base_url
            and config.contact_url == CONTACT_URL_UNSET
        ):
            logger.warning(NO_CONTACT, cls.name)
        spider.target = checked["target"]
        spider.product_link = checked["product_link"]
        # What crawl_runs.arguments records (base_url included: a replica run is not a live one).
        spider.run_arguments = checked["arguments"]
        spider.year_link_cache = yearlinks.for_config(config)
        spider.quick = QuickSync(crawler, spider) if spider.target.sync == "quick" else None
        crawler.signals.connect(spider.request_dropped, signal=signals.request_dropped)
        return spider

    # -- navigation ------------------------------------------------------------------------------

    async def start(self) -> AsyncIterator[Any]:
        self.crawler.stats.set_value("crawl/mode", self.target.sync)
        if self.target.mode in ("url", "product_id"):
            url = self.target.url or self.product_link
            yield scrapy.Request(
                url,
                callback=self.parse_product,
                errback=self.product_failed,
                cb_kwargs={"year": None},
                # A gone product page is news here: the product gets delisted (E22).
                meta={"handle_httpstatus_list": [404, 410]},
            )
            return
        if self.target.years:
            wanted = set(self.target.years)
            cached = await asyncio.to_thread(self.year_link_cache.get, self.name, wanted)
            stats = self.crawler.stats
            if set(cached) == wanted:
                stats.inc_value("year_links/cache_hit", len(cached))
                self._note_years_crawled(frozenset(cached), authoritative=False)
                links = [
                    (year, _on_origin(url, self.base_url))
                    for year in sorted(cached)
                    for url in cached[year]
                ]
                for request in self.year_listing_requests(links, cached=True):
                    yield request
                return
            stats.inc_value("year_links/cache_miss", len(wanted - set(cached)))
        yield self.year_index_request()

    def year_index_request(self) -> scrapy.Request:
        return scrapy.Request(self.base_url + self.year_index_path, callback=self.parse_year_index)

    def parse_year_index(self, response: Response) -> Iterable[scrapy.Request]:
        links = self.year_links(response)
        wanted = set(self.target.years) if self.target.years else None
        listed = {year for year, _ in links}
        for year in sorted((wanted or set()) - listed):
            logger.warning("%s lists no year %d", self.name, year)
        self.crawler.stats.set_value("years/listed", len(listed))
        self._note_years_crawled(
            frozenset(listed if wanted is None else listed & wanted), authoritative=True
        )
        by_year: dict[int, list[str]] = {}
        for year, url in links:
            by_year.setdefault(year, []).append(url)
        self.year_link_cache.put(self.name, by_year)
        yield from self.year_listing_requests(
            [(year, url) for year, url in links if wanted is None or year in wanted]
        )

    # -- year listings, a few at a time ----------------------------------------------------------
    #
    # A year listing releases all its product requests at once (a view-all page: every product
    # of the year). Were every year asked for together, the crawler would hold the whole
    # catalog's requests and parse as many big pages at once. Instead the years form
    # YEAR_LISTINGS_AT_ONCE chains: a listing, once parsed (or failed), asks for the next of its
    # chain, at a lower priority than the pages it found, so the next year waits until they are
    # fetched. The rest of a chain travels in the request's meta (with Redis, in the shared
    # queue), so any worker can go on with it.

    def year_listing_requests(
        self, links: Iterable[tuple[int, str]], *, cached: bool = False
    ) -> list[scrapy.Request]:
        links = list(links)
        width = max(1, self.settings.getint("YEAR_LISTINGS_AT_ONCE", 1))
        heads = (self._year_listing(links[start::width], cached) for start in range(width))
        return [request for request in heads if request is not None]

    def _year_listing(self, chain: list[tuple[int, str]], cached: bool) -> scrapy.Request | None:
        """The first listing of `chain` not asked for yet by this process (the chain's links
        come from the year index, or again from it after a stale cached link), carrying the
        rest."""
        asked = self.year_listings_asked
        while chain and chain[0][1] in asked:
            chain = chain[1:]
        if not chain:
            return None
        (year, url), rest = chain[0], chain[1:]
        asked.add(url)
        request = (self.cached_category_request if cached else self.category_request)(url, year)
        return request.replace(
            callback=self._parse_year_listing,
            errback=self._year_listing_failed,
            priority=YEAR_LISTING_PRIORITY,
            dont_filter=True,  # a chain dropped as a duplicate would lose its rest
            meta={**request.meta, "year_chain": {"rest": rest, "cached": cached}},
        )

    def _parse_year_listing(self, response: Response, **kwargs: Any) -> Iterable[Any]:
        chain = response.meta["year_chain"]
        parse = self.parse_cached_category if chain["cached"] else self.parse_category
        found = list(parse(response, **kwargs))
        # The listing asked for again (e.g. to render it): that request goes on with the chain.
        if any(
            isinstance(out, scrapy.Request) and out.meta.get("year_chain") is chain for out in found
        ):
            yield from found
            return
        # The last few pages found wait below the next listing, so the next year loads while
        # they do instead of after them (one request per slot the shop allows).
        requests = [index for index, out in enumerate(found) if isinstance(out, scrapy.Request)]
        tail = self.settings.getint("CONCURRENT_REQUESTS_PER_DOMAIN", 1)
        held = set(requests[-tail:]) if len(requests) > 2 * tail else set()
        for index, out in enumerate(found):
            yield out.replace(priority=HELD_PRIORITY) if index in held else out
        yield from self._next_year_listing(chain)

    def _year_listing_failed(self, failure: Any) -> Iterable[scrapy.Request]:
        request = failure.request
        logger.error(
            "%s: the year listing failed (%s); going on with the next year",
            request.url,
            failure.getErrorMessage(),
        )
        self.crawler.stats.inc_value("year_listings/failed")
        yield from self._next_year_listing(request.meta["year_chain"])

    def _next_year_listing(self, chain: Mapping[str, Any]) -> Iterable[scrapy.Request]:
        request = self._year_listing(list(chain["rest"]), chain["cached"])
        if request is not None:
            yield request

    def cached_category_request(self, url: str, year: int) -> scrapy.Request:
        """A year category from the cache: a 404/410 is news (the link went stale)."""
        request = self.category_request(url, year)
        return request.replace(
            callback=self.parse_cached_category,
            meta={**request.meta, "handle_httpstatus_list": [404, 410]},
        )

    def parse_cached_category(self, response: Response, **kwargs: Any) -> Iterable[Any]:
        if response.status in (404, 410):
            year = kwargs["year"]
            self.crawler.stats.inc_value("year_links/stale")
            logger.warning(
                "%s: the cached link of %s %d is gone (%d); reading the year index again",
                response.url,
                self.name,
                year,
                response.status,
            )
            self.year_link_cache.drop(self.name, year)
            yield self.year_index_request()
            return
        yield from self.parse_category(response, **kwargs)

    def _note_years_crawled(self, years: frozenset[int], *, authoritative: bool) -> None:
        """The years this crawl covers (the index's word replaces the cache's)."""
        self.years_crawled = years
        record = getattr(self.crawler.engine.scheduler, "record_years", None)
        if record is not None:  # a distributed run: whichever worker ends it needs them
            record(years, authoritative=authoritative)

    def _note_product_gone(self) -> None:
        self.product_gone = True
        record = getattr(self.crawler.engine.scheduler, "record_product_gone", None)
        if record is not None:
            record()

    def year_links(self, response: Response) -> list[tuple[int, str]]:
        """(year, category URL) pairs of the year index; both kinds of a year are kept."""
        raise NotImplementedError

    def category_request(self, url: str, year: int) -> scrapy.Request:
        return scrapy.Request(url, callback=self.parse_category, cb_kwargs={"year": year})

    def parse_category(self, response: Response, year: int) -> Iterable[scrapy.Request]:
        raise NotImplementedError

    def listed_products(self, response: Response, year: int, urls: Iterable[str]) -> Iterable[Any]:
        """The listed product pages to read: all (full sync), or as the tiles say (quick)."""
        if self.quick is not None:
            return self.quick.listed(response, year, urls)
        return [self.product_request(url, year) for url in urls]

    def product_request(self, url: str, year: int) -> scrapy.Request:
        return scrapy.Request(
            url, callback=self.parse_product, errback=self.product_failed, cb_kwargs={"year": year}
        )

    # -- pages the crawl could not read --------------------------------------------------------

    def product_failed(self, failure: Failure) -> None:
        """Errback of product pages. A 404/410 is news (the product is gone and will be
        delisted); any other failure leaves the product as stored."""
        if failure.check(HttpError):
            status = failure.value.response.status
            if status in (404, 410):
                self.crawler.stats.inc_value("pages/skipped/not_found")
                logger.info("%s: the product page is gone (%d)", failure.request.url, status)
                return
            reason = f"http_{status}"
        elif failure.check(DownloadCancelledError):
            reason = "too_large"  # DOWNLOAD_MAXSIZE: nothing else cancels a download
        elif failure.check(IgnoreRequest):
            reason = _IGNORED.get(str(failure.value), "")
            if not reason:
                return
        else:
            reason = failure.type.__name__ if failure.type else "error"
        self.note_unread(failure.request, reason)

    def request_dropped(self, request: scrapy.Request) -> None:
        """A redirect back to a URL of its own chain is dropped by the duplicate filter, before
        REDIRECT_MAX_TIMES: a loop."""
        if request.url in request.meta.get("redirect_urls", ()):
            self.note_unread(request, "redirect_loop")

    def note_unread(self, request: scrapy.Request, reason: str) -> None:
        url = request.meta.get("redirect_urls", [request.url])[0]  # as the listing linked it
        self.unread_links.add(url)
        self.crawler.stats.inc_value(f"pages/unread/{reason}")
        logger.warning("%s: page not read (%s); its product stays as stored", url, reason)

    # -- product pages ---------------------------------------------------------------------------

    def parse_product_page(self, response: Response) -> ProductPage:
        raise NotImplementedError

    def parse_product(self, response: Response, year: int | None) -> Iterable[ProductItem]:
        stats = self.crawler.stats
        if response.status in (404, 410):
            self._note_product_gone()
            stats.inc_value("pages/skipped/not_found")
            logger.warning("%s: the product page is gone (%d)", response.url, response.status)
            return
        page = self.parse_product_page(response)
        for problem in page.problems:
            stats.inc_value(f"pages/problems/{problem.code}")
            logger.warning("%s: %s", response.url, problem.message)
        if page.fields is None:
            if page.skipped == "no_product":
                self._note_product_gone()
            stats.inc_value(f"pages/skipped/{page.skipped}")
            self.crawler.signals.send_catch_log(
                product_page_skipped, reason=page.skipped, year=year, url=response.url
            )
            logger.warning("%s: no product on this page (%s), skipped", response.url, page.skipped)
            return
        if self.quick is not None:
            self.quick.page_read(response, page.fields)
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
