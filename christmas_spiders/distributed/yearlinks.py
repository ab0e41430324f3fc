"""The year → category link cache of each shop (docs/scale-out.md, "Year-link cache").

A crawl of some years whose links are all cached skips the year index and goes straight to
the categories; a cached link that answers 404/410 is dropped and the index fetched again (it
refreshes the cache). A crawl of every year always reads the index, to find new years.

With Redis, one key per shop and year, ``<prefix>:cache:integration:<vendor>:links:year:<year>``
= JSON list of the year's category URLs (a year can have two categories), expiring after
``year_links_ttl_seconds``. Without Redis the cache lives in this process's memory (so a lone
``scrapy crawl`` process in effect always reads the index).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Protocol

import redis

from christmas_spiders.config import Config
from christmas_spiders.distributed import connection, keys

logger = logging.getLogger(__name__)


class YearLinks(Protocol):
    def get(self, vendor: str, years: Iterable[int]) -> dict[int, list[str]]:
        """The cached URLs of those years (years not cached are left out)."""

    def put(self, vendor: str, links: dict[int, list[str]]) -> None:
        """Cache the URLs of each year (replacing what was cached)."""

    def drop(self, vendor: str, year: int) -> None:
        """Forget a year (its cached link turned out stale)."""


class RedisYearLinks:
    def __init__(self, server: redis.Redis, prefix: str, ttl_seconds: int) -> None:
        self.server = server
        self.prefix = prefix
        self.ttl = int(ttl_seconds)

    def get(self, vendor: str, years: Iterable[int]) -> dict[int, list[str]]:
        years = sorted(set(years))
        if not years:
            return {}
        values = self.server.mget([keys.year_link(self.prefix, vendor, year) for year in years])
        found = {}
        for year, value in zip(years, values, strict=True):
            if value is None:
                continue
            try:
                urls = json.loads(value)
            except ValueError:
                continue
            if isinstance(urls, list) and urls and all(isinstance(url, str) for url in urls):
                found[year] = urls
        return found

    def put(self, vendor: str, links: dict[int, list[str]]) -> None:
        pipe = self.server.pipeline(transaction=False)
        for year, urls in links.items():
            pipe.set(keys.year_link(self.prefix, vendor, year), json.dumps(urls), ex=self.ttl)
        pipe.execute()

    def drop(self, vendor: str, year: int) -> None:
        self.server.delete(keys.year_link(self.prefix, vendor, year))


class MemoryYearLinks:
    """The same cache in this process (no Redis configured); `clock` is injectable for tests."""

    _lock = threading.Lock()
    _entries: dict[tuple[str, int], tuple[float, list[str]]] = {}  # noqa: RUF012 (shared)

    def __init__(self, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl_seconds
        self.clock = clock

    def get(self, vendor: str, years: Iterable[int]) -> dict[int, list[str]]:
        now = self.clock()
        with self._lock:
            return {
                year: list(entry[1])
                for year in years
                if (entry := self._entries.get((vendor, year))) and entry[0] > now
            }

    def put(self, vendor: str, links: dict[int, list[str]]) -> None:
        expires = self.clock() + self.ttl
        with self._lock:
            for year, urls in links.items():
                self._entries[(vendor, year)] = (expires, list(urls))

    def drop(self, vendor: str, year: int) -> None:
        with self._lock:
            self._entries.pop((vendor, year), None)


class SafeYearLinks:
    """A cache failure is never the crawl's: it is logged and counts as a miss."""

    def __init__(self, cache: YearLinks) -> None:
        self.cache = cache

    def get(self, vendor: str, years: Iterable[int]) -> dict[int, list[str]]:
        try:
            return self.cache.get(vendor, years)
        except redis.RedisError as error:
            logger.warning("year-link cache unavailable (%s): reading the index", error)
            return {}

    def put(self, vendor: str, links: dict[int, list[str]]) -> None:
        try:
            self.cache.put(vendor, links)
        except redis.RedisError as error:
            logger.warning("could not cache the year links (%s)", error)

    def drop(self, vendor: str, year: int) -> None:
        try:
            self.cache.drop(vendor, year)
        except redis.RedisError as error:
            logger.warning("could not drop a stale year link (%s)", error)


def for_config(config: Config) -> YearLinks:
    """Redis when configured, else memory."""
    if config.redis_url:
        server = connection.client(config.redis_url)
        cache: YearLinks = RedisYearLinks(
            server, config.redis_key_prefix, config.year_links_ttl_seconds
        )
    else:
        cache = MemoryYearLinks(config.year_links_ttl_seconds)
    return SafeYearLinks(cache)
