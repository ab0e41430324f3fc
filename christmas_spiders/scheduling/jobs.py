"""The scheduler's jobs: their ids, their callables, and the job set generated from the shops.

| job id | callable | what it does |
| --- | --- | --- |
| ``quick:<vendor>`` | ``quick_sync`` | ``scrapy crawl <vendor> -a mode=quick`` (listings first) |
| ``sync:<vendor>:<year>`` | ``sync_year`` | ``scrapy crawl <vendor> -a year=<year>`` |
| ``years:<vendor>`` | ``refresh_years`` | re-reads the year index; jobs follow the years |
| ``stale:<vendor>`` | ``resync_stale`` | ``scrapy crawl <vendor> -a product_id=<id>``, each |
| ``market`` | ``refresh_market`` | refreshes the market views daily (storage.market) |
| ``run:<job id>`` | the job's own | a one-off run of that job now (``python scheduler.py run``) |

Callables are module-level functions taking plain keyword arguments, so the job store can
pickle the jobs; the work itself is the scheduler's runtime's (``runtime.Runtime``), handed to
the threads that run the jobs. Jobs are only added when missing and changed when their
definition changed (``reconcile``): a restart keeps every next run time, and a paused job stays
paused.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from apscheduler.job import Job
from apscheduler.jobstores.base import ConflictingIdError
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.util import obj_to_ref

from christmas_spiders.config.schedule import Schedule
from christmas_spiders.scheduling import triggers

RUN_PREFIX = "run:"
CRAWL_EXECUTOR = "default"  # threads that run crawls (schedule.max_crawls of them)
INDEX_EXECUTOR = "index"  # threads that read year indexes, never queued behind crawls
MARKET_ID = "market"
# Daily, at night in the schedule's time zone: rarity's shares move with the clock, not only
# with the crawls that refresh the market views too. Late by up to 6 h (scheduler down): still.
MARKET_CRON, MARKET_GRACE = "30 4 * * *", 6 * 3600


def sync_id(vendor: str, year: int) -> str:
    return f"sync:{vendor}:{year}"


def quick_id(vendor: str) -> str:
    return f"quick:{vendor}"


def years_id(vendor: str) -> str:
    return f"years:{vendor}"


def stale_id(vendor: str) -> str:
    return f"stale:{vendor}"


def owner(job_id: str) -> str | None:
    """The vendor of a generated job (None for one-off runs and anything else)."""
    parts = job_id.split(":")
    if (parts[0] == "sync" and len(parts) == 3) or (
        parts[0] in ("years", "stale", "quick") and len(parts) == 2
    ):
        return parts[1]
    return None


def sort_key(job_id: str) -> tuple[Any, ...]:
    """sync jobs by vendor and year, then the per-vendor jobs, then one-off runs."""
    parts = job_id.split(":")
    kinds = {"sync": 0, "years": 1, "stale": 2, "quick": 3, "market": 4, "run": 5}
    year = int(parts[2]) if parts[0] == "sync" and len(parts) == 3 and parts[2].isdigit() else 0
    return (kinds.get(parts[0], 5), parts[1] if len(parts) > 1 else "", year, job_id)


# -- the job callables ---------------------------------------------------------------------------
#
# APScheduler stores a job's callable by reference and its arguments pickled, so a callable is a
# module-level function with plain arguments. The work is done by the scheduler's runtime
# (``runtime.Runtime``), which the pools running the jobs hand to each of their threads
# (``bind``, their initializer): a job finds its runtime on the thread it runs on.


class JobWork(Protocol):
    def sync_year(self, vendor: str, year: int) -> None: ...
    def refresh_years(self, vendor: str) -> None: ...
    def resync_stale(self, vendor: str) -> None: ...
    def quick_sync(self, vendor: str) -> None: ...
    def refresh_market(self) -> None: ...


_thread = threading.local()


def bind(work: JobWork) -> None:
    """The jobs run on this thread do `work`'s (a job pool's thread initializer)."""
    _thread.work = work


def _work() -> JobWork:
    work = getattr(_thread, "work", None)
    if work is None:
        raise RuntimeError("scheduler jobs run in the scheduler's job pools (python scheduler.py)")
    return work


def sync_year(vendor: str, year: int) -> None:
    """``scrapy crawl <vendor> -a year=<year>``."""
    _work().sync_year(vendor, year)


def refresh_years(vendor: str) -> None:
    """Re-read the shop's year index; its sync jobs follow the years it lists."""
    _work().refresh_years(vendor)


def resync_stale(vendor: str) -> None:
    """``scrapy crawl <vendor> -a product_id=<id>`` for each stale product."""
    _work().resync_stale(vendor)


def quick_sync(vendor: str) -> None:
    """``scrapy crawl <vendor> -a mode=quick``: every listing, only the pages that must be read."""
    _work().quick_sync(vendor)


def refresh_market() -> None:
    """Refresh the market views (storage.market)."""
    _work().refresh_market()


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
    """Every job of one shop: a sync job per listed year, the year-list, stale and quick jobs."""
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
    # The shop's own jobs: id, name, callable, its part of the schedule option, executor.
    for job_id, label, func, kind, executor in (
        (years_id, "year list of", refresh_years, schedule.years, INDEX_EXECUTOR),
        (stale_id, "stale products of", resync_stale, schedule.stale, CRAWL_EXECUTOR),
        (quick_id, "quick sync of", quick_sync, schedule.quick_for(vendor), CRAWL_EXECUTOR),
    ):
        specs.append(
            JobSpec(
                id=job_id(vendor),
                name=f"{label} {vendor}",
                func=func,
                kwargs={"vendor": vendor},
                trigger=triggers.spread_trigger(kind, tz, fraction),
                misfire_grace_time=int(kind.misfire_grace),
                executor=executor,
            )
        )
    return specs


def market_spec(schedule: Schedule) -> JobSpec:
    """The daily refresh of the market views."""
    return JobSpec(
        id=MARKET_ID,
        name="market views refresh",
        func=refresh_market,
        kwargs={},
        trigger=CronTrigger.from_crontab(MARKET_CRON, timezone=ZoneInfo(schedule.timezone)),
        misfire_grace_time=MARKET_GRACE,
        executor=INDEX_EXECUTOR,  # never queued behind crawls
    )


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
    lock: AbstractContextManager[Any],
    specs: Iterable[JobSpec],
    *,
    removable: Callable[[str], bool],
) -> Changes:
    """Make the job store hold `specs`: add the missing, update the changed, keep the rest as
    they are (next run times included), and remove the jobs `removable` picks that are not
    wanted. A new trigger gives a job a new next run time, unless the job is paused. `lock`
    keeps other changes of the job set (a command, another shop's reconcile) out meanwhile."""
    changes = Changes()
    with lock:
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
    moment = at or datetime.now(ZoneInfo("UTC"))
    try:
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
    except ConflictingIdError:
        return run_id, False
    return run_id, True


def span(listed: Iterable[int]) -> str:
    values = sorted(listed)
    if not values:
        return "no year"
    return f"{len(values)} year(s), {values[0]}–{values[-1]}"
