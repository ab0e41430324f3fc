"""The scheduler process (``python scheduler.py``), and what the CLI does to it.

Start: migrate the schema (as every writing process does), take the one-scheduler lock (a
second scheduler refuses to start), open the job store, bring the jobs in line with the
configuration and the shops' year lists (``jobs.reconcile``: only missing or changed jobs are
written), then run. The main thread then waits on the lock connection: a NOTIFY from the CLI or
the ``control_poll`` timeout re-reads the job store (``scheduler.wakeup()``), and the timeout
also checks that the lock is still held. Every minute it also closes crawl runs abandoned by
processes that died (``runs.PeriodicSweep``; ``upgrade`` sweeps at start). SIGTERM or SIGINT
stops it: no new job starts, running crawls get SIGTERM and ``stop_grace`` to record their end,
then are killed and recorded failed.

The CLI (``list``, ``run``, ``pause``, ``resume``) works on the job store directly, under the
store lock, and wakes the running scheduler with a NOTIFY (see ``store``); with no scheduler
running, a change waits in the store for the next start.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import FrameType
from zoneinfo import ZoneInfo

import psycopg2
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.base import STATE_STOPPED, BaseScheduler

from christmas_spiders.config import Config
from christmas_spiders.config.schedule import format_duration
from christmas_spiders.scheduling import jobs, store, triggers, years
from christmas_spiders.scheduling.runner import CrawlRunner
from christmas_spiders.storage import get_engine, heartbeats, runs, upgrade
from christmas_spiders.vendors import VENDORS

logger = logging.getLogger(__name__)

YEARS_RETRY = timedelta(hours=1)  # a year index unreadable at start is read again after this
_IDLE_MARGIN_SECONDS = 5.0  # beyond stop_grace: a killed crawl's end is recorded
_APSCHEDULER_LOGGERS = ("apscheduler.scheduler", "apscheduler.executors")


def quiet_apscheduler() -> None:
    """APScheduler narrates every job added and every run at INFO; we log outcomes ourselves.
    Its warnings (a missed run, a run skipped at max_instances) still come through."""
    level = max(logging.WARNING, logging.getLogger().level)
    for name in _APSCHEDULER_LOGGERS:
        logging.getLogger(name).setLevel(level)


class SchedulerService:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.schedule = config.schedule
        self.stopping = threading.Event()
        self._wake: tuple[socket.socket, socket.socket] | None = None  # reader, writer
        self.exit_status = 0
        self._heartbeat: heartbeats.Heartbeat | None = None
        self._sweep: runs.PeriodicSweep | None = None

    # -- signals ---------------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        def stop(signum: int, frame: FrameType | None) -> None:
            logger.info("scheduler: %s received, stopping", signal.Signals(signum).name)
            self.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def stop(self) -> None:
        self.stopping.set()
        if self._wake is not None:
            with contextlib.suppress(BlockingIOError, OSError):
                self._wake[1].send(b"x")

    # -- running ---------------------------------------------------------------------------------

    def run(self) -> int:
        """Run until stop(); the exit status (1: another scheduler holds the database)."""
        quiet_apscheduler()
        started = heartbeats.log_start(
            "scheduler",
            self.config,
            vendors=",".join(self.schedule.vendors),
            max_crawls=self.schedule.max_crawls,
            timezone=self.schedule.timezone,
        )
        engine = get_engine(self.config)
        upgrade(engine, self.config)  # sweeps abandoned crawl runs, then every minute (_loop)
        self._sweep = runs.PeriodicSweep(engine, self.config)
        instance = store.Instance(store.dsn(self.config))
        if not instance.acquire():
            holder = store.running_scheduler(engine)
            logger.error(
                "another scheduler is running on this database (%s): refusing to start, "
                "exactly one scheduler may run",
                holder or "its connection is closing",
            )
            return 1
        self._heartbeat = heartbeats.Heartbeat(engine, "scheduler", self.schedule.control_poll)
        self._heartbeat.start(**started)
        self._wake = socket.socketpair()
        for end in self._wake:
            end.setblocking(False)
        try:
            return self._run(instance)
        finally:
            instance.close()
            for end in self._wake:
                end.close()

    def _run(self, instance: store.Instance) -> int:
        engine = get_engine(self.config)
        store_lock = store.StoreLock(store.dsn(self.config))
        scheduler = store.LockedScheduler(
            store_lock,
            jobstores={"default": store.job_store(self.config)},
            executors={
                jobs.CRAWL_EXECUTOR: ThreadPoolExecutor(self.schedule.max_crawls),
                jobs.INDEX_EXECUTOR: ThreadPoolExecutor(len(VENDORS)),
            },
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone=ZoneInfo(self.schedule.timezone),
            jobstore_retry_interval=self.schedule.control_poll,
        )
        runner = CrawlRunner(self.config, engine, self.stopping)
        runtime = jobs.Runtime(self.config, engine, scheduler, store_lock, runner, self.stopping)
        jobs.install(runtime)
        scheduler.start(paused=True)
        try:
            self.set_up_jobs(scheduler, store_lock)
            if self.stopping.is_set():
                return self.exit_status
            scheduler.resume()
            count = len(scheduler.get_jobs())
            logger.info(
                "scheduler ready: %d job(s), at most %d crawl(s) at once, times in %s",
                count,
                self.schedule.max_crawls,
                self.schedule.timezone,
            )
            self._loop(instance, scheduler)
        finally:
            self._shut_down(scheduler, runtime)
        return self.exit_status

    def set_up_jobs(self, scheduler: BaseScheduler, store_lock: store.StoreLock) -> None:
        """The jobs of every configured shop, from its listed years; shops no longer configured
        lose theirs. An unreadable year index keeps the shop's jobs as they are."""
        for vendor in VENDORS:
            if self.stopping.is_set():
                return
            if vendor not in self.schedule.vendors:
                changes = jobs.reconcile(
                    scheduler,
                    store_lock,
                    [],
                    removable=lambda job_id, v=vendor: jobs.owner(job_id) == v,
                )
                if changes.removed:
                    logger.info("%s is not scheduled any more: %s", vendor, changes)
                continue
            try:
                listing = years.listed_years(self.config, vendor, prefer_cache=True)
            except years.YearIndexError as error:
                kept = jobs.scheduled_years(scheduler, vendor)
                specs = jobs.vendor_specs(self.schedule, vendor, kept)
                changes = jobs.reconcile(scheduler, store_lock, specs, removable=lambda _: False)
                with store_lock:
                    jobs.queue_run(
                        scheduler,
                        jobs.years_id(vendor),
                        at=datetime.now(ZoneInfo("UTC")) + YEARS_RETRY,
                    )
                logger.error(
                    "%s: %s Keeping the jobs of the %s scheduled before (%s); the index is "
                    "read again in %s.",
                    vendor,
                    error,
                    jobs.span(kept),
                    changes,
                    format_duration(YEARS_RETRY.total_seconds()),
                )
                continue
            specs = jobs.vendor_specs(self.schedule, vendor, listing.years)
            removable = (
                (lambda job_id, v=vendor: job_id.startswith(f"sync:{v}:"))
                if listing.authoritative
                else (lambda _: False)
            )
            changes = jobs.reconcile(scheduler, store_lock, specs, removable=removable)
            logger.info(
                "%s: %s from the %s; %s",
                vendor,
                jobs.span(listing.years),
                "year index" if listing.authoritative else "year-link cache",
                changes,
            )

    def _loop(self, instance: store.Instance, scheduler: BaseScheduler) -> None:
        while not self.stopping.is_set():
            try:
                assert self._wake is not None
                notified = instance.wait(self.schedule.control_poll, self._wake[0])
            except psycopg2.Error as error:
                if not self._regain(instance, scheduler, error):
                    return
                continue
            if self.stopping.is_set():
                return
            if notified:
                logger.info("scheduler: the job store was changed; re-reading it")
            scheduler.wakeup()
            if self._heartbeat is not None:
                self._heartbeat.beat()
            if self._sweep is not None:
                self._sweep()

    def _regain(
        self, instance: store.Instance, scheduler: BaseScheduler, error: psycopg2.Error
    ) -> bool:
        """The lock connection is gone, and the lock with it: no job starts until it is held
        again. False when another scheduler took it meanwhile (this one then stops)."""
        scheduler.pause()
        logger.error(
            "scheduler: lost the connection holding the scheduler lock (%s); no job starts "
            "until it is back",
            store.one_line(error),
        )
        delay = 1.0
        while not self.stopping.wait(delay):
            try:
                if instance.acquire():
                    logger.info("scheduler: the lock is held again; resuming")
                    scheduler.resume()
                    return True
            except psycopg2.Error as again:
                logger.warning(
                    "scheduler: the database is still unavailable (%s)", store.one_line(again)
                )
                delay = min(30.0, delay * 2)
                continue
            logger.error("scheduler: another scheduler took over this database: stopping")
            self.exit_status = 1
            self.stop()
            return False
        return False

    def _shut_down(self, scheduler: BaseScheduler, runtime: jobs.Runtime) -> None:
        self.stopping.set()
        if scheduler.state != STATE_STOPPED:
            scheduler.pause()  # no job starts any more
            active = runtime.runner.active
            if active:
                logger.info(
                    "scheduler stopping: %d running crawl(s) get %s to stop and record their end",
                    active,
                    format_duration(self.schedule.stop_grace),
                )
            # Running crawls get SIGTERM now, SIGKILL after stop_grace (runner._wait).
            idle = runtime.wait_idle(self.schedule.stop_grace + _IDLE_MARGIN_SECONDS)
            if not idle:
                logger.warning("scheduler stopping: jobs still running; not waiting for them")
            scheduler.shutdown(wait=idle)
        jobs.install(None)
        runtime.store_lock.close()
        if self._heartbeat is not None:
            self._heartbeat.stop()
        logger.info("scheduler stopped")


