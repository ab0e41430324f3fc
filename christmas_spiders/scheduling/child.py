"""A crawl in a child process: ``python -m scrapy crawl <vendor> -a year=… -a run_id=<id>``.

The scheduler opens the crawl run itself (``runs.start_run``) and hands its id to the child,
which joins it; being the first process in the run, the child owns it and ends it as any full
crawl does (health, delisting; see ``storage.runs``). The child runs in the project folder (a
fresh reactor per crawl: the standard way to run Scrapy repeatedly) in a process group of its
own.

* **Budget and stop**: a crawl still running after its kind's ``budget``, or when the scheduler
  stops, gets SIGTERM (Scrapy stops gracefully and records its run), and SIGKILL for its whole
  process group after ``schedule.stop_grace`` (``processes.stop_process``).
* **Records**: the crawl records its counters and status in its run; afterwards the scheduler
  adds ``scheduler/job_id``, ``scheduler/exit_status``, ``scheduler/duration_seconds`` (and
  ``scheduler/stopped``) to the run's ``stats``. A run the crawl left ``running`` — it was
  killed, or died before it joined the run (a bad argument, no database) — or that a sweep
  closed ``abandoned`` meanwhile, is closed ``failed`` with the reason the scheduler knows.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from typing import Any

from sqlalchemy.engine import Connection, Engine
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

from christmas_spiders.config import PROJECT_ROOT, Config
from christmas_spiders.config.schedule import format_duration
from christmas_spiders.errors import one_line
from christmas_spiders.processes import crawl_command, stop_process
from christmas_spiders.retrying import backoff
from christmas_spiders.scheduling.outcome import Crawl, Outcome, describe_exit
from christmas_spiders.scheduling.store import DATABASE_ERRORS
from christmas_spiders.storage import runs

logger = logging.getLogger(__name__)

_POLL_SECONDS = 0.25  # how often a running child is checked (budget, stop)
_RECORD_ATTEMPTS = 3  # tries to record an outcome while the database is away (1 s, 2 s apart)


class ChildCrawls:
    def __init__(self, config: Config, engine: Engine, stopping: threading.Event) -> None:
        self.config = config
        self.engine = engine
        self.stopping = stopping

    def command(self, crawl: Crawl, run_id: int) -> list[str]:
        arguments = {**crawl.arguments, "run_id": run_id}
        return crawl_command(crawl.vendor, arguments, self.config.schedule.crawl_settings)

    def run(self, crawl: Crawl) -> Outcome:
        """Open the run, crawl it in a child, record how it ended."""
        try:
            with self.engine.begin() as db:
                run_id = runs.start_run(db, crawl.vendor, crawl.arguments)
        except DATABASE_ERRORS as error:
            reason = f"could not open its crawl run: {one_line(error)}"
            return Outcome(crawl, "failed", reason)
        command = self.command(crawl, run_id)
        logger.info("%s: %s", crawl.job_id, " ".join(["scrapy", *command[3:]]))
        started = time.monotonic()
        child = subprocess.Popen(command, cwd=PROJECT_ROOT, start_new_session=True)
        stopped = self._wait(child, crawl, started)
        duration = time.monotonic() - started
        return self._record(crawl, run_id, child.returncode, stopped, duration)

    def _wait(self, child: subprocess.Popen[bytes], crawl: Crawl, started: float) -> str | None:
        """Until the child exits; returns why it was stopped (time_budget, scheduler_stopped)."""
        while True:
            try:
                child.wait(timeout=_POLL_SECONDS)
                return None
            except subprocess.TimeoutExpired:
                pass
            reason = None
            if time.monotonic() - started >= crawl.budget:
                reason = "time_budget"
                logger.warning(
                    "%s: the crawl exceeded its budget of %s: stopping it",
                    crawl.job_id,
                    format_duration(crawl.budget),
                )
            elif self.stopping.is_set():
                reason = "scheduler_stopped"
            if reason is not None:
                name = f"{crawl.job_id}: the crawl"
                stop_process(child, self.config.schedule.stop_grace, group=True, name=name)
                return reason

    def _record(
        self, crawl: Crawl, run_id: int, code: int, stopped: str | None, duration: float
    ) -> Outcome:
        extra: dict[str, Any] = {
            "scheduler/job_id": crawl.job_id,
            "scheduler/exit_status": code,
            "scheduler/duration_seconds": round(duration, 3),
        }
        if stopped:
            extra["scheduler/stopped"] = stopped
        recording = Retrying(
            retry=retry_if_exception_type(DATABASE_ERRORS),
            stop=stop_after_attempt(_RECORD_ATTEMPTS),
            wait=backoff(1.0),
            reraise=True,
        )
        try:
            status, reason, counters = recording(self._close_run, run_id, code, stopped, extra)
        except DATABASE_ERRORS as error:
            logger.error(
                "%s: could not record the end of crawl run %d (%s, %s): %s",
                crawl.job_id,
                run_id,
                stopped or describe_exit(code),
                format_duration(duration),
                one_line(error),
            )
            return Outcome(crawl, "failed", stopped or describe_exit(code), run_id, code, duration)
        return Outcome(crawl, status, reason, run_id, code, duration, counters)

    def _close_run(
        self, run_id: int, code: int, stopped: str | None, extra: dict[str, Any]
    ) -> tuple[str, str, dict[str, int]]:
        """Close or annotate the run (see _close); (status, reason, counters)."""
        with self.engine.begin() as db:
            status, reason = _close(db, run_id, code, stopped, extra)
            return status, reason, runs.counters(db, run_id)


def _close(
    db: Connection, run_id: int, code: int, stopped: str | None, extra: dict[str, Any]
) -> tuple[str, str]:
    """Close or annotate the child's run; (status, reason)."""
    run = runs.lock_run(db, run_id)
    if run.status == "running" or run.close_reason == runs.ABANDONED:
        # It died before it could record its end (maybe swept meanwhile, see runs.sweep), or
        # before it even joined the run: the scheduler knows how it ended.
        if run.entered:
            reason = stopped or f"ended without recording its end ({describe_exit(code)})"
        else:
            reason = stopped or f"the crawl never joined its run ({describe_exit(code)})"
        runs.finish_run(db, run_id, status="failed", close_reason=reason, counters={}, stats=extra)
        return "failed", reason
    # The crawl's own record stands (it may have finished just as it was stopped).
    status, reason = run.status, run.close_reason or describe_exit(code)
    if stopped and status == "failed":
        reason = stopped  # the true reason it closed
        runs.add_stats(db, run_id, extra, close_reason=reason)
    else:
        runs.add_stats(db, run_id, extra)
    return status, reason
