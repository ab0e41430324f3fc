"""The scheduler's jobs: their ids, their callables, and the job set generated from the shops.

| job id | callable | what it does |
| --- | --- | --- |
| ``sync:<vendor>:<year>`` | ``sync_year`` | ``scrapy crawl <vendor> -a year=<year>`` |
| ``years:<vendor>`` | ``refresh_years`` | re-reads the year index; jobs follow the years |
| ``stale:<vendor>`` | ``resync_stale`` | ``scrapy crawl <vendor> -a product_id=<id>``, each |
| ``run:<job id>`` | the job's own | a one-off run of that job now (``python scheduler.py run``) |

Callables are module-level functions taking plain keyword arguments, so the job store can
pickle the jobs; inside the scheduler process they reach its runner and scheduler through
``install``. Jobs are only added when missing and changed when their definition changed
(``reconcile``): a restart keeps every next run time, and a paused job stays paused.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from apscheduler.job import Job
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.util import obj_to_ref
from sqlalchemy.engine import Engine

from christmas_spiders.config import Config
from christmas_spiders.config.schedule import Schedule, format_duration
from christmas_spiders.scheduling import triggers, years
from christmas_spiders.scheduling.runner import Crawl, CrawlRunner
from christmas_spiders.scheduling.store import StoreLock
from christmas_spiders.storage.schema import products

logger = logging.getLogger(__name__)

RUN_PREFIX = "run:"
CRAWL_EXECUTOR = "default"  # threads that run crawls (schedule.max_crawls of them)
INDEX_EXECUTOR = "index"  # threads that read year indexes, never queued behind crawls


def sync_id(vendor: str, year: int) -> str:
    return f"sync:{vendor}:{year}"


def years_id(vendor: str) -> str:
    return f"years:{vendor}"


def stale_id(vendor: str) -> str:
    return f"stale:{vendor}"


def owner(job_id: str) -> str | None:
    """The vendor of a generated job (None for one-off runs and anything else)."""
    parts = job_id.split(":")
    if (parts[0] == "sync" and len(parts) == 3) or (
        parts[0] in ("years", "stale") and len(parts) == 2
    ):
        return parts[1]
    return None


def sort_key(job_id: str) -> tuple[Any, ...]:
    """sync jobs by vendor and year, then the per-vendor jobs, then one-off runs."""
    parts = job_id.split(":")
    kinds = {"sync": 0, "years": 1, "stale": 2, "run": 3}
    year = int(parts[2]) if parts[0] == "sync" and len(parts) == 3 and parts[2].isdigit() else 0
    return (kinds.get(parts[0], 4), parts[1] if len(parts) > 1 else "", year, job_id)


# -- what the running scheduler gives its jobs ---------------------------------------------------


@dataclass
class Runtime:
    config: Config
    engine: Engine
    scheduler: BaseScheduler
    store_lock: StoreLock
    runner: CrawlRunner
    stopping: threading.Event
    _idle: threading.Condition = field(default_factory=threading.Condition)
    _running: int = 0

    @contextmanager
    def job(self) -> Iterator[Runtime]:
        """Counts the job as running (see wait_idle)."""
        with self._idle:
            self._running += 1
        try:
            yield self
        finally:
            with self._idle:
                self._running -= 1
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Until no job runs. The scheduler's shutdown(wait=True) holds the job-store lock
        while it waits for the job threads, so jobs that still touch the store (a year-list
        refresh) must be done before it is called."""
        with self._idle:
            return self._idle.wait_for(lambda: self._running == 0, timeout)


_runtime: Runtime | None = None


def install(runtime: Runtime | None) -> None:
    """Make the running scheduler's runtime available to the job callables (None: remove)."""
    global _runtime
    _runtime = runtime


def _current() -> Runtime:
    if _runtime is None:
        raise RuntimeError("scheduler jobs run inside the scheduler process (python scheduler.py)")
    return _runtime


# -- the job callables ---------------------------------------------------------------------------


