"""A crawl run announced for the standing workers (``scrapy worker``), followed to its end.

With ``REDIS_URL`` and standing workers listening for announcements, the scheduler announces
the run (``distributed.announce``) instead of starting a child, and reads its ``crawl_runs`` row
until the workers end it. Over its budget, the run is recorded failed and closed in Redis: no
further worker joins it, and the workers in it stop at their next report. When the scheduler
stops, the run is left to the workers. Afterwards the scheduler adds ``scheduler/job_id``,
``scheduler/announced`` and ``scheduler/duration_seconds`` to the run's ``stats``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis
from sqlalchemy.engine import Engine

from christmas_spiders.config import Config
from christmas_spiders.config.schedule import format_duration
from christmas_spiders.distributed import announce, connection, keys, shared_run
from christmas_spiders.errors import one_line
from christmas_spiders.scheduling.outcome import Crawl, Outcome
from christmas_spiders.scheduling.store import DATABASE_ERRORS
from christmas_spiders.storage import runs

logger = logging.getLogger(__name__)

_FOLLOW_SECONDS = 1.0  # how often an announced run's row is read


class StandingWorkers:
    def __init__(self, config: Config, engine: Engine, stopping: threading.Event) -> None:
        self.config = config
        self.engine = engine
        self.stopping = stopping
        self._redis: redis.Redis | None = None

    def listening(self) -> bool:
        """Whether standing workers listen for announcements (only with REDIS_URL)."""
        if not self.config.redis_url:
            return False
        try:
            if self._redis is None:
                self._redis = connection.client(self.config.redis_url)
            channel = keys.announcement_channel(self.config.redis_key_prefix)
            [(_, listeners)] = self._redis.pubsub_numsub(channel)
            return int(listeners) > 0
        except redis.RedisError as error:
            logger.warning(
                "Redis is unavailable (%s): the crawl runs in a child process",
                one_line(error),
            )
            return False

    def run(self, crawl: Crawl) -> Outcome | None:
        """Announce the run, follow its row to the end; None when it cannot be announced."""
        started = time.monotonic()
        try:
            run_id = announce.announce_run(self.config, crawl.vendor, crawl.arguments)
        except (connection.RedisUnavailable, *DATABASE_ERRORS) as error:
            logger.warning(
                "%s: could not announce the run (%s): crawling in a child process",
                crawl.job_id,
                one_line(error),
            )
            return None
        logger.info(
            "%s: announced crawl run %s:%d for the standing workers",
            crawl.job_id,
            crawl.vendor,
            run_id,
        )
        extra: dict[str, Any] = {"scheduler/job_id": crawl.job_id, "scheduler/announced": True}
        while True:
            with self.engine.connect() as db:
                state = runs.run_state(db, run_id)
            status, reason = state.status, state.close_reason
            if status != "running":
                break
            if time.monotonic() - started >= crawl.budget:
                status, reason = "failed", "time_budget"
                extra["scheduler/stopped"] = reason
                self._give_up(crawl, run_id)
                break
            if self.stopping.is_set():
                logger.info(
                    "%s: crawl run %s:%d is left to the standing workers",
                    crawl.job_id,
                    crawl.vendor,
                    run_id,
                )
                return Outcome(crawl, "running", "left to the standing workers", run_id)
            self.stopping.wait(_FOLLOW_SECONDS)
        duration = time.monotonic() - started
        extra["scheduler/duration_seconds"] = round(duration, 3)
        with self.engine.begin() as db:
            close_reason = reason if reason == "time_budget" else None
            runs.add_stats(db, run_id, extra, close_reason=close_reason)
            counters = runs.counters(db, run_id)
        return Outcome(crawl, status, reason or status, run_id, None, duration, counters)

    def _give_up(self, crawl: Crawl, run_id: int) -> None:
        """Over budget: the run is recorded failed and closed in Redis."""
        logger.warning(
            "%s: crawl run %s:%d exceeded its budget of %s: recorded failed and stopped",
            crawl.job_id,
            crawl.vendor,
            run_id,
            format_duration(crawl.budget),
        )
        with self.engine.begin() as db:
            if runs.lock_run(db, run_id).status == "running":
                runs.finish_run(
                    db, run_id, status="failed", close_reason="time_budget", counters={}, stats={}
                )
        assert self._redis is not None
        try:
            shared_run.stop(
                self._redis, keys.RunKeys(self.config.redis_key_prefix, crawl.vendor, run_id)
            )
        except redis.RedisError as error:
            logger.warning("could not withdraw crawl run %d: %s", run_id, one_line(error))
