"""The job store in PostgreSQL, the locks that keep one writer of it, and the wake-up channel.

* **Job store**: APScheduler's SQLAlchemy job store, table ``apscheduler_jobs`` in the project's
  database (``DATABASE_URL`` or the embedded server); it creates the table itself. Jobs and their
  next run times live there, so they survive restarts.
* **One scheduler per database**: the running scheduler holds the advisory lock
  ``_INSTANCE_LOCK`` on a connection of its own for as long as it runs; a second one finds it
  taken and refuses to start.
* **One writer of the job store**: APScheduler 3 reads a job, then writes it back in another
  transaction, so only one process may write the store. The running scheduler does, through
  APScheduler's API (its own lock serialises the loop, the jobs and the CLI's commands); it
  holds ``_WRITER_LOCK`` shared for as long as it runs. The CLI writes the store only while
  no scheduler runs, holding ``_WRITER_LOCK`` exclusively (``job_store_writer``), so none can
  start meanwhile; otherwise it queues a command for the scheduler (``scheduling.commands``).
* **Wake-up**: the CLI sends ``NOTIFY christmas_scheduler``; the running scheduler LISTENs on
  its lock connection and reads its commands at once. A lost notification costs at most
  ``schedule.control_poll`` seconds: the commands are read that often anyway.
* **A database that goes away**: ``PostgresJobStore`` keeps APScheduler's loop alive through
  it, with public job-store methods only (see there).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg2
import psycopg2.extensions
import sqlalchemy as sa
from apscheduler.job import Job
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.base import BaseScheduler
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    sleep_using_event,
    stop_when_event_set,
)

from christmas_spiders.config import Config
from christmas_spiders.errors import one_line
from christmas_spiders.retrying import backoff, failure
from christmas_spiders.storage.database import database_url, listen_connection

logger = logging.getLogger(__name__)

JOBS_TABLE = "apscheduler_jobs"
CONTROL_CHANNEL = "christmas_scheduler"  # the CLI wakes the scheduler
APPLIED_CHANNEL = "christmas_scheduler_applied"  # the scheduler answers: a command is applied
APPLICATION_NAME = "christmas-scheduler"
_INSTANCE_LOCK = 0x73636864  # pg_advisory_lock key of the running scheduler ("schd")
_WRITER_LOCK = 0x736A6F62  # shared: the running scheduler; exclusive: the CLI ("sjob")
DATABASE_ERRORS = (SQLAlchemyError, psycopg2.Error)


def dsn(config: Config) -> str:
    """A libpq URL of the project's database (for the connections APScheduler does not own)."""
    url = make_url(database_url(config)).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def connect(url: str, role: str) -> psycopg2.extensions.connection:
    """An autocommit connection, named in pg_stat_activity: christmas-scheduler ROLE HOST:PID."""
    name = f"{APPLICATION_NAME} {role} {socket.gethostname()}:{os.getpid()}"[:63]
    return listen_connection(url, name)


class PostgresJobStore(SQLAlchemyJobStore):
    """APScheduler's SQLAlchemy job store, surviving a database that goes away.

    APScheduler 3 guards only the first query of a round of its loop (``get_due_jobs``); a
    failure after it would end the loop thread for good. Here the writes of a round
    (``update_job``, ``remove_job``) are retried until they succeed — a due job's new next run
    time is never lost, so it never runs twice — and ``get_next_run_time`` answers "look again
    in ``retry_seconds``". Once ``stopping`` is set, the store hands out no due job: the round
    APScheduler makes after its shutdown starts nothing, and advances nothing.
    """

    def __init__(self, engine: Engine, stopping: threading.Event, retry_seconds: float) -> None:
        super().__init__(engine=engine, tablename=JOBS_TABLE)
        self.stopping = stopping
        self.retry_seconds = retry_seconds

    def get_due_jobs(self, now: datetime) -> list[Job]:
        if self.stopping.is_set():
            return []
        return super().get_due_jobs(now)

    def get_next_run_time(self) -> datetime | None:
        try:
            return super().get_next_run_time()
        except DATABASE_ERRORS as error:
            logger.warning(
                "scheduler: the job store is unavailable (%s); looking again in %.0f s",
                one_line(error),
                self.retry_seconds,
            )
            return datetime.now(UTC) + timedelta(seconds=self.retry_seconds)

    def update_job(self, job: Job) -> None:
        write = super().update_job
        self._until_written(f"the next run time of {job.id}", lambda: write(job))

    def remove_job(self, job_id: str) -> None:
        delete, first = super().remove_job, True

        def remove() -> None:
            nonlocal first
            try:
                delete(job_id)
            except JobLookupError:
                if first:
                    raise
                # An earlier try went through, though its answer was lost.
            finally:
                first = False

        self._until_written(f"the removal of {job_id}", remove)

    def _until_written(self, what: str, write: Callable[[], None]) -> None:
        """Retried until written, waiting 1 s doubling to ``retry_seconds``; once stopping, a
        write that fails is given up (a stop during a wait ends it early: one last try)."""

        def give_up(state: RetryCallState) -> None:
            logger.error(
                "scheduler: stopping with the job store unavailable (%s): %s is not saved; "
                "a missed run is made up (once) at the next start",
                one_line(failure(state)),
                what,
            )

        Retrying(
            retry=retry_if_exception_type(DATABASE_ERRORS),
            stop=stop_when_event_set(self.stopping),
            wait=backoff(1.0, self.retry_seconds),
            sleep=sleep_using_event(self.stopping),
            before_sleep=lambda state: logger.warning(
                "scheduler: could not save %s (%s); trying again in %.0f s",
                what,
                one_line(failure(state)),
                state.upcoming_sleep,
            ),
            retry_error_callback=give_up,
        )(write)


