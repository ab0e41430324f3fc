"""Counting what a crawl read, for its health: an item pipeline placed after the store.

Per release year it counts the product pages read, the items, and the items showing each field
(``judge.FIELDS``); an item dropped by validation and a product page skipped for having no name
count as pages read with those fields missing. It remembers the products whose page lacked a
protected field (``storage.products.PROTECTED``: the store kept their stored values) and those
whose page was read but could not be stored.

At close — before the process leaves a distributed run, so the worker that ends the run finds
every worker's counts — it adds its counts to the run (``crawl_run_counts``), records which of
those products really had the field (``crawl_run_vanishes``), and marks the unstored products
as synced: their page was there, their stored values stand.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict
from typing import Any

from itemadapter import ItemAdapter
from scrapy import signals
from scrapy.crawler import Crawler
from sqlalchemy.exc import SQLAlchemyError

from christmas_spiders.config import Config
from christmas_spiders.crawl_errors import FAILS_RUN
from christmas_spiders.errors import one_line
from christmas_spiders.health.judge import FIELDS
from christmas_spiders.normalize import AVAILABLE, PREORDER
from christmas_spiders.storage import get_engine
from christmas_spiders.storage import health as storage
from christmas_spiders.storage.embedded import EmbeddedServerError
from christmas_spiders.storage.products import PROTECTED, vendor_key
from christmas_spiders.storage.retries import write_retrying

logger = logging.getLogger(__name__)

# Sent by the spiders for a product page they read but could not make an item of:
# send_catch_log(product_page_skipped, reason=…, year=… or None, url=…).
product_page_skipped = object()
# Sent by a quick sync for the products its listings showed unchanged (christmas_spiders.quick):
# send_catch_log(listing_confirmed, products=[{field: stored value}, …]). Each counts as a
# product page read with its stored fields, so a quick run is judged like a full one.
listing_confirmed = object()
_UNREADABLE = {"no_name"}  # skip reasons of a page that is there (no_product: the product is gone)
UNRECORDED_STAT = "health/unrecorded"  # the counts could not be written: the run is not judged


def _present(value: Any) -> bool:
    return value not in (None, "")


def _year(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _sum_stats(stats: dict[str, Any], prefix: str, leave_out: tuple[str, ...] = ()) -> int:
    return sum(
        value
        for key, value in stats.items()
        if key.startswith(prefix) and key.removeprefix(prefix) not in leave_out
    )


class HealthPipeline:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.config: Config = crawler.settings["CHRISTMAS_CONFIG"]
        self.counts: defaultdict[int, Counter[str]] = defaultdict(Counter)
        # Protected field → vendor_key → the group's values the page gave (key field missing).
        self.missing: dict[str, dict[str, dict[str, Any]]] = {key: {} for key in PROTECTED}
        self.unstored_keys: set[str] = set()
        self.unstored_links: set[str] = set()
        crawler.signals.connect(self.item_dropped, signal=signals.item_dropped)
        crawler.signals.connect(self.page_skipped, signal=product_page_skipped)
        crawler.signals.connect(self.products_confirmed, signal=listing_confirmed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> HealthPipeline:
        return cls(crawler)

    # -- counting ------------------------------------------------------------------------------

    def process_item(self, item: Any) -> Any:
        fields = ItemAdapter(item).asdict()
        self._count(fields)
        key = vendor_key(fields)
        for field, group in PROTECTED.items():
            if not _present(fields.get(field)):
                self.missing[field][key] = {column: fields.get(column) for column in group}
        return item

    def _count(self, fields: dict[str, Any]) -> None:
        counts = self.counts[_year(fields.get("release_year"))]
        counts["pages"] += 1
        counts["items"] += 1
        for name in FIELDS:
            if _present(fields.get(name)):
                counts[f"field/{name}"] += 1
        if fields.get("availability") in (AVAILABLE, PREORDER):
            counts["in_stock"] += 1
            if _present(fields.get("price")):
                counts["in_stock/price"] += 1

    def item_dropped(self, item: Any) -> None:
        fields = ItemAdapter(item).asdict()
        spider = self.crawler.spider
        if spider is None or fields.get("vendor") != spider.name:
            return
        self.counts[0]["items/dropped"] += 1
        self._count(fields)
        if _present(fields.get("vendor_product_id")) or _present(fields.get("link")):
            self.unstored_keys.add(vendor_key(fields))

    def products_confirmed(self, products: list[dict[str, Any]]) -> None:
        for fields in products:
            self._count(fields)
            # Apart too: their fields are the stored ones, so they say nothing of what pages
            # lost (judge: values that vanished are weighed against the pages read).
            counts = self.counts[_year(fields.get("release_year"))]
            for name in FIELDS:
                if _present(fields.get(name)):
                    counts[f"confirmed/field/{name}"] += 1

    def page_skipped(self, reason: str, year: int | None, url: str) -> None:
        if reason not in _UNREADABLE:
            return
        self.counts[year or 0]["pages"] += 1
        self.unstored_links.add(url)

    # -- at close ------------------------------------------------------------------------------

    async def close_spider(self) -> None:
        spider = self.crawler.spider
        run_id = getattr(spider, "crawl_run_id", None)
        if spider is None or run_id is None:
            return  # the run never opened: nothing is judged
        self._whole_run()
        try:
            await asyncio.to_thread(self._write_with_retries, spider.name, run_id)
        except (SQLAlchemyError, EmbeddedServerError) as error:
            # Unjudged vanishes stay unapplied: the stored values stand, which is safe.
            self.crawler.stats.set_value(UNRECORDED_STAT, 1)
            logger.error(
                "could not record what crawl run %s read, for its health: %s",
                run_id,
                one_line(error),
                extra=FAILS_RUN,
            )

    def _whole_run(self) -> None:
        stats = self.crawler.stats.get_stats()
        whole = self.counts[0]
        whole["requests"] += stats.get("downloader/request_count", 0)
        whole["retries"] += stats.get("retry/count", 0)
        whole["pages/problems"] += _sum_stats(stats, "pages/problems/")
        whole["pages/skipped"] += _sum_stats(stats, "pages/skipped/", ("not_found", "no_product"))
        whole["pages/unread"] += _sum_stats(stats, "pages/unread/")

    def _write_with_retries(self, vendor: str, run_id: int) -> None:
        """Retried like the store's batches (storage.retries.write_retrying)."""
        what = f"could not record what crawl run {run_id} read"
        write_retrying(self.config, what)(self._write, vendor, run_id)

    def _write(self, vendor: str, run_id: int) -> None:
        stats = self.crawler.stats
        with get_engine(self.config).begin() as connection:
            storage.add_counts(connection, run_id, self.counts)
            for field, pages in self.missing.items():
                found = storage.record_vanishes(connection, vendor, run_id, field, pages)
                if found:
                    stats.set_value(f"health/vanished/{field}", found)
            touched = storage.touch(connection, vendor, self.unstored_keys, self.unstored_links)
        if touched:
            stats.set_value("health/unstored_synced", touched)
