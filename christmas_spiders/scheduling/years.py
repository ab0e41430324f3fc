"""The years each shop lists: read from its year index, or from the year-link cache.

The index is the page the spider starts from (``year_index_path`` of the shop's spider, on
``config.base_url(vendor)``), parsed by the shop's pure ``year_links(selector, url)``. Reading
it is one polite request: the crawler's User-Agent, robots.txt obeyed, a short timeout. With
Redis, the year-link cache (``distributed.yearlinks``) answers first when it holds the shop's
years (its entries expire after ``year_links_ttl_seconds``), and every index read refreshes it.

A cache answer is a lower bound (a year whose cached link went stale is dropped from the cache
on its own), so only an index read is *authoritative*: only then are jobs of years the shop no
longer lists removed.
"""

from __future__ import annotations

import importlib
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import date
from urllib.parse import urljoin

from parsel import Selector
from protego import Protego

from christmas_spiders.arguments import FIRST_YEAR
from christmas_spiders.config import Config
from christmas_spiders.distributed import yearlinks

logger = logging.getLogger(__name__)

INDEX_TIMEOUT_SECONDS = 20.0


class YearIndexError(RuntimeError):
    """The shop's year index could not be read; one sentence naming the shop and URL."""


@dataclass(frozen=True)
class Listing:
    vendor: str
    years: tuple[int, ...]
    source: str  # "index" or "cache"

    @property
    def authoritative(self) -> bool:
        return self.source == "index"


def user_agent(config: Config) -> str:
    """The crawler's User-Agent (the ProjectConfig add-on gives crawls the same)."""
    return config.user_agent


def index_url(config: Config, vendor: str) -> str:
    spiders = importlib.import_module(f"christmas_spiders.spiders.{vendor}")
    spider = next(
        value
        for value in vars(spiders).values()
        if isinstance(value, type) and getattr(value, "name", None) == vendor
    )
    return config.base_url(vendor) + spider.year_index_path


def crawlable(years: set[int] | list[int]) -> tuple[int, ...]:
    """The years a crawl accepts (`-a year=`): FIRST_YEAR to next year."""
    last = date.today().year + 1
    return tuple(sorted(year for year in years if FIRST_YEAR <= year <= last))


def _get(url: str, agent: str) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"User-Agent": agent})
    try:
        with urllib.request.urlopen(request, timeout=INDEX_TIMEOUT_SECONDS) as response:
            charset = response.headers.get_content_charset() or "utf-8"
            return response.status, response.read().decode(charset, errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, ""


def read_index(config: Config, vendor: str) -> dict[int, list[str]]:
    """Year → category URLs, from the shop's year index; YearIndexError when it cannot."""
    url = index_url(config, vendor)
    agent = user_agent(config)
    try:
        status, robots = _get(urljoin(url, "/robots.txt"), agent)
        if status < 400 and not Protego.parse(robots).can_fetch(url, agent):
            raise YearIndexError(f"robots.txt of {vendor} disallows its year index {url}.")
        status, html = _get(url, agent)
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise YearIndexError(
            f"the year index of {vendor} ({url}) is unreachable: {reason}."
        ) from None
    if status != 200:
        raise YearIndexError(f"the year index of {vendor} ({url}) answered HTTP {status}.")
    parser = importlib.import_module(f"christmas_spiders.parsers.{vendor}")
    by_year: dict[int, list[str]] = {}
    for year, link in parser.year_links(Selector(text=html), url):
        by_year.setdefault(year, []).append(link)
    if not by_year:
        raise YearIndexError(f"the year index of {vendor} ({url}) lists no year.")
    return by_year


def listed_years(config: Config, vendor: str, *, prefer_cache: bool) -> Listing:
    """The years `vendor` lists. With Redis and `prefer_cache`, the cache answers if it can;
    an index read refreshes the cache. Raises YearIndexError when the index cannot be read."""
    cache = yearlinks.for_config(config) if config.redis_url else None
    if cache is not None and prefer_cache:
        last = date.today().year + 1
        cached = cache.get(vendor, range(FIRST_YEAR, last + 1))
        if cached:
            return Listing(vendor, crawlable(list(cached)), "cache")
    by_year = read_index(config, vendor)
    if cache is not None:
        cache.put(vendor, by_year)
    years = crawlable(list(by_year))
    ignored = sorted(set(by_year) - set(years))
    if ignored:
        logger.warning(
            "%s lists year(s) a crawl does not accept, ignored: %s",
            vendor,
            ", ".join(map(str, ignored)),
        )
    return Listing(vendor, years, "index")
