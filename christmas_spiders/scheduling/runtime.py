"""What the running scheduler gives its jobs: the work behind each job callable.

The scheduler builds one ``Runtime`` and its job pools (``executors``): each pool hands the
runtime to its threads (``jobs.bind``), so a job callable, stored by reference in the job
store, finds the work to do on the thread it runs on — nothing is kept in a module global.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import sqlalchemy as sa
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.base import BaseScheduler
from sqlalchemy.engine import Engine

from christmas_spiders.config import Config
from christmas_spiders.config.schedule import format_duration
from christmas_spiders.scheduling import jobs, years
from christmas_spiders.scheduling.runner import Crawl, CrawlRunner
from christmas_spiders.storage import market
from christmas_spiders.storage.schema import products
from christmas_spiders.vendors import VENDORS

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    config: Config
    engine: Engine
    apscheduler: BaseScheduler
    runner: CrawlRunner
    stopping: threading.Event
    # Changes of the job set (a shop's reconcile, a CLI command), one at a time.
    job_set_lock: threading.Lock = field(default_factory=threading.Lock)
    _idle: threading.Condition = field(default_factory=threading.Condition)
    _running: int = 0

    def executors(self) -> dict[str, ThreadPoolExecutor]:
        """The job pools, their threads bound to this runtime: crawls (``max_crawls`` at once)
        and year-index reads (never queued behind crawls)."""
        bound = {"initializer": jobs.bind, "initargs": (self,)}
        return {
            jobs.CRAWL_EXECUTOR: ThreadPoolExecutor(
                self.config.schedule.max_crawls, pool_kwargs=bound
            ),
            jobs.INDEX_EXECUTOR: ThreadPoolExecutor(len(VENDORS), pool_kwargs=bound),
        }

    @contextmanager
    def job(self) -> Iterator[None]:
        """Counts the job as running (see wait_idle)."""
        with self._idle:
            self._running += 1
        try:
            yield
        finally:
            with self._idle:
                self._running -= 1
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Until no job runs. APScheduler's shutdown(wait=True) holds its job-store lock while it
        waits for the job threads, so jobs that still use the store (a year-list refresh) must
        be done before it is called."""
        with self._idle:
            return self._idle.wait_for(lambda: self._running == 0, timeout)

    # -- the jobs' work --------------------------------------------------------------------------

    def sync_year(self, vendor: str, year: int) -> None:
        with self.job():
            budget = self.config.schedule.sync.budget
            assert budget is not None
            self.runner.run(Crawl(jobs.sync_id(vendor, year), vendor, {"year": str(year)}, budget))

    def quick_sync(self, vendor: str) -> None:
        with self.job():
            budget = self.config.schedule.quick_for(vendor).budget
            assert budget is not None
            arguments = {"mode": "quick"}
            self.runner.run(Crawl(jobs.quick_id(vendor), vendor, arguments, budget))

    def refresh_years(self, vendor: str) -> None:
        with self.job():
            if self.stopping.is_set():
                return
            try:
                listing = years.listed_years(self.config, vendor, prefer_cache=False)
            except years.YearIndexError as error:
                logger.error("%s: %s The jobs stay as they are.", jobs.years_id(vendor), error)
                return
            if self.stopping.is_set():
                return
            specs = jobs.vendor_specs(self.config.schedule, vendor, listing.years)
            changes = jobs.reconcile(
                self.apscheduler,
                self.job_set_lock,
                specs,
                removable=lambda job_id: job_id.startswith(f"sync:{vendor}:"),
            )
            logger.info(
                "%s: %s lists %s; %s",
                jobs.years_id(vendor),
                vendor,
                jobs.span(listing.years),
                changes,
            )

    def refresh_market(self) -> None:
        with self.job():
            market.refresh_quietly(self.engine, "by the daily job")

    def resync_stale(self, vendor: str) -> None:
        with self.job():
            schedule = self.config.schedule
            budget = schedule.stale.budget
            assert budget is not None
            stale = stale_products(self.engine, vendor, schedule.stale_after, schedule.stale_batch)
            logger.info(
                "%s: %d product(s) not synced for %s",
                jobs.stale_id(vendor),
                len(stale),
                format_duration(schedule.stale_after),
            )
            for product_id in stale:
                if self.stopping.is_set():
                    return
                arguments = {"product_id": str(product_id)}
                self.runner.run(Crawl(jobs.stale_id(vendor), vendor, arguments, budget))


def stale_products(engine: Engine, vendor: str, age: float, limit: int) -> list[int]:
    """Listed products of `vendor` not synced for `age` seconds, the stalest first."""
    with engine.connect() as connection:
        return list(
            connection.execute(
                sa.select(products.c.id)
                .where(
                    products.c.vendor == vendor,
                    products.c.delisted_at.is_(None),
                    products.c.last_synced_at < sa.func.now() - timedelta(seconds=age),
                )
                .order_by(products.c.last_synced_at, products.c.id)
                .limit(limit)
            ).scalars()
        )
