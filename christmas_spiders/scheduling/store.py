"""The job store in PostgreSQL, the locks around it, and how the CLI reaches the scheduler.

* **Job store**: APScheduler's SQLAlchemy job store, table ``apscheduler_jobs`` in the project's
  database (``DATABASE_URL`` or the embedded server); it creates the table itself. Jobs and their
  next run times live there, so they survive restarts.
* **One scheduler per database**: the running scheduler holds the advisory lock
  ``_INSTANCE_LOCK`` on a connection of its own for as long as it runs; a second one finds it
  taken and refuses to start.
* **One writer at a time**: APScheduler 3 reads a job, then writes it back in another
  transaction. The scheduler's loop, its job reconciliation and the CLI therefore each write only
  while holding the advisory lock ``_STORE_LOCK`` (``StoreLock``), so a ``pause`` never races the
  loop writing the same job's next run time.
* **Control path**: the CLI changes the job store itself (it is the truth), then sends
  ``NOTIFY christmas_scheduler``; the running scheduler LISTENs on its lock connection and
  re-reads the store at once (``scheduler.wakeup()``). A lost notification costs at most
  ``schedule.control_poll`` seconds: the store is re-read that often anyway.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import threading
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import psycopg2
import psycopg2.extensions
import sqlalchemy as sa
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED, BaseScheduler
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from christmas_spiders.config import Config
from christmas_spiders.storage.database import database_url, listen_connection

logger = logging.getLogger(__name__)

JOBS_TABLE = "apscheduler_jobs"
CONTROL_CHANNEL = "christmas_scheduler"
APPLICATION_NAME = "christmas-scheduler"
_INSTANCE_LOCK = 0x73636864  # pg_advisory_lock key of the running scheduler ("schd")
_STORE_LOCK = 0x736A6F62  # pg_advisory_lock key of job-store writes ("sjob")
_STORE_LOCK_TIMEOUT = "30s"  # a CLI command waits at most this long for the store
DATABASE_ERRORS = (SQLAlchemyError, psycopg2.Error)


def dsn(config: Config) -> str:
    """A libpq URL of the project's database (for the connections APScheduler does not own)."""
    url = make_url(database_url(config)).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def connect(url: str, role: str) -> psycopg2.extensions.connection:
    """An autocommit connection, named in pg_stat_activity: christmas-scheduler ROLE HOST:PID."""
    name = f"{APPLICATION_NAME} {role} {socket.gethostname()}:{os.getpid()}"[:63]
    return listen_connection(url, name)


def job_store(config: Config) -> SQLAlchemyJobStore:
    """The SQLAlchemy job store on an engine of its own (the store disposes it at shutdown)."""
    engine = sa.create_engine(
        database_url(config),
        pool_pre_ping=True,
        pool_size=2,
        max_overflow=4,
        connect_args={"application_name": f"{APPLICATION_NAME} store"},
    )
    return SQLAlchemyJobStore(engine=engine, tablename=JOBS_TABLE)


