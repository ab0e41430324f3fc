"""Runs one crawl for a job, within the scheduler's limits, and logs how it ended.

* **Where**: with ``REDIS_URL`` and standing workers listening for announcements
  (``scrapy worker``), the run is announced for them and followed to its end (``announced``);
  otherwise the crawl runs in a child ``scrapy crawl`` (``child``).
* **Limits**: at most ``schedule.max_crawls`` crawls at once (all jobs together); the same
  crawl (vendor and arguments) never twice at once, e.g. a ``run JOB_ID`` while the job is
  running; a crawl over its kind's ``budget``, or running when the scheduler stops, is stopped
  (see each strategy).
* **Records**: each strategy records its outcome in the run's ``crawl_runs`` row
  (``storage.runs``); the runner logs it: INFO for a finished crawl, ERROR for a failed one.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy.engine import Engine

from christmas_spiders.config import Config
from christmas_spiders.config.schedule import format_duration
from christmas_spiders.scheduling.announced import StandingWorkers
from christmas_spiders.scheduling.child import ChildCrawls
from christmas_spiders.scheduling.outcome import Crawl, Outcome, describe_exit

__all__ = ["Crawl", "CrawlRunner", "Outcome"]

logger = logging.getLogger(__name__)

_SLOT_POLL_SECONDS = 0.25  # how often a crawl waiting for a slot checks for the stop


class CrawlRunner:
    def __init__(self, config: Config, engine: Engine, stopping: threading.Event) -> None:
        self.config = config
        self.schedule = config.schedule
        self.engine = engine
        self.stopping = stopping
        self.children = ChildCrawls(config, engine, stopping)
        self.workers = StandingWorkers(config, engine, stopping)
        self._slots = threading.BoundedSemaphore(self.schedule.max_crawls)
        self._lock = threading.Lock()
        self._active: set[str] = set()

    @property
    def active(self) -> int:
        with self._lock:
            return len(self._active)

    def run(self, crawl: Crawl) -> Outcome:
        """Run the crawl to its end (or its budget, or the scheduler's stop); never raises for
        a crawl that failed: the outcome says so, and it is logged and recorded."""
        with self._lock:
            if crawl.key in self._active:
                logger.info("%s: skipped, %s is already running", crawl.job_id, crawl.key)
                return Outcome(crawl, "skipped", "already running")
            self._active.add(crawl.key)
        try:
            if not self._take_slot():
                return Outcome(crawl, "skipped", "the scheduler is stopping")
            try:
                outcome = self.workers.run(crawl) if self.workers.listening() else None
                if outcome is None:
                    outcome = self.children.run(crawl)
            finally:
                self._slots.release()
        finally:
            with self._lock:
                self._active.discard(crawl.key)
        _log(outcome)
        return outcome

    def _take_slot(self) -> bool:
        while not self.stopping.is_set():
            if self._slots.acquire(timeout=_SLOT_POLL_SECONDS):
                if not self.stopping.is_set():
                    return True
                self._slots.release()
        return False


def _log(outcome: Outcome) -> None:
    crawl = outcome.crawl
    run_name = f"crawl run {outcome.run_id}" if outcome.run_id else "the crawl"
    took = format_duration(outcome.duration)
    exit_text = "" if outcome.exit_status is None else f", {describe_exit(outcome.exit_status)}"
    if outcome.status == "finished":
        c = outcome.counters
        logger.info(
            "%s: %s finished in %s (%s created, %s updated, %s unchanged, %s errors)",
            crawl.job_id,
            run_name,
            took,
            c.get("items_created", 0),
            c.get("items_updated", 0),
            c.get("items_unchanged", 0),
            c.get("errors", 0),
        )
    elif outcome.status == "failed":
        logger.error(
            "%s: %s FAILED after %s: %s%s",
            crawl.job_id,
            run_name,
            took,
            outcome.reason,
            exit_text,
        )
