"""Item pipelines: normalize → validate → store.

Normalize turns shop text into our types, validate drops what cannot be stored (with a reason,
counted in the crawl stats), store writes batched upserts from a worker thread so the reactor
never waits on PostgreSQL. Writes that keep failing go to a dead-letter file; nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from itemadapter import ItemAdapter
from scrapy.crawler import Crawler
from scrapy.exceptions import CloseSpider, DropItem
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from christmas_spiders import normalize
from christmas_spiders.config import Config
from christmas_spiders.crawl_errors import FAILS_RUN
from christmas_spiders.domain import AVAILABILITY
from christmas_spiders.errors import one_line
from christmas_spiders.storage import deadletter, get_engine
from christmas_spiders.storage.embedded import EmbeddedServerError
from christmas_spiders.storage.products import UpsertResult, upsert_products
from christmas_spiders.storage.retries import is_transient, write_retrying
from christmas_spiders.vendors import VENDORS

logger = logging.getLogger(__name__)

FIRST_KEEPSAKE_YEAR = 1973
MAX_PRICE = 100_000  # dollars; anything above is a parsing accident, not an ornament
_NO_ARTIST = {"NA", "N/A", "NONE", "UNKNOWN", "-"}


def _stats_key(reason: str) -> str:
    return "items_dropped/" + reason.replace(" ", "_")


class Rejected(DropItem):
    """An item dropped by our pipelines; ``reason`` is short and names the stats counter."""

    def __init__(self, reason: str, item: Mapping[str, Any]) -> None:
        self.reason = reason
        super().__init__(f"{reason}: {item.get('link') or item.get('name') or item!r}")


class _Pipeline:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.config: Config = crawler.settings["CHRISTMAS_CONFIG"]

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> _Pipeline:
        return cls(crawler)

    def reject(self, reason: str, adapter: ItemAdapter) -> Rejected:
        assert self.crawler.stats is not None
        self.crawler.stats.inc_value(_stats_key(reason))
        return Rejected(reason, adapter)


class NormalizePipeline(_Pipeline):
    """Prices to Decimal, availability to three words, SKUs upper-case, names clean."""

    def process_item(self, item: Any) -> Any:
        adapter = ItemAdapter(item)
        get = adapter.get
        try:
            adapter["price"] = normalize.parse_price(get("price"))
            adapter["regular_price"] = normalize.parse_price(get("regular_price"))
        except ValueError:
            raise self.reject("bad price", adapter) from None
        if adapter["regular_price"] is not None and (
            adapter["price"] is None or adapter["regular_price"] <= adapter["price"]
        ):
            adapter["regular_price"] = None  # not on sale: only a higher pre-sale price counts
        adapter["name"] = normalize.clean_text(get("name"))
        adapter["sku"] = normalize.clean_sku(get("sku"))
        adapter["vendor_product_id"] = normalize.clean_text(get("vendor_product_id"))
        adapter["availability_text"] = normalize.clean_text(get("availability_text"))
        adapter["availability"] = normalize.availability_from_text(
            get("availability")
        ) or normalize.availability_from_text(adapter["availability_text"])
        adapter["currency"] = (normalize.clean_text(get("currency")) or "USD").upper()
        adapter["brand"] = normalize.clean_text(get("brand")) or "Hallmark"
        adapter["link"] = normalize.clean_text(get("link"))
        adapter["image_url"] = normalize.clean_text(get("image_url"))
        artist = normalize.clean_text(get("artist"))
        adapter["artist"] = None if artist and artist.upper() in _NO_ARTIST else artist
        adapter["series"] = normalize.clean_text(get("series"))
        if get("release_year") in (None, ""):
            adapter["release_year"] = normalize.year_in_name(adapter["name"])
        if not adapter["series"]:
            series = normalize.series_from_name(adapter["name"])
            if series:
                adapter["series"], adapter["series_number"] = series
        return item


class ValidatePipeline(_Pipeline):
    """Drop what must not be stored, with a reason that is logged and counted."""

    def process_item(self, item: Any) -> Any:
        adapter = ItemAdapter(item)
        spider = self.crawler.spider
        if adapter.get("vendor") not in VENDORS or (spider and adapter["vendor"] != spider.name):
            raise self.reject("wrong vendor", adapter)
        if not adapter.get("name"):
            raise self.reject("no name", adapter)
        link = urlsplit(adapter.get("link") or "")
        if link.scheme not in ("http", "https") or not link.netloc:
            raise self.reject("no link", adapter)
        if adapter.get("availability") not in AVAILABILITY:
            raise self.reject("unknown availability", adapter)
        try:
            year = int(adapter.get("release_year"))
        except (TypeError, ValueError):
            raise self.reject("no release year", adapter) from None
        if not FIRST_KEEPSAKE_YEAR <= year <= date.today().year + 1:
            raise self.reject("release year out of range", adapter)
        adapter["release_year"] = year
        price = adapter.get("price")
        if price is not None and price > MAX_PRICE:
            raise self.reject("implausible price", adapter)
        currency = adapter.get("currency") or ""
        if len(currency) != 3 or not currency.isalpha():
            raise self.reject("bad currency", adapter)
        number = adapter.get("series_number")
        if number is not None:
            try:
                adapter["series_number"] = int(number)
            except (TypeError, ValueError):
                raise self.reject("bad series number", adapter) from None
        return item


class StorePipeline(_Pipeline):
    """Batched upserts in a worker thread, retried with backoff, dead-lettered as a last resort.

    Items are buffered; a batch is written when it is full (the item that fills it waits,
    which gives back-pressure), every ``store_flush_seconds``, and when the spider closes.
    """

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        self.buffer: list[dict[str, Any]] = []
        self.lock = asyncio.Lock()
        self.dead_letter_path: Path | None = None
        self.engine = None
        self._ticker: asyncio.Task[None] | None = None

    async def open_spider(self) -> None:
        try:
            self.engine = await asyncio.to_thread(get_engine, self.config)
        except (SQLAlchemyError, EmbeddedServerError) as error:
            # Nothing could be stored: the crawl stops before its first request, saying why.
            logger.error("cannot store items: %s", one_line(error), extra=FAILS_RUN)
            raise CloseSpider("storage_unavailable") from error
        self._ticker = asyncio.get_running_loop().create_task(self._flush_periodically())
        self._ticker.add_done_callback(self._ticker_ended)

    @staticmethod
    def _ticker_ended(task: asyncio.Task[None]) -> None:
        """A periodic flush that raised is logged at once and fails the run (crawl_errors)."""
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            logger.error(
                "periodic store flush failed: %s", one_line(error), exc_info=error, extra=FAILS_RUN
            )

    async def process_item(self, item: Any) -> Any:
        self.buffer.append(ItemAdapter(item).asdict())
        if len(self.buffer) >= self.config.store_batch_size:
            await self.flush()
        return item

    async def close_spider(self) -> None:
        if self._ticker:
            self._ticker.cancel()
        await self.flush()

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.config.store_flush_seconds)
            # Shielded: close_spider cancels this task, and a cancelled await would release
            # the lock while the thread still writes, so the crawl could be recorded (and
            # products delisted) before its last batch is in the database.
            await asyncio.shield(self.flush())

    async def flush(self) -> None:
        async with self.lock:
            batch, self.buffer = self.buffer, []
            if batch:
                await asyncio.to_thread(self._write, batch)

    # -- worker thread ------------------------------------------------------------------------

    def _write(self, batch: list[dict[str, Any]]) -> None:
        stats = self.crawler.stats
        assert stats is not None
        run_id = getattr(self.crawler.spider, "crawl_run_id", None)
        retrying = write_retrying(
            self.config, "database write failed", lambda: stats.inc_value("store/retries")
        )
        try:
            result = retrying(self._upsert, batch, run_id)
        except DBAPIError as error:
            if is_transient(error):
                self._dead_letter(batch, error)
                return
            # One bad row fails the whole statement: write the batch row by row to keep the rest.
            result = UpsertResult()
            for item in batch:
                try:
                    result += retrying(self._upsert, [item], run_id)
                except DBAPIError as row_error:
                    self._dead_letter([item], row_error)
        except Exception as error:  # not the database's answer (a bug, a bad value): keep them
            logger.error("storing %d item(s) failed unexpectedly", len(batch), exc_info=error)
            self._dead_letter(batch, error)
            return
        stats.inc_value("store/created", result.created)
        stats.inc_value("store/updated", result.updated)
        stats.inc_value("store/unchanged", result.unchanged)

    def _upsert(self, items: list[dict[str, Any]], run_id: int | None) -> UpsertResult:
        assert self.engine is not None
        with self.engine.begin() as connection:
            return upsert_products(connection, items, run_id)

    def _dead_letter(self, items: list[dict[str, Any]], error: Exception) -> None:
        spider_name = self.crawler.spider.name if self.crawler.spider else "unknown"
        if self.dead_letter_path is None:
            self.dead_letter_path = deadletter.new_path(self.config.dead_letter_dir, spider_name)
        reason = one_line(error)
        try:
            deadletter.append(self.dead_letter_path, items, reason)
        except OSError as file_error:  # disk full, read-only or missing folder…
            self.crawler.stats.inc_value("store/lost", len(items))
            logger.error(
                "could not store %d item(s) (%s), and could not keep them in the dead-letter "
                "file %s either (%s: %s): they are not stored. The crawl run is marked failed; "
                "the next crawl fetches them again. Free the disk or fix CHRISTMAS_DATA_DIR.",
                len(items),
                reason,
                self.dead_letter_path,
                type(file_error).__name__,
                file_error.strerror or file_error,
            )
            return
        self.crawler.stats.inc_value("store/dead_lettered", len(items))
        self.crawler.stats.set_value("store/dead_letter_file", str(self.dead_letter_path))
        logger.error(
            "could not store %d item(s) (%s); kept in %s — load them later with "
            "`python -m christmas_spiders.storage replay %s`",
            len(items),
            reason,
            self.dead_letter_path,
            self.dead_letter_path,
        )
