"""Runs one crawl for a job, within the scheduler's limits, and records how it ended.

* **Where**: a child process ``python -m scrapy crawl <vendor> -a year=…`` in the project
  folder (the standard way to run Scrapy repeatedly: a fresh reactor per crawl), in a process
  group of its own. With ``REDIS_URL`` and standing workers listening for announcements
  (``scrapy worker``), the run is announced for them instead (``distributed.announce``) and
  followed in ``crawl_runs`` to its end.
* **Limits**: at most ``schedule.max_crawls`` crawls at once (all jobs together); the same
  crawl (vendor and arguments) never twice at once, e.g. a ``run JOB_ID`` while the job is
  running; a crawl still running after its kind's ``budget`` gets SIGTERM (Scrapy stops
  gracefully and records its run), and SIGKILL for its whole process group after
  ``schedule.stop_grace``. SIGTERM to the scheduler stops running crawls the same way.
* **Records**: the crawl's own extension writes its ``crawl_runs`` row (counters, status).
  Afterwards the runner adds ``scheduler/job_id``, ``scheduler/exit_status``,
  ``scheduler/duration_seconds`` (and ``scheduler/stopped``) to the row's ``stats``; a row the
  crawl left ``running`` (it was killed; or a sweep closed it ``abandoned`` meanwhile) is closed
  ``failed`` with the reason, and a crawl that died before opening its row (a bad argument, no
  database) gets a ``failed`` row of its own.
  The child's row is found by the tag the runner hands it (Scrapy setting ``CRAWL_RUN_TAG``,
  kept in the row's stats).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import redis
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Engine

from christmas_spiders.config import PROJECT_ROOT, Config
from christmas_spiders.config.schedule import format_duration
from christmas_spiders.distributed import announce, connection, keys, run
from christmas_spiders.scheduling.store import DATABASE_ERRORS, one_line
from christmas_spiders.storage import runs
from christmas_spiders.storage.schema import crawl_runs

logger = logging.getLogger(__name__)

_POLL_SECONDS = 0.25  # how often a running child is checked (budget, stop)
_FOLLOW_SECONDS = 1.0  # how often an announced run's row is read
_RECORD_ATTEMPTS = 3  # tries to record an outcome while the database is away


@dataclass(frozen=True)
class Crawl:
    job_id: str
    vendor: str
    arguments: Mapping[str, str]  # spider arguments: {"year": "2019"}, {"product_id": "42"}
    budget: float  # seconds

    @property
    def key(self) -> str:
        """The same crawl is the same vendor with the same arguments."""
        return " ".join([self.vendor, *(f"{k}={v}" for k, v in sorted(self.arguments.items()))])


@dataclass(frozen=True)
class Outcome:
    crawl: Crawl
    status: str  # finished, failed, skipped (not started), or running (left to the workers)
    reason: str
    run_id: int | None = None
    exit_status: int | None = None
    duration: float = 0.0
    counters: Mapping[str, int] = field(default_factory=dict)


def describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"


class CrawlRunner:
    def __init__(self, config: Config, engine: Engine, stopping: threading.Event) -> None:
        self.config = config
        self.schedule = config.schedule
        self.engine = engine
        self.stopping = stopping
        self._slots = threading.BoundedSemaphore(self.schedule.max_crawls)
        self._lock = threading.Lock()
        self._active: set[str] = set()
        self._redis: redis.Redis | None = None

    @property
    def active(self) -> int:
        with self._lock:
            return len(self._active)

    def command(self, crawl: Crawl) -> list[str]:
        command = [sys.executable, "-m", "scrapy", "crawl", crawl.vendor]
        for name, value in crawl.arguments.items():
            command += ["-a", f"{name}={value}"]
        for name, value in self.schedule.crawl_settings:
            command += ["-s", f"{name}={value}"]
        return command

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
                outcome = None
                if self._standing_workers():
                    outcome = self._announced(crawl)
                if outcome is None:
                    outcome = self._child(crawl)
            finally:
                self._slots.release()
        finally:
            with self._lock:
                self._active.discard(crawl.key)
        self._log(outcome)
        return outcome

    def _take_slot(self) -> bool:
        while not self.stopping.is_set():
            if self._slots.acquire(timeout=_POLL_SECONDS):
                if not self.stopping.is_set():
                    return True
                self._slots.release()
        return False

    # -- a child process -------------------------------------------------------------------------

    def _child(self, crawl: Crawl) -> Outcome:
        with self.engine.connect() as db:
            after_id = db.execute(sa.select(sa.func.coalesce(sa.func.max(crawl_runs.c.id), 0)))
            after_id = after_id.scalar_one()
        command = self.command(crawl)
        logger.info("%s: %s", crawl.job_id, " ".join(["scrapy", *command[3:]]))
        tag = uuid.uuid4().hex  # how the child's crawl_runs row is found again
        started = time.monotonic()
        child = subprocess.Popen(
            [*command, "-s", f"CRAWL_RUN_TAG={tag}"], cwd=PROJECT_ROOT, start_new_session=True
        )
        stopped = self._wait(child, crawl, started)
        duration = time.monotonic() - started
        return self._record(crawl, after_id, tag, child.returncode, stopped, duration)

    def _wait(self, child: subprocess.Popen[bytes], crawl: Crawl, started: float) -> str | None:
        """Until the child exits; returns why it was stopped (time_budget, scheduler_stopped)."""
        reason: str | None = None
        signalled = 0.0
        while True:
            try:
                child.wait(timeout=_POLL_SECONDS)
                break
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            if reason is None:
                if now - started >= crawl.budget:
                    reason = "time_budget"
                    logger.warning(
                        "%s: the crawl exceeded its budget of %s: stopping it",
                        crawl.job_id,
                        format_duration(crawl.budget),
                    )
                elif self.stopping.is_set():
                    reason = "scheduler_stopped"
                if reason is not None:
                    signalled = now
                    with contextlib.suppress(ProcessLookupError):
                        child.send_signal(signal.SIGTERM)
            elif now - signalled >= self.schedule.stop_grace:
                logger.warning(
                    "%s: the crawl did not stop within %s: killed",
                    crawl.job_id,
                    format_duration(self.schedule.stop_grace),
                )
                self._kill_group(child)
                child.wait()
                break
        if reason is not None:
            self._kill_group(child)  # what it left behind (a browser), if anything
        return reason

    @staticmethod
    def _kill_group(child: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)

    def _record(
        self,
        crawl: Crawl,
        after_id: int,
        tag: str,
        code: int,
        stopped: str | None,
        duration: float,
    ) -> Outcome:
        extra: dict[str, Any] = {
            "scheduler/job_id": crawl.job_id,
            "scheduler/exit_status": code,
            "scheduler/duration_seconds": round(duration, 3),
        }
        if stopped:
            extra["scheduler/stopped"] = stopped
        for attempt in range(1, _RECORD_ATTEMPTS + 1):
            try:
                with self.engine.begin() as db:
                    run_id, status, reason = self._close(
                        db, crawl, after_id, tag, code, stopped, extra
                    )
                    counters = self._counters(db, run_id)
                return Outcome(crawl, status, reason, run_id, code, duration, counters)
            except DATABASE_ERRORS as error:
                if attempt == _RECORD_ATTEMPTS:
                    logger.error(
                        "%s: could not record the end of the crawl (%s, %s): %s",
                        crawl.job_id,
                        stopped or describe_exit(code),
                        format_duration(duration),
                        one_line(error),
                    )
                    break
                time.sleep(attempt)
        return Outcome(crawl, "failed", stopped or describe_exit(code), None, code, duration)

    def _close(
        self,
        db: Connection,
        crawl: Crawl,
        after_id: int,
        tag: str,
        code: int,
        stopped: str | None,
        extra: dict[str, Any],
    ) -> tuple[int, str, str]:
        """Close or annotate the child's crawl_runs row; (run id, status, reason)."""
        row = db.execute(
            sa.select(crawl_runs.c.id, crawl_runs.c.status, crawl_runs.c.close_reason)
            .where(
                crawl_runs.c.id > after_id,
                crawl_runs.c.spider == crawl.vendor,
                crawl_runs.c.stats[runs.TAG_STAT].astext == tag,
            )
            .order_by(crawl_runs.c.id)
            .limit(1)
            .with_for_update()
        ).first()
        if row is None:  # it died before opening its run (a bad argument, no database…)
            run_id = runs.start_run(db, crawl.vendor, crawl.arguments)
            reason = stopped or f"no crawl run recorded ({describe_exit(code)})"
        elif row.status == "running" or row.close_reason == runs.ABANDONED:
            # Killed before it could record its end (and maybe swept meanwhile, see runs.sweep):
            # the runner knows how it ended.
            run_id = row.id
            reason = stopped or f"ended without recording its end ({describe_exit(code)})"
        else:
            values: dict[str, Any] = {
                "stats": crawl_runs.c.stats.op("||")(sa.literal(extra, type_=JSONB))
            }
            # The crawl's own record stands (it may have finished just as it was stopped).
            status, reason = row.status, row.close_reason or describe_exit(code)
            if stopped and status == "failed":
                reason = values["close_reason"] = stopped  # the true reason it closed
            db.execute(sa.update(crawl_runs).where(crawl_runs.c.id == row.id).values(**values))
            return row.id, status, reason
        runs.finish_run(db, run_id, status="failed", close_reason=reason, counters={}, stats=extra)
        return run_id, "failed", reason

    @staticmethod
    def _counters(db: Connection, run_id: int) -> dict[str, int]:
        row = db.execute(
            sa.select(*(crawl_runs.c[name] for name in runs.COUNTERS)).where(
                crawl_runs.c.id == run_id
            )
        ).one()
        return dict(row._mapping)

    # -- a run announced for the standing workers ------------------------------------------------

    def _standing_workers(self) -> bool:
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
                connection.describe(error),
            )
            return False

    def _announced(self, crawl: Crawl) -> Outcome | None:
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
                status, reason = db.execute(
                    sa.select(crawl_runs.c.status, crawl_runs.c.close_reason).where(
                        crawl_runs.c.id == run_id
                    )
                ).one()
            if status != "running":
                break
            elapsed = time.monotonic() - started
            if elapsed >= crawl.budget:
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
            values: dict[str, Any] = {
                "stats": crawl_runs.c.stats.op("||")(sa.literal(extra, type_=JSONB))
            }
            if reason == "time_budget":
                values["close_reason"] = reason
            db.execute(sa.update(crawl_runs).where(crawl_runs.c.id == run_id).values(**values))
            counters = self._counters(db, run_id)
        return Outcome(crawl, status, reason or status, run_id, None, duration, counters)

    def _give_up(self, crawl: Crawl, run_id: int) -> None:
        """Over budget: the run is recorded failed and closed in Redis: no further worker joins
        it, and the workers in it stop at their next report."""
        logger.warning(
            "%s: crawl run %s:%d exceeded its budget of %s: recorded failed and stopped",
            crawl.job_id,
            crawl.vendor,
            run_id,
            format_duration(crawl.budget),
        )
        with self.engine.begin() as db:
            status = db.execute(
                sa.select(crawl_runs.c.status).where(crawl_runs.c.id == run_id).with_for_update()
            ).scalar_one()
            if status == "running":
                runs.finish_run(
                    db, run_id, status="failed", close_reason="time_budget", counters={}, stats={}
                )
        assert self._redis is not None
        try:
            run.stop(self._redis, keys.RunKeys(self.config.redis_key_prefix, crawl.vendor, run_id))
        except redis.RedisError as error:
            logger.warning(
                "could not withdraw crawl run %d: %s", run_id, connection.describe(error)
            )

    # -- the log ---------------------------------------------------------------------------------

    def _log(self, outcome: Outcome) -> None:
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
