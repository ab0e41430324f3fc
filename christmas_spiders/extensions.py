"""The crawl-run recorder: schema check at start, a `crawl_runs` row per run, a summary at the end.

At spider open it upgrades the schema (every writing process does) and starts a crawl run, or
joins the one named by ``-a run_id=``; the run id lands on ``spider.crawl_run_id`` for the store
pipeline. At spider close it adds this process's counters to the run, sets its status, and logs
a one-screen summary. A run is ``failed`` when the crawl did not finish normally or any item had
to be dead-lettered; ``scrapy crawl`` then exits non-zero (see ``commands/crawl.py``).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from scrapy import Spider, signals
from scrapy.crawler import Crawler
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from christmas_spiders.config import Config
from christmas_spiders.storage import delisting, get_engine, runs, upgrade

logger = logging.getLogger(__name__)

STATUS_STAT = "crawl_run/status"


def _json_safe(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_safe(item) for item in value]
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)


class CrawlRunRecorder:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.config: Config = crawler.settings["CHRISTMAS_CONFIG"]
        self.run_id: int | None = None
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CrawlRunRecorder:
        return cls(crawler)

    async def spider_opened(self, spider: Spider) -> None:
        try:
            self.run_id = await asyncio.to_thread(self._open_run, spider)
        except (SQLAlchemyError, runs.UnknownRun) as error:
            logger.error("cannot start the crawl: %s", str(error).strip().splitlines()[0])
            self.crawler.stats.set_value(STATUS_STAT, "failed")
            await self.crawler.engine.close_spider_async(reason="storage_unavailable")
            return
        spider.crawl_run_id = self.run_id
        self.crawler.stats.set_value("crawl_run/id", self.run_id)

    def _open_run(self, spider: Spider) -> int:
        engine = get_engine(self.config)
        logger.info("database %s", engine.url.render_as_string(hide_password=True))
        upgrade(engine, self.config)
        arguments = dict(getattr(spider, "run_arguments", {}))
        with engine.begin() as connection:
            joined = getattr(spider, "run_id", None)  # -a run_id=…
            if joined:
                run_id = runs.join_run(connection, spider.name, int(joined))
                logger.info("joined crawl run %s", run_id)
            else:
                run_id = runs.start_run(connection, spider.name, arguments)
                logger.info("started crawl run %s", run_id)
        return run_id

    async def spider_closed(self, spider: Spider, reason: str) -> None:
        stats = self.crawler.stats
        if self.run_id is None:
            stats.set_value(STATUS_STAT, "failed")
            return
        dead = stats.get_value("store/dead_lettered", 0)
        status = "finished" if reason == "finished" and not dead else "failed"
        stats.set_value(STATUS_STAT, status)
        counters = self._counters()
        try:
            changes = await asyncio.to_thread(self._close_run, spider, status, reason, counters)
        except SQLAlchemyError as error:
            logger.error(
                "could not record the end of crawl run %s: %s",
                self.run_id,
                str(error).strip().splitlines()[0],
            )
            changes = None
        logger.info(self._summary(spider, status, reason, counters, changes))

    def _counters(self) -> dict[str, int]:
        stats = self.crawler.stats.get_stats()
        return {
            "requests": stats.get("downloader/request_count", 0),
            "items_created": stats.get("store/created", 0),
            "items_updated": stats.get("store/updated", 0),
            "items_unchanged": stats.get("store/unchanged", 0),
            "items_dropped": stats.get("item_dropped_count", 0),
            "items_dead_lettered": stats.get("store/dead_lettered", 0),
            "errors": stats.get("log_count/ERROR", 0),
            "browser_renders": stats.get("selenium/renders", 0),
        }

    def _close_run(
        self, spider: Spider, status: str, reason: str, counters: dict[str, int]
    ) -> dict[str, int]:
        assert self.run_id is not None
        with get_engine(self.config).begin() as connection:
            if status == "finished" and not getattr(spider, "run_id", None):
                self._delist(connection, spider)
            stats = {k: _json_safe(v) for k, v in self.crawler.stats.get_stats().items()}
            runs.finish_run(
                connection,
                self.run_id,
                status=status,
                close_reason=reason,
                counters=counters,
                stats=stats,
            )
            return runs.count_changes(connection, self.run_id)

    def _delist(self, connection: Connection, spider: Spider) -> None:
        """After a complete crawl, delist what it no longer found (see storage.delisting).

        Only the process that started the run delists; workers that joined it do not.
        """
        stats, vendor = self.crawler.stats, spider.name
        target = getattr(spider, "target", None)
        if target is None:
            return
        if target.mode in ("url", "product_id"):
            if spider.product_gone:
                count = delisting.delist_product(
                    connection,
                    vendor,
                    self.run_id,
                    link=target.url,
                    product_id=target.product_id,
                )
                stats.set_value("delisted", count)
            return
        started = runs.started_at(connection, self.run_id)
        seen = delisting.seen_per_year(connection, vendor, spider.years_crawled, started)
        seen.update({year: seen.get(year, 0) for year in spider.years_crawled})
        previous = delisting.previous_counts(connection, vendor, self.run_id)
        ratio = self.config.delist_min_ratio
        complete = []
        for year, count in sorted(seen.items()):
            if count < ratio * previous.get(year, 0):
                stats.inc_value("delisted/skipped_incomplete_years")
                logger.warning(
                    "%s %d looks incomplete (%d products, %d last time): nothing delisted",
                    vendor,
                    year,
                    count,
                    previous[year],
                )
            else:
                complete.append(year)
        stats.set_value(delisting.SEEN_STAT, {str(year): seen[year] for year in complete})
        stats.set_value(
            "delisted",
            delisting.delist_unseen(connection, vendor, complete, started, self.run_id),
        )

    def _summary(
        self,
        spider: Spider,
        status: str,
        reason: str,
        counters: dict[str, int],
        changes: dict[str, int] | None,
    ) -> str:
        stats = self.crawler.stats.get_stats()
        arguments = " ".join(f"{k}={v}" for k, v in getattr(spider, "run_arguments", {}).items())
        dropped = {
            key.removeprefix("items_dropped/").replace("_", " "): value
            for key, value in sorted(stats.items())
            if key.startswith("items_dropped/")
        }
        lines = [
            f"crawl run {self.run_id} of {spider.name} {arguments}".rstrip()
            + f": {status} ({reason})",
            f"items     {counters['items_created']} created, {counters['items_updated']} updated, "
            f"{counters['items_unchanged']} unchanged, {counters['items_dropped']} dropped, "
            f"{counters['items_dead_lettered']} dead-lettered, "
            f"{stats.get('delisted', 0)} delisted",
            "changes   "
            + (
                ", ".join(f"{count} {name}" for name, count in sorted(changes.items())) or "none"
                if changes is not None
                else "unknown (database unavailable)"
            ),
            "dropped   "
            + (", ".join(f"{reason}: {count}" for reason, count in dropped.items()) or "none"),
            f"requests  {counters['requests']}, {counters['browser_renders']} browser renders, "
            f"{counters['errors']} errors logged",
        ]
        if counters["items_dead_lettered"]:
            lines.append(f"dead letters in {stats.get('store/dead_letter_file')}")
        return "\n".join(lines)
