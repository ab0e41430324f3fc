"""The job scheduler process (``python scheduler.py``): ``JobScheduler``.

Start: migrate the schema (as every writing process does), take the one-scheduler lock (a
second scheduler refuses to start), open the job store, bring the jobs in line with the
configuration and the shops' year lists (``jobs.reconcile``: only missing or changed jobs are
written), apply the commands queued meanwhile, then run APScheduler's background scheduler.
The main thread then waits on the lock connection: a NOTIFY from the CLI or the
``control_poll`` timeout applies the queued commands (``commands.apply_pending``) and wakes
APScheduler's loop; the timeout also checks that the lock is still held. Every minute it also
closes crawl runs abandoned by processes that died (``runs.PeriodicSweep``; ``upgrade`` sweeps
at start). SIGTERM or SIGINT stops it: no new job starts, running crawls get SIGTERM and
``stop_grace`` to record their end, then are killed and recorded failed.

The CLI's side (``list``, ``run``, ``pause``, ``resume``) is ``commands``.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

import psycopg2
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED, BaseScheduler
from tenacity import RetryCallState, Retrying, retry_if_exception_type

from christmas_spiders.config import Config
from christmas_spiders.config.schedule import format_duration
from christmas_spiders.errors import one_line
from christmas_spiders.retrying import Interrupted, after_failure, backoff, failure, interruptible
from christmas_spiders.scheduling import commands, jobs, store, years
from christmas_spiders.scheduling.runner import CrawlRunner
from christmas_spiders.scheduling.runtime import Runtime
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


def _still_unavailable(state: RetryCallState) -> None:
    if state.attempt_number > 1:  # the first failure is the lost connection, logged already
        logger.warning(
            "scheduler: the database is still unavailable (%s)", one_line(failure(state))
        )


class JobScheduler:
    """The long-running job scheduler: APScheduler's background scheduler on the PostgreSQL job
    store, run under the one-scheduler lock, with the CLI's commands applied as they come."""

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
        poll = self.schedule.control_poll
        apscheduler = BackgroundScheduler(
            jobstores={"default": store.job_store(self.config, self.stopping, poll)},
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone=ZoneInfo(self.schedule.timezone),
            jobstore_retry_interval=poll,
        )
        runner = CrawlRunner(self.config, engine, self.stopping)
        runtime = Runtime(self.config, engine, apscheduler, runner, self.stopping)
        for alias, executor in runtime.executors().items():
            apscheduler.add_executor(executor, alias)
        apscheduler.start(paused=True)
        try:
            self.set_up_jobs(apscheduler, runtime.job_set_lock)
            if self.stopping.is_set():
                return self.exit_status
            self._apply_commands(runtime)  # queued while no scheduler ran
            apscheduler.resume()
            logger.info(
                "scheduler ready: %d job(s), at most %d crawl(s) at once, times in %s",
                len(apscheduler.get_jobs()),
                self.schedule.max_crawls,
                self.schedule.timezone,
            )
            self._loop(instance, runtime)
        finally:
            self._shut_down(runtime)
        return self.exit_status

    def set_up_jobs(self, scheduler: BaseScheduler, lock: AbstractContextManager[Any]) -> None:
        """The daily refresh of the market views; the jobs of every configured shop, from its
        listed years; shops no longer configured lose theirs. An unreadable year index keeps the
        shop's jobs as they are."""
        market = jobs.reconcile(
            scheduler, lock, [jobs.market_spec(self.schedule)], removable=lambda _: False
        )
        if market.added or market.changed or market.rescheduled:
            logger.info("market views: refreshed daily (%s)", jobs.MARKET_CRON)
        for vendor in VENDORS:
            if self.stopping.is_set():
                return
            if vendor not in self.schedule.vendors:
                changes = jobs.reconcile(
                    scheduler,
                    lock,
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
                changes = jobs.reconcile(scheduler, lock, specs, removable=lambda _: False)
                with lock:
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
            changes = jobs.reconcile(scheduler, lock, specs, removable=removable)
            logger.info(
                "%s: %s from the %s; %s",
                vendor,
                jobs.span(listing.years),
                "year index" if listing.authoritative else "year-link cache",
                changes,
            )

    def _loop(self, instance: store.Instance, runtime: Runtime) -> None:
        while not self.stopping.is_set():
            try:
                assert self._wake is not None
                instance.wait(self.schedule.control_poll, self._wake[0])
            except psycopg2.Error as error:
                if not self._regain(instance, runtime.apscheduler, error):
                    return
                continue
            if self.stopping.is_set():
                return
            self._apply_commands(runtime)
            runtime.apscheduler.wakeup()
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
            one_line(error),
        )
        # The loss counts as the first failure: 1 s before trying again, then 2, 4 … 30 s.
        regaining = Retrying(
            retry=retry_if_exception_type(psycopg2.Error),
            wait=backoff(1.0, 30.0),
            sleep=interruptible(self.stopping),
            before_sleep=_still_unavailable,
        )
        try:
            held = after_failure(error, regaining, instance.acquire)
        except Interrupted:
            return False
        if held:
            logger.info("scheduler: the lock is held again; resuming")
            scheduler.resume()
            return True
        logger.error("scheduler: another scheduler took over this database: stopping")
        self.exit_status = 1
        self.stop()
        return False

    def _apply_commands(self, runtime: Runtime) -> None:
        """The CLI's queued commands, through APScheduler's API (see commands)."""
        try:
            commands.apply_pending(
                self.config,
                runtime.engine,
                runtime.apscheduler,
                running=True,
                lock=runtime.job_set_lock,
            )
        except store.DATABASE_ERRORS as error:
            logger.warning(
                "scheduler: could not read the queued commands (%s); trying again in %s",
                one_line(error),
                format_duration(self.schedule.control_poll),
            )

    def _shut_down(self, runtime: Runtime) -> None:
        self.stopping.set()  # the job store hands out no due job any more
        scheduler = runtime.apscheduler
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
        if self._heartbeat is not None:
            self._heartbeat.stop()
        logger.info("scheduler stopped")
