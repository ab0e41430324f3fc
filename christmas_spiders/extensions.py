"""The crawl-run recorder: schema check at start, a `crawl_runs` row per run, a summary at the end.

At spider open it upgrades the schema (every writing process does) and starts a crawl run, or
joins the one named by ``-a run_id=``; the run id lands on ``spider.crawl_run_id`` for the store
pipeline. At spider close it adds this process's counters to the run, sets its status, and logs
a one-screen summary. A run is ``failed`` when the crawl did not finish normally or any item had
to be dead-lettered; ``scrapy crawl`` then exits non-zero (see ``commands/crawl.py``).

With Redis (README "Scale out") several workers share the run. Each one enters it in Redis once
the row is open (``RunScheduler.join_run``) and leaves it at close, after its items are stored.
A worker that is not the last to leave only adds its counters (the run's status stays as it
is); the last one sets the final status and, if the whole run finished cleanly (queue drained,
no worker lost or failed), delists what the run no longer found — with the years and gone
product the run recorded in Redis, whichever worker saw them. Only then is a distributed run
delisted; without Redis only the process that started the run delists, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import redis
import sqlalchemy as sa
from scrapy import Spider, signals
from scrapy.crawler import Crawler
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from christmas_spiders.config import Config
from christmas_spiders.distributed.connection import describe
from christmas_spiders.distributed.run import Outcome, RunClosed
from christmas_spiders.storage import delisting, get_engine, heartbeats, runs, upgrade
from christmas_spiders.storage.schema import crawl_runs

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
        self.distributed = False  # a worker of a run shared through Redis
        self.run_closed = False  # joined a distributed run that had already ended
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
        join_run = getattr(self.crawler.engine.scheduler, "join_run", None)
        if join_run is None:
            return
        self.distributed = True
        try:
            await join_run(self.run_id, getattr(spider, "run_arguments", {}))
        except RunClosed as closed:
            logger.info("%s: nothing to do", closed)
            self.run_closed = True
            await self.crawler.engine.close_spider_async(reason="run_closed")
        except redis.RedisError as error:
            logger.error("cannot start the crawl: Redis failed (%s)", describe(error))
            self.crawler.stats.set_value(STATUS_STAT, "failed")
            await self.crawler.engine.close_spider_async(reason="redis_unavailable")

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
                tag = self.crawler.settings.get("CRAWL_RUN_TAG")
                run_id = runs.start_run(connection, spider.name, arguments, tag=tag)
                logger.info("started crawl run %s", run_id)
            runs.enter_run(connection, run_id)  # until it leaves: see runs.sweep
        return run_id

    async def spider_closed(self, spider: Spider, reason: str) -> None:
        stats = self.crawler.stats
        if self.run_id is None:
            stats.set_value(STATUS_STAT, "failed")
            return
        if self.run_closed:  # a late worker: the run was over before it came; nothing to add
            return
        # Items dead-lettered, or lost because even the dead-letter file failed: the run failed.
        dead = stats.get_value("store/dead_lettered", 0) + stats.get_value("store/lost", 0)
        status = "finished" if reason == "finished" and not dead else "failed"
        outcome = None
        if self.distributed:
            outcome = getattr(self.crawler.engine.scheduler, "outcome", None)
            # A worker stopped on SIGTERM finished its in-flight work and handed the rest back:
            # not a failure of its own (the run's outcome says whether the run is complete).
            clean = reason in ("finished", "shutdown") and not dead
            status = "finished" if clean else "failed"
        stats.set_value(STATUS_STAT, status)
        counters = self._counters()
        try:
            status, changes = await asyncio.to_thread(
                self._close_run, spider, status, reason, counters, outcome
            )
            # With Redis: the run's status as this worker left it ("running" while siblings
            # work; "failed" when it ended the run incomplete — and then it exits non-zero).
            stats.set_value(STATUS_STAT, status)
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
        self,
        spider: Spider,
        status: str,
        reason: str,
        counters: dict[str, int],
        outcome: Outcome | None = None,
    ) -> tuple[str, dict[str, int]]:
        assert self.run_id is not None
        with get_engine(self.config).begin() as connection:
            if self.distributed:
                status = self._run_status(connection, spider, status, outcome)
            elif status == "finished" and not getattr(spider, "run_id", None):
                years = getattr(spider, "years_crawled", frozenset())
                self._delist(connection, spider, years, getattr(spider, "product_gone", False))
            stats = {k: _json_safe(v) for k, v in self.crawler.stats.get_stats().items()}
            runs.finish_run(
                connection,
                self.run_id,
                status=status,
                close_reason=reason,
                counters=counters,
                stats=stats,
            )
            return status, runs.count_changes(connection, self.run_id)

    def _run_status(
        self, connection: Connection, spider: Spider, status: str, outcome: Outcome | None
    ) -> str:
        """The status this worker writes to a distributed run, delisting if it ends the run.

        The row is locked first, so the last worker's verdict and a sibling's late counters
        never overwrite each other: a worker that is not the last keeps the run's status.
        """
        current = connection.execute(
            sa.select(crawl_runs.c.status).where(crawl_runs.c.id == self.run_id).with_for_update()
        ).scalar_one()
        if status == "failed" or outcome is None:
            return "failed"
        if not outcome.last:
            return current
        if not outcome.complete or current == "failed":
            logger.warning(
                "crawl run %s ended incomplete (%d request(s) left, %d worker(s) lost%s): "
                "nothing delisted",
                self.run_id,
                outcome.queued,
                outcome.lost,
                ", a worker failed" if current == "failed" else "",
            )
            return "failed"
        years = outcome.years
        if years is None:
            years = getattr(spider, "years_crawled", frozenset())
        self._delist(connection, spider, years, outcome.product_gone)
        return "finished"

    def _delist(
        self, connection: Connection, spider: Spider, years: Iterable[int], product_gone: bool
    ) -> None:
        """After a complete crawl, delist what it no longer found (see storage.delisting).

        Only the process that ends the run delists: without Redis the one that started it, with
        Redis the last worker to leave it.
        """
        stats, vendor = self.crawler.stats, spider.name
        target = getattr(spider, "target", None)
        if target is None:
            return
        years = frozenset(years)
        if target.mode in ("url", "product_id"):
            if product_gone:
                count = delisting.delist_product(
                    connection,
                    vendor,
                    self.run_id,
                    link=target.url,
                    product_id=target.product_id,
                )
                stats.set_value("delisted", count)
            return
        # Retries used up, or a Retry-After longer than we wait for (middlewares.py).
        gave_up = stats.get_value("retry/max_reached", 0)
        gave_up += stats.get_value("retry/retry_after_too_long", 0)
        if gave_up:
            # A page we gave up on may have listed products this crawl then never saw.
            stats.set_value("delisted/skipped_gave_up", gave_up)
            logger.warning(
                "%d request(s) gave up after their retries: the crawl may have missed "
                "products, so nothing is delisted",
                gave_up,
            )
            return
        started = runs.started_at(connection, self.run_id)
        seen = delisting.seen_per_year(connection, vendor, years, started)
        seen.update({year: seen.get(year, 0) for year in years})
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
        # A product page found but not read (robots.txt, too large, a redirect loop) is not gone.
        unread = getattr(spider, "unread_links", ())
        stats.set_value(
            "delisted",
            delisting.delist_unseen(connection, vendor, complete, started, self.run_id, unread),
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
        if stats.get("store/lost"):
            lines.append(f"NOT STORED {stats['store/lost']} item(s): the dead-letter file failed")
        return "\n".join(lines)


class CrawlHeartbeat:
    """The crawl's row of ``process_heartbeats`` (storage.heartbeats): written when the spider
    opens, every ``HEARTBEAT_INTERVAL`` seconds (10) with the run id and counters, and marked
    stopped when it closes. The writes run in a thread, never on the reactor."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.config: Config = crawler.settings["CHRISTMAS_CONFIG"]
        self.interval = crawler.settings.getfloat("HEARTBEAT_INTERVAL", 10.0)
        self.heartbeat: heartbeats.Heartbeat | None = None
        self._task: asyncio.Task[None] | None = None
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CrawlHeartbeat:
        return cls(crawler)

    def _details(self, spider: Spider) -> dict[str, Any]:
        stats = self.crawler.stats.get_stats()
        return {
            "spider": spider.name,
            "run_id": stats.get("crawl_run/id"),
            "requests": stats.get("downloader/request_count", 0),
            "items": stats.get("item_scraped_count", 0),
        }

    def _start(self, spider: Spider) -> None:
        self.heartbeat = heartbeats.Heartbeat(get_engine(self.config), "crawl", self.interval)
        self.heartbeat.start(**self._details(spider))

    def spider_opened(self, spider: Spider) -> None:
        # In a task of its own: opening the spider never waits for the database.
        self._task = asyncio.get_running_loop().create_task(self._beat(spider))

    async def _beat(self, spider: Spider) -> None:
        await asyncio.to_thread(self._start, spider)
        while True:
            await asyncio.sleep(self.interval)
            assert self.heartbeat is not None
            await asyncio.to_thread(self.heartbeat.beat, **self._details(spider))

    async def spider_closed(self, spider: Spider, reason: str) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.heartbeat is not None:
            details = {**self._details(spider), "close_reason": reason}
            await asyncio.to_thread(self.heartbeat.stop, **details)