# -- the CLI ---------------------------------------------------------------------------------------


class UnknownJob(LookupError):
    """No job with that id; one sentence."""


@dataclass(frozen=True)
class JobView:
    id: str
    name: str
    trigger: str
    next_run: datetime | None  # None: paused


def list_jobs(config: Config) -> tuple[str | None, list[JobView]]:
    """(who runs the scheduler, or None; every job, in id order)."""
    engine = get_engine(config)
    holder = store.running_scheduler(engine)
    zone = ZoneInfo(config.schedule.timezone)
    with store.control_scheduler(config) as scheduler:
        found = scheduler.get_jobs()
    views = [
        JobView(
            job.id,
            job.name,
            triggers.describe(job.trigger),
            None if job.next_run_time is None else job.next_run_time.astimezone(zone),
        )
        for job in found
    ]
    return holder, sorted(views, key=lambda view: jobs.sort_key(view.id))


def _known_job(scheduler: BaseScheduler, job_id: str) -> None:
    if scheduler.get_job(job_id) is None:
        raise UnknownJob(f"there is no job {job_id!r} (python scheduler.py list shows them).")


def run_now(config: Config, job_id: str) -> str:
    """Queue a one-off run of the job now; a sentence saying what happened."""
    if job_id.startswith(jobs.RUN_PREFIX):
        raise UnknownJob(f"{job_id!r} is a one-off run already; give the id of the job itself.")
    with store.control_scheduler(config) as scheduler, store.store_lock(config):
        _known_job(scheduler, job_id)
        run_id, added = jobs.queue_run(scheduler, job_id)
    if not added:
        return f"a run of {job_id} is queued already ({run_id})."
    store.notify(get_engine(config), f"run {job_id}")
    return f"{job_id} runs now ({run_id}); its schedule is unchanged."


def pause(config: Config, job_id: str) -> str:
    with store.control_scheduler(config) as scheduler, store.store_lock(config):
        _known_job(scheduler, job_id)
        scheduler.pause_job(job_id)
    store.notify(get_engine(config), f"pause {job_id}")
    return f"{job_id} is paused: it does not run until resumed (a running crawl finishes)."


def resume(config: Config, job_id: str) -> str:
    zone = ZoneInfo(config.schedule.timezone)
    with store.control_scheduler(config) as scheduler, store.store_lock(config):
        _known_job(scheduler, job_id)
        job = scheduler.resume_job(job_id)
    store.notify(get_engine(config), f"resume {job_id}")
    if job is None or job.next_run_time is None:
        return f"{job_id} has no run left and was removed."
    return (
        f"{job_id} is resumed; next run {job.next_run_time.astimezone(zone):%Y-%m-%d %H:%M:%S %Z}."
    )