def sync_year(vendor: str, year: int) -> None:
    with _current().job() as runtime:
        budget = runtime.config.schedule.sync.budget
        assert budget is not None
        runtime.runner.run(Crawl(sync_id(vendor, year), vendor, {"year": str(year)}, budget))


def refresh_years(vendor: str) -> None:
    with _current().job() as runtime:
        _refresh_years(runtime, vendor)


def _refresh_years(runtime: Runtime, vendor: str) -> None:
    if runtime.stopping.is_set():
        return
    try:
        listing = years.listed_years(runtime.config, vendor, prefer_cache=False)
    except years.YearIndexError as error:
        logger.error("%s: %s The jobs stay as they are.", years_id(vendor), error)
        return
    if runtime.stopping.is_set():
        return
    specs = vendor_specs(runtime.config.schedule, vendor, listing.years)
    changes = reconcile(
        runtime.scheduler,
        runtime.store_lock,
        specs,
        removable=lambda job_id: job_id.startswith(f"sync:{vendor}:"),
    )
    logger.info("%s: %s lists %s; %s", years_id(vendor), vendor, span(listing.years), changes)


def resync_stale(vendor: str) -> None:
    with _current().job() as runtime:
        _resync_stale(runtime, vendor)


def _resync_stale(runtime: Runtime, vendor: str) -> None:
    schedule = runtime.config.schedule
    budget = schedule.stale.budget
    assert budget is not None
    stale = stale_products(runtime.engine, vendor, schedule.stale_after, schedule.stale_batch)
    logger.info(
        "%s: %d product(s) not synced for %s",
        stale_id(vendor),
        len(stale),
        format_duration(schedule.stale_after),
    )
    for product_id in stale:
        if runtime.stopping.is_set():
            return
        crawl = Crawl(stale_id(vendor), vendor, {"product_id": str(product_id)}, budget)
        runtime.runner.run(crawl)


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


# -- the job set ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobSpec:
    """A job as the configuration wants it."""

    id: str
    name: str
    func: Callable[..., None]
    kwargs: dict[str, Any]
    trigger: BaseTrigger
    misfire_grace_time: int
    executor: str = CRAWL_EXECUTOR
    coalesce: bool = True  # runs missed while the scheduler was down: one run, not a burst
    max_instances: int = 1  # never two runs of one job at once

    def options(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "func": self.func,
            "kwargs": self.kwargs,
            "misfire_grace_time": self.misfire_grace_time,
            "executor": self.executor,
            "coalesce": self.coalesce,
            "max_instances": self.max_instances,
        }

    def differs(self, job: Job) -> bool:
        """Whether the stored job's definition differs (its trigger aside)."""
        return (
            job.name != self.name
            or job.func_ref != obj_to_ref(self.func)
            or dict(job.kwargs) != self.kwargs
            or tuple(job.args) != ()
            or job.misfire_grace_time != self.misfire_grace_time
            or job.executor != self.executor
            or job.coalesce != self.coalesce
            or job.max_instances != self.max_instances
        )


def vendor_specs(schedule: Schedule, vendor: str, listed: Iterable[int]) -> list[JobSpec]:
    """Every job of one shop: a sync job per listed year, the year-list and stale jobs."""
    tz = schedule.timezone
    specs = [
        JobSpec(
            id=sync_id(vendor, year),
            name=f"sync {vendor} {year}",
            func=sync_year,
            kwargs={"vendor": vendor, "year": year},
            trigger=triggers.spread_trigger(
                schedule.sync, tz, triggers.sync_fraction(vendor, year)
            ),
            misfire_grace_time=int(schedule.sync.misfire_grace),
        )
        for year in sorted(set(listed))
    ]
    fraction = triggers.vendor_fraction(vendor)
    specs.append(
        JobSpec(
            id=years_id(vendor),
            name=f"year list of {vendor}",
            func=refresh_years,
            kwargs={"vendor": vendor},
            trigger=triggers.spread_trigger(schedule.years, tz, fraction),
            misfire_grace_time=int(schedule.years.misfire_grace),
            executor=INDEX_EXECUTOR,
        )
    )
    specs.append(
        JobSpec(
            id=stale_id(vendor),
            name=f"stale products of {vendor}",
            func=resync_stale,
            kwargs={"vendor": vendor},
            trigger=triggers.spread_trigger(schedule.stale, tz, fraction),
            misfire_grace_time=int(schedule.stale.misfire_grace),
        )
    )
    return specs