def job_store(
    config: Config, stopping: threading.Event | None = None, retry_seconds: float = 5.0
) -> PostgresJobStore:
    """The job store on an engine of its own (the store disposes it at shutdown)."""
    engine = sa.create_engine(
        database_url(config),
        pool_pre_ping=True,
        pool_size=2,
        max_overflow=4,
        connect_args={"application_name": f"{APPLICATION_NAME} store"},
    )
    return PostgresJobStore(engine, stopping or threading.Event(), retry_seconds)


class OfflineAPScheduler(BaseScheduler):
    """An APScheduler without a loop: it reads and changes the jobs in the store and never runs
    one (APScheduler's own schedulers would process due jobs, even when paused, at shutdown).
    The CLI uses it; it changes the store only under ``job_store_writer``."""

    def shutdown(self, wait: bool = True) -> None:
        super().shutdown(wait)

    def wakeup(self) -> None:
        """Nothing to wake: the running scheduler is woken through the control channel."""


@contextlib.contextmanager
def offline_apscheduler(config: Config) -> Iterator[BaseScheduler]:
    """The CLI's handle on the job store (reading it; writing it under job_store_writer)."""
    apscheduler = OfflineAPScheduler(
        jobstores={"default": job_store(config)}, timezone=ZoneInfo(config.schedule.timezone)
    )
    apscheduler.start(paused=True)
    try:
        yield apscheduler
    finally:
        apscheduler.shutdown(wait=False)


@contextlib.contextmanager
def job_store_writer(config: Config) -> Iterator[bool]:
    """Try to be the job store's writer for the length of the block: True when no scheduler
    runs (and none can start until the block ends), False when one does."""
    connection = connect(dsn(config), "cli")
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", (_WRITER_LOCK,))
            held = bool(cursor.fetchone()[0])
        yield held
        if held:  # now: closing the connection releases it too, but only once its server ends
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", (_WRITER_LOCK,))
    finally:
        connection.close()


def notify(engine: Engine, channel: str, payload: str) -> None:
    with engine.begin() as connection:
        connection.execute(sa.select(sa.func.pg_notify(channel, payload)))


def running_scheduler(engine: Engine) -> str | None:
    """The application name of the connection holding the scheduler lock, or None."""
    with engine.connect() as connection:
        return connection.execute(
            sa.text(
                "SELECT a.application_name FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 "
                "AND l.objid = :key AND l.objsubid = 1 "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ),
            {"key": _INSTANCE_LOCK},
        ).scalar()


class Instance:
    """The running scheduler's own connection: it holds the one-scheduler lock and the writer
    lock (shared), and LISTENs on the control channel. ``wait`` returns on a notification, a
    wake-up or the timeout, and probes the connection when nothing came (raising
    psycopg2.Error if it is gone)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._connection: psycopg2.extensions.connection | None = None

    def acquire(self) -> bool:
        """Take the locks (and start listening); False when another scheduler runs. A CLI
        changing the job store meanwhile is waited for (it holds the writer lock briefly)."""
        self.close()
        connection = connect(self._url, "lock")
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", (_INSTANCE_LOCK,))
                if not cursor.fetchone()[0]:
                    connection.close()
                    return False
                cursor.execute("SELECT pg_advisory_lock_shared(%s)", (_WRITER_LOCK,))
                cursor.execute(f"LISTEN {CONTROL_CHANNEL}")
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        return True

    def wait(self, timeout: float, wake: socket.socket) -> bool:
        """True when a notification came (the CLI queued a command)."""
        connection = self._connection
        assert connection is not None, "acquire() first"
        readable, _, _ = select.select([connection, wake], [], [], timeout)
        if wake in readable:
            with contextlib.suppress(BlockingIOError):
                wake.recv(64)
        if connection in readable:
            connection.poll()
            notified = bool(connection.notifies)
            connection.notifies.clear()  # a wake-up only: the commands table is the truth
            return notified
        with connection.cursor() as cursor:  # liveness probe: the locks live with it
            cursor.execute("SELECT 1")
        return False

    def close(self) -> None:
        if self._connection is not None:
            # Released now; closing the connection would, but only once its server ends.
            with contextlib.suppress(psycopg2.Error), self._connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock_all()")
            with contextlib.suppress(psycopg2.Error):
                self._connection.close()
        self._connection = None


class Listener:
    """A connection LISTENing on one channel, for the CLI waiting for the scheduler's answer."""

    def __init__(self, url: str, channel: str) -> None:
        self._connection = connect(url, "cli")
        with self._connection.cursor() as cursor:
            cursor.execute(f"LISTEN {channel}")

    def wait(self, timeout: float) -> None:
        """Until a notification or the timeout."""
        readable, _, _ = select.select([self._connection], [], [], timeout)
        if readable:
            self._connection.poll()
            self._connection.notifies.clear()

    def close(self) -> None:
        self._connection.close()
