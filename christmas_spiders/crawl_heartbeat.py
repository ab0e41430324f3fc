"""The crawl's heartbeat: its row of ``process_heartbeats`` (storage.heartbeats), kept by a Scrapy
extension. Written once the crawl's run is open, then every ``HEARTBEAT_INTERVAL`` seconds (10)
with the run id and counters, and marked stopped when it closes. The writes run in a thread,
never on the reactor.

Database errors are the heartbeat's own business (logged as warnings, tried again at the next
beat). Anything else it raises is logged the moment it happens and fails the crawl's run
(``crawl_errors``); the crawl goes on without its heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from scrapy import Spider, signals
from scrapy.crawler import Crawler
from sqlalchemy.exc import SQLAlchemyError

from christmas_spiders.config import Config
from christmas_spiders.crawl_errors import FAILS_RUN
from christmas_spiders.errors import one_line
from christmas_spiders.storage import get_engine, heartbeats
from christmas_spiders.storage.embedded import EmbeddedServerError

logger = logging.getLogger(__name__)

RUN_POLL_SECONDS = 0.1  # how often the first beat looks whether the run is open


class CrawlHeartbeat:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.config: Config = crawler.settings["CHRISTMAS_CONFIG"]
        self.interval = crawler.settings.getfloat("HEARTBEAT_INTERVAL", 10.0)
        self.heartbeat: heartbeats.Heartbeat | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
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
        try:
            engine = get_engine(self.config)
        except (SQLAlchemyError, EmbeddedServerError) as error:  # the run recorder stops the crawl
            logger.warning("crawl heartbeat not started (%s); trying again", one_line(error))
            return
        self.heartbeat = heartbeats.Heartbeat(engine, "crawl", self.interval)
        self.heartbeat.start(**self._details(spider))

    def spider_opened(self, spider: Spider) -> None:
        # In a task of its own: opening the spider never waits for the database.
        self._task = asyncio.get_running_loop().create_task(self._beat(spider))
        self._task.add_done_callback(self._beat_ended)

    async def _beat(self, spider: Spider) -> None:
        """Beat until the spider closes; a write in flight then finishes before the loop ends,
        so the close always sees the row it must mark stopped."""
        while not self._stopping.is_set():
            pause = self.interval
            if self.heartbeat is not None:
                await asyncio.to_thread(self.heartbeat.beat, **self._details(spider))
            elif self.crawler.stats.get_value("crawl_run/id") is None:
                # The run recorder migrates a new database and opens the run: until then there
                # is no table to beat into, nor a run id to name.
                pause = RUN_POLL_SECONDS
            else:
                await asyncio.to_thread(self._start, spider)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), pause)

    @staticmethod
    def _beat_ended(task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        error = task.exception()
        logger.error(
            "the crawl's heartbeat stopped: %s", one_line(error), exc_info=error, extra=FAILS_RUN
        )

    async def spider_closed(self, spider: Spider, reason: str) -> None:
        self._stopping.set()
        if self._task is not None:
            await asyncio.wait([self._task])  # a failure of its own was logged as it happened
        if self.heartbeat is None and self.crawler.stats.get_value("crawl_run/id") is not None:
            # A crawl over before its first beat still leaves its row, stopped, with its run.
            await asyncio.to_thread(self._start, spider)
        if self.heartbeat is not None:
            details = {**self._details(spider), "close_reason": reason}
            await asyncio.to_thread(self.heartbeat.stop, **details)
