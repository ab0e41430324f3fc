"""The crawl-run recorder: schema check at start, a `crawl_runs` row per run, a summary at the end.

At spider open it upgrades the schema (every writing process does) and starts a crawl run, or
joins the one named by ``-a run_id=``; the run id lands on ``spider.crawl_run_id`` for the store
pipeline. Once the crawl has closed (every component closed, at engine_stopped) it adds this
process's counters to the run, sets its status, and logs a one-screen summary. A run is
``failed`` when the crawl did not finish normally, any item had to be dead-lettered, or a part
of the crawl broke (an exception in a signal handler or a component, see ``crawl_errors``,
which counts every error the crawl logged); ``scrapy crawl`` then exits non-zero (see
``commands/crawl.py``). A crawl that stopped before its run opened is recorded failed too.
When the run stored any change, the process that ends it then refreshes the market views
(``storage.market``; a failure there is a warning and ``market/refresh_failed``, not the run's).

With Redis (README "Scale out") several workers share the run. Each one enters it in Redis once
the row is open (``SharedRequestScheduler.join_run``) and leaves it at close, after its items
are stored.
A worker that is not the last to leave only adds its counters (the run's status stays as it
is); the last one sets the final status and, if the whole run finished cleanly (queue drained,
no worker lost or failed), delists what the run no longer found — with the years and gone
product the run recorded in Redis, whichever worker saw them. Only then is a distributed run
delisted; without Redis only the run's owner delists: the first process to enter it (the one
that started it, or the one crawl the scheduler opened it for; ``runs.enter_run``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import redis
from scrapy import Spider, signals
from scrapy.crawler import Crawler
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from christmas_spiders import crawl_errors, health
from christmas_spiders.config import Config
from christmas_spiders.crawl_errors import FAILS_RUN
from christmas_spiders.distributed.shared_run import Outcome, RunClosed
from christmas_spiders.errors import one_line
from christmas_spiders.quick.sync import summary_lines as quick_summary
from christmas_spiders.storage import delisting, get_engine, market, runs, upgrade
from christmas_spiders.storage.embedded import EmbeddedServerError

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
        self.owner = False  # without Redis: this process crawls the run whole (runs.enter_run)
        self.distributed = False  # a worker of a run shared through Redis
        self.run_closed = False  # joined a distributed run that had already ended
        self.storage_failed = False  # the run could not be opened: nothing can be written
        # Every error logged from now until the run is recorded (crawl_errors).
        self.errors = crawl_errors.ErrorLog().install()
        self.opened = False  # spider_opened came
        self.engine_up = False  # engine_started came: engine_stopped will follow
        self.closed: tuple[Spider, str, Outcome | None] | None = None  # at spider_closed
        self.recorded = False
        self.health: health.Verdict | None = None  # judged by the process that ends the run
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)
        crawler.signals.connect(self.engine_started, signal=signals.engine_started)
        crawler.signals.connect(self.engine_stopped, signal=signals.engine_stopped)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CrawlRunRecorder:
        return cls(crawler)

    async def spider_opened(self, spider: Spider) -> None:
        self.opened = True
        try:
            self.run_id = await asyncio.to_thread(self._open_run, spider)
        except (SQLAlchemyError, EmbeddedServerError, runs.UnknownRun) as error:
            logger.error("cannot start the crawl: %s", one_line(error))
            self.storage_failed = True
            await self.crawler.engine.close_spider_async(reason="storage_unavailable")
            return
        except Exception as error:
            # A fault, not the database's answer (a bug): no crawl goes on without its run; the
            # run is recorded failed at close if the fault allows.
            logger.error(
                "cannot start the crawl run: %s", one_line(error), exc_info=True, extra=FAILS_RUN
            )
            await self.crawler.engine.close_spider_async(reason="run_not_started")
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
            logger.error("cannot start the crawl: Redis failed (%s)", one_line(error))
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
                run_id = runs.start_run(connection, spider.name, arguments)
                logger.info("started crawl run %s", run_id)
            # Until it leaves (see runs.sweep); the first process in the run owns it.
            self.owner = runs.enter_run(connection, run_id)
        return run_id

    def engine_started(self) -> None:
        self.engine_up = True

    async def spider_closed(self, spider: Spider, reason: str) -> None:
        if not self.opened:  # Scrapy logs the component's error once the crawl is over
            logger.error(
                "the crawl stopped before its spider opened: a component failed to start",
                extra=FAILS_RUN,
            )
        outcome = None
        if self.distributed:  # the scheduler is gone by engine_stopped
            outcome = getattr(self.crawler.engine.scheduler, "outcome", None)
        self.closed = (spider, reason, outcome)
        # The run is recorded once every other component has closed, so the errors they log
        # are counted: at engine_stopped, which Scrapy sends after the spider_closed handlers
        # (and their errors) are done. A crawl stopped while opening never starts the engine,
        # and gets no engine_stopped: it is recorded now.
        if not self.engine_up:
            await self._record(*self.closed)

    async def engine_stopped(self) -> None:
        if self.closed is not None and not self.recorded:
            await self._record(*self.closed)

    async def _record(self, spider: Spider, reason: str, outcome: Outcome | None) -> None:
        self.recorded = True
        if self.run_closed:  # a late worker: the run was over before it came; nothing to add
            self.errors.remove()
            return
        stats = self.crawler.stats
        status = self._status(reason)
        stats.set_value(STATUS_STAT, status)
        for key, value in self.errors.stats().items():
            stats.set_value(key, value)
        counters = self._counters()
        changes = None
        if not self.storage_failed:  # else that failure was logged, and nothing can be written
            try:
                status, changes = await asyncio.to_thread(
                    self._close_run, spider, status, reason, counters, outcome
                )
            except Exception as error:  # whatever it was, the summary follows and the exit fails
                logger.error(
                    "could not record the end of crawl run %s: %s",
                    self.run_id or "(not started)",
                    one_line(error),
                    exc_info=not isinstance(error, SQLAlchemyError | EmbeddedServerError),
                    extra=FAILS_RUN,
                )
                status = "failed"
        if changes and (not self.distributed or (outcome is not None and outcome.last)):
            await asyncio.to_thread(self._refresh_market)
        # With Redis: the run's status as this worker left it ("running" while siblings
        # work; "failed" when it ended the run incomplete — and then it exits non-zero).
        stats.set_value(STATUS_STAT, status)
        self.errors.remove()
        logger.info(self._summary(spider, status, reason, counters, changes))

    def _refresh_market(self) -> None:
        """The run changed something and this process ended it: the market views follow
        (storage.market). A failure is one warning and a stat, never the crawl's."""
        done = market.refresh_quietly(get_engine(self.config), f"after crawl run {self.run_id}")
        if done is None:
            self.crawler.stats.inc_value("market/refresh_failed")
        else:
            self.crawler.stats.set_value("market/refresh_seconds", round(done.seconds, 2))

    def _status(self, reason: str) -> str:
        """This process's verdict: finished, or failed when items were dead-lettered or lost
        (even the dead-letter file failed), a part of the crawl broke (crawl_errors), the run
        never opened, or the crawl did not finish."""
        stats = self.crawler.stats
        dead = stats.get_value("store/dead_lettered", 0) + stats.get_value("store/lost", 0)
        # A worker stopped on SIGTERM finished its in-flight work and handed the rest back:
        # not a failure of its own (the run's outcome says whether the run is complete).
        clean = ("finished", "shutdown") if self.distributed else ("finished",)
        broken = dead or self.errors.failing or self.run_id is None
        return "finished" if reason in clean and not broken else "failed"

    def _counters(self) -> dict[str, int]:
        stats = self.crawler.stats.get_stats()
        return {
            "requests": stats.get("downloader/request_count", 0),
            "items_created": stats.get("store/created", 0),
            "items_updated": stats.get("store/updated", 0),
            "items_unchanged": stats.get("store/unchanged", 0),
            "items_dropped": stats.get("item_dropped_count", 0),
            "items_dead_lettered": stats.get("store/dead_lettered", 0),
            "errors": self.errors.count,  # every error line, not only Scrapy's count of them
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
        if self.run_id is None:  # the crawl stopped before its run opened: record it failed
            self.run_id = self._open_run(spider)
            self.crawler.stats.set_value("crawl_run/id", self.run_id)
        with get_engine(self.config).begin() as connection:
            self.health = self._judge(connection, spider, reason, counters, outcome)
            if self.distributed:
                status = self._run_status(connection, spider, status, outcome)
            elif status == "finished" and self.owner:
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

    def _judge(
        self,
        connection: Connection,
        spider: Spider,
        reason: str,
        counters: dict[str, int],
        outcome: Outcome | None,
    ) -> health.Verdict | None:
        """The run's health (docs/health.md), judged before anything is delisted by the process
        that ends the run: without Redis its owner (runs.enter_run), with Redis the last worker."""
        if self.distributed and (outcome is None or not outcome.last):
            return None
        if not self.distributed and not self.owner:
            return None
        years = outcome.years if outcome is not None else None
        if years is None:
            years = getattr(spider, "years_crawled", frozenset())
        return health.judge_run(
            connection,
            self.config,
            self.crawler.stats,
            self.run_id,
            spider,
            years=years,
            reason=reason,
            errors=counters["errors"],
        )

    def _run_status(
        self, connection: Connection, spider: Spider, status: str, outcome: Outcome | None
    ) -> str:
        """The status this worker writes to a distributed run, delisting if it ends the run.

        The row is locked first, so the last worker's verdict and a sibling's late counters
        never overwrite each other: a worker that is not the last keeps the run's status.
        """
        current = runs.lock_run(connection, self.run_id).status
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

        Only the process that ends the run delists: without Redis its owner (the process that
        started it, or the one crawl the scheduler started it for), with Redis the last worker
        to leave it.
        """
        stats, vendor = self.crawler.stats, spider.name
        target = getattr(spider, "target", None)
        if target is None:
            return
        suspect = self.health is not None and self.health.health == "suspect"
        years = frozenset(years)
        if target.mode in ("url", "product_id"):
            if product_gone and not self._suspect_delists_nothing(suspect):
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
        if self._suspect_delists_nothing(suspect):
            return
        stats.set_value(delisting.SEEN_STAT, {str(year): seen[year] for year in complete})
        # A product page found but not read (robots.txt, too large, a redirect loop) is not gone.
        unread = getattr(spider, "unread_links", ())
        stats.set_value(
            "delisted",
            delisting.delist_unseen(connection, vendor, complete, started, self.run_id, unread),
        )

    def _suspect_delists_nothing(self, suspect: bool) -> bool:
        """A suspect run delists nothing, nor becomes the incomplete-year guard's reference."""
        if suspect:
            self.crawler.stats.set_value("delisted/skipped_suspect", 1)
            logger.warning("crawl run %s is suspect: nothing delisted", self.run_id)
        return suspect

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
        run = self.run_id if self.run_id is not None else "(not recorded)"
        lines = [
            f"crawl run {run} of {spider.name} {arguments}".rstrip() + f": {status} ({reason})",
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
            f"{self.errors.count} errors logged",
        ]
        if health_line := health.summary_line(stats):
            lines.append(health_line)
        lines += quick_summary(stats)  # a quick sync's listings, pages fetched and why
        # What broke a part of the crawl first, then the other errors (a few of each).
        lines += [f"failure   {text}" for text in self.errors.failures]
        lines += [
            f"error     {text}" for text in self.errors.first if text not in self.errors.failures
        ]
        if counters["items_dead_lettered"]:
            lines.append(f"dead letters in {stats.get('store/dead_letter_file')}")
        if stats.get("store/lost"):
            lines.append(f"NOT STORED {stats['store/lost']} item(s): the dead-letter file failed")
        return "\n".join(lines)