@dataclass
class Changes:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    rescheduled: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        parts = [
            f"{len(self.added)} job(s) added",
            f"{len(self.rescheduled)} rescheduled",
            f"{len(self.changed)} changed",
            f"{len(self.removed)} removed",
            f"{len(self.kept)} unchanged",
        ]
        named = [f"+{job_id}" for job_id in self.added] + [f"-{job_id}" for job_id in self.removed]
        return ", ".join(parts) + (f" ({', '.join(named)})" if 0 < len(named) <= 12 else "")


def reconcile(
    scheduler: BaseScheduler,
    store_lock: StoreLock,
    specs: Iterable[JobSpec],
    *,
    removable: Callable[[str], bool],
) -> Changes:
    """Make the job store hold `specs`: add the missing, update the changed, keep the rest as
    they are (next run times included), and remove the jobs `removable` picks that are not
    wanted. A new trigger gives a job a new next run time, unless the job is paused."""
    changes = Changes()
    with store_lock:
        existing = {job.id: job for job in scheduler.get_jobs()}
        for spec in specs:
            job = existing.pop(spec.id, None)
            if job is None:
                scheduler.add_job(id=spec.id, trigger=spec.trigger, **spec.options())
                changes.added.append(spec.id)
            elif triggers.signature(job.trigger) != triggers.signature(spec.trigger):
                scheduler.modify_job(spec.id, trigger=spec.trigger, **spec.options())
                if job.next_run_time is not None:  # a paused job stays paused
                    scheduler.reschedule_job(spec.id, trigger=spec.trigger)
                changes.rescheduled.append(spec.id)
            elif spec.differs(job):
                scheduler.modify_job(spec.id, **spec.options())
                changes.changed.append(spec.id)
            else:
                changes.kept.append(spec.id)
        for job_id in sorted(existing, key=sort_key):
            if removable(job_id):
                scheduler.remove_job(job_id)
                changes.removed.append(job_id)
    return changes


def scheduled_years(scheduler: BaseScheduler, vendor: str) -> list[int]:
    """The years of the vendor's sync jobs in the store."""
    prefix = f"sync:{vendor}:"
    return sorted(
        int(job.id.removeprefix(prefix))
        for job in scheduler.get_jobs()
        if job.id.startswith(prefix) and job.id.removeprefix(prefix).isdigit()
    )


def queue_run(
    scheduler: BaseScheduler, job_id: str, at: datetime | None = None
) -> tuple[str, bool]:
    """A one-off run of `job_id` (`run:<job id>`, a date trigger), now or at `at`; the same
    callable and arguments, its own id, so the job's schedule is untouched. Returns the one-off's
    id and whether it was added (False: one is queued already). KeyError: no such job."""
    job = scheduler.get_job(job_id)
    if job is None:
        raise KeyError(job_id)
    run_id = RUN_PREFIX + job_id
    if scheduler.get_job(run_id) is not None:
        return run_id, False
    moment = at or datetime.now(ZoneInfo("UTC"))
    scheduler.add_job(
        job.func,
        trigger=triggers.once(moment),
        id=run_id,
        name=f"{job.name} (run once)",
        kwargs=dict(job.kwargs),
        executor=job.executor,
        misfire_grace_time=None,  # however late the scheduler gets to it, it runs
        coalesce=True,
        max_instances=1,
    )
    return run_id, True


def span(listed: Iterable[int]) -> str:
    values = sorted(listed)
    if not values:
        return "no year"
    return f"{len(values)} year(s), {values[0]}–{values[-1]}"