class StoreLock:
    """Job-store writes, one at a time across threads and processes (see the module doc)."""

    def __init__(self, url: str, *, timeout: str | None = None) -> None:
        self._url = url
        self._timeout = timeout
        self._thread_lock = threading.Lock()
        self._connection: psycopg2.extensions.connection | None = None

    def __enter__(self) -> StoreLock:
        self._thread_lock.acquire()
        try:
            if self._connection is None or self._connection.closed:
                self._connection = connect(self._url, "store-lock")
                if self._timeout:
                    with self._connection.cursor() as cursor:
                        cursor.execute(
                            "SELECT set_config('lock_timeout', %s, false)", (self._timeout,)
                        )
            with self._connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_lock(%s)", (_STORE_LOCK,))
        except BaseException:
            self._discard()
            self._thread_lock.release()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            assert self._connection is not None
            with self._connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", (_STORE_LOCK,))
        except psycopg2.Error:
            self._discard()  # a lost connection has released the lock with it
        finally:
            self._thread_lock.release()

    def _discard(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(psycopg2.Error):
                self._connection.close()
        self._connection = None

    def close(self) -> None:
        with self._thread_lock:
            self._discard()


class LockedScheduler(BackgroundScheduler):
    """APScheduler's background scheduler, processing due jobs under the store lock.

    The loop also survives a database that goes away: APScheduler 3 guards only its first
    query of a round, and a failure after it would end the loop thread for good; here it is
    logged and the round retried after ``jobstore_retry_interval``.
    """

    def __init__(self, store_lock: StoreLock, **options: Any) -> None:
        self._store_lock = store_lock
        super().__init__(**options)

    def _process_jobs(self) -> float | None:
        if self.state == STATE_STOPPED:
            # APScheduler 3's loop makes one more round after shutdown(): it would advance the
            # due jobs' next run times without running them (the executors are closed).
            return None
        try:
            with self._store_lock:
                return super()._process_jobs()
        except DATABASE_ERRORS as error:
            logger.warning(
                "scheduler: the job store is unavailable (%s); retrying in %.0f s",
                one_line(error),
                self.jobstore_retry_interval,
            )
        except Exception:  # the loop thread must outlive any one round
            logger.exception("scheduler: processing due jobs failed; retrying")
        return self.jobstore_retry_interval


class ControlScheduler(BaseScheduler):
    """A scheduler without a loop: it reads and changes the jobs in the store and never runs
    one (APScheduler's own schedulers would process due jobs, even when paused, at shutdown)."""

    def shutdown(self, wait: bool = True) -> None:
        super().shutdown(wait)

    def wakeup(self) -> None:
        """Nothing to wake: the running scheduler is woken through the control channel."""


@contextlib.contextmanager
def control_scheduler(config: Config) -> Iterator[BaseScheduler]:
    """The CLI's handle on the job store. Writes go under ``store_lock(config)``."""
    scheduler = ControlScheduler(
        jobstores={"default": job_store(config)}, timezone=ZoneInfo(config.schedule.timezone)
    )
    scheduler.start(paused=True)
    try:
        yield scheduler
    finally:
        scheduler.shutdown(wait=False)


def store_lock(config: Config) -> StoreLock:
    """The store lock for a CLI command: it waits at most _STORE_LOCK_TIMEOUT."""
    return StoreLock(dsn(config), timeout=_STORE_LOCK_TIMEOUT)


def notify(engine: Engine, payload: str) -> None:
    """Wake the running scheduler (if any): it re-reads the job store."""
    with engine.begin() as connection:
        connection.execute(sa.select(sa.func.pg_notify(CONTROL_CHANNEL, payload)))


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
    """The running scheduler's own connection: it holds the one-scheduler lock and LISTENs on
    the control channel. ``wait`` returns on a notification, a wake-up or the timeout, and
    probes the connection when nothing came (raising psycopg2.Error if it is gone)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._connection: psycopg2.extensions.connection | None = None

    def acquire(self) -> bool:
        """Take the lock (and start listening); False when another scheduler holds it."""
        self.close()
        connection = connect(self._url, "lock")
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", (_INSTANCE_LOCK,))
                if not cursor.fetchone()[0]:
                    connection.close()
                    return False
                cursor.execute(f"LISTEN {CONTROL_CHANNEL}")
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        return True

    def wait(self, timeout: float, wake: socket.socket) -> bool:
        """True when a notification came (the CLI changed the store)."""
        connection = self._connection
        assert connection is not None, "acquire() first"
        readable, _, _ = select.select([connection, wake], [], [], timeout)
        if wake in readable:
            with contextlib.suppress(BlockingIOError):
                wake.recv(64)
        if connection in readable:
            connection.poll()
            notified = bool(connection.notifies)
            connection.notifies.clear()  # a wake-up only: the job store is the truth
            return notified
        with connection.cursor() as cursor:  # liveness probe: the lock lives with it
            cursor.execute("SELECT 1")
        return False

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(psycopg2.Error):
                self._connection.close()  # releases the lock
        self._connection = None


def one_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__
