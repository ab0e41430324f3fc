"""The audit worker's LISTEN loop (modelled on procrastinate's worker).

A dedicated autocommit psycopg2 connection LISTENs on `product_changes`. A notification only
wakes the loop; the `product_changes` table is the truth. On every wake-up — a notification,
or the poll timeout (`auditor_poll_seconds`) as a safety net for lost ones — the loop works out
how far the history is final (`horizon`) and hands that to the subscriber threads, which read
and deliver from their own durable cursors. A lost connection is retried forever with
backoff; after reconnecting, everyone simply catches up from their cursor. `stop()` (SIGTERM)
ends the loop within a second and gives deliveries in flight a few seconds to finish.

One worker per database: the loop holds a PostgreSQL advisory lock, and a second worker
started by mistake waits as a standby instead of delivering everything twice.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
import time
from collections.abc import Sequence

import psycopg2
import psycopg2.extensions
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from tenacity import Retrying, retry_if_exception_type

from christmas_spiders.config import Config, ConfigError, Subscriber, resolve_subscribers
from christmas_spiders.errors import one_line
from christmas_spiders.retrying import Interrupted, after_failure, backoff, failure, interruptible
from christmas_spiders.storage import heartbeats, runs
from christmas_spiders.storage.database import check_schema, database_url, listen_connection
from christmas_spiders.storage.history import change_horizon
from webapi.auditor import state
from webapi.auditor.horizon import Horizon, HorizonTracker
from webapi.auditor.retry import TRANSIENT_DB_ERRORS
from webapi.auditor.sinks import build_sink
from webapi.auditor.subscribers import SubscriberThread

logger = logging.getLogger(__name__)

CHANNEL = "product_changes"
APPLICATION_NAME = "christmas-auditor"  # names the worker's connections in pg_stat_activity
# pg_advisory_lock key held by the running worker ("audt" in ASCII).
_WORKER_LOCK = 0x61756474
# While a high mark waits for open transactions, look again this often.
_SETTLING_POLL_SECONDS = 0.1
_STOP_GRACE_SECONDS = 4.0
_PRUNE_EVERY_SECONDS = 3600.0
_HELD_BACK_WARNING_SECONDS = 60.0


class Worker:
    def __init__(self, config: Config, subscribers: Sequence[Subscriber] | None = None) -> None:
        """Validate the subscribers and build their sinks; raises ConfigError naming the key.

        `subscribers` defaults to the configured ones with their secrets read from the
        environment (`config.resolve_subscribers`).
        """
        resolved = tuple(resolve_subscribers(config) if subscribers is None else subscribers)
        if not resolved:
            raise ConfigError(
                "subscribers is empty: the audit worker has no one to deliver to "
                '(see README "Audit worker").'
            )
        self.config = config
        self.subscribers = resolved
        self._sinks = [build_sink(index, s, config) for index, s in enumerate(resolved)]
        url = database_url(config)
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(False)
        self.engine = sa.create_engine(
            url,
            pool_pre_ping=True,
            pool_size=len(resolved) + 2,
            max_overflow=2,
            connect_args={"application_name": APPLICATION_NAME, "connect_timeout": 10},
        )
        self.horizon = Horizon()
        self.ready = threading.Event()  # set once listening with every subscriber registered
        self.standing_by = threading.Event()  # set once it found another worker running
        # The highest committed change id the loop has looked at, once the horizon moved for it.
        self.highest_seen = 0
        self._tracker = HorizonTracker()
        self._stopping = threading.Event()
        self._active = threading.Event()  # set while this worker holds the lock and listens
        self._threads: list[SubscriberThread] = []
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)
        self._next_prune = 0.0
        self._last_held_back_warning = 0.0
        self._heartbeat = heartbeats.Heartbeat(self.engine, "auditor", config.auditor_poll_seconds)

    # --- control ----------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the worker to stop (safe from a signal handler or another thread)."""
        self._stopping.set()
        self.horizon.close()
        # A full buffer means a wake-up is already pending; a closed one, that run() is over.
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"\0")

    def run(self) -> None:
        """Listen and deliver until `stop()`. Raises SchemaMismatch if the schema is behind."""
        routes = zip(self.subscribers, self._sinks, strict=True)
        logger.info(
            "audit worker starting with %d subscriber(s): %s",
            len(self.subscribers),
            ", ".join(f"{s.name} → {sink.describe()}" for s, sink in routes),
        )
        started = heartbeats.log_start(
            "audit worker",
            self.config,
            subscribers=",".join(s.name for s in self.subscribers),
            poll_seconds=self.config.auditor_poll_seconds,
        )
        self._heartbeat.start(**started, state="starting")
        runs.sweep(self.engine, self.config)  # crawl runs abandoned by processes that died
        lost: BaseException | None = None  # what ended the last connection
        try:
            with contextlib.suppress(Interrupted):  # stop() during a wait
                while not self._stopping.is_set():
                    # A fresh backoff for every connection: a loss waits 0.5 s before the first
                    # reconnection, doubling to 30 s while the database stays away.
                    connection = after_failure(lost, self._reconnecting(), self._open)
                    if connection is None:
                        return  # stopping
                    lost = self._serve(connection)
        finally:
            self._shutdown()

    # --- the loop ---------------------------------------------------------------------------

    def _reconnecting(self) -> Retrying:
        return Retrying(
            retry=retry_if_exception_type(TRANSIENT_DB_ERRORS),
            wait=backoff(0.5, 30.0, jitter=True),
            sleep=interruptible(self._stopping),
            before_sleep=lambda state: logger.warning(
                "audit worker: lost the database (%s); reconnecting in %.1f s",
                one_line(failure(state)),
                state.upcoming_sleep,
            ),
        )

    def _open(self) -> psycopg2.extensions.connection | None:
        """Connect, take the worker lock and LISTEN; None when stopping meanwhile."""
        connection = listen_connection(self._dsn, APPLICATION_NAME)
        try:
            if not self._take_lock(connection):
                connection.close()
                return None
            with connection.cursor() as cursor:
                cursor.execute(f"LISTEN {CHANNEL}")
            if not self._threads:
                self._start_subscribers()
            else:
                logger.info("audit worker: reconnected; catching up")
        except BaseException:
            connection.close()
            raise
        return connection

    def _serve(self, connection: psycopg2.extensions.connection) -> BaseException | None:
        """Deliver until stop() (None) or until the database is lost (the error)."""
        try:
            self._active.set()
            self._tick()
            self.ready.set()
            while not self._stopping.is_set():
                timeout = (
                    _SETTLING_POLL_SECONDS
                    if self._tracker.pending
                    else self.config.auditor_poll_seconds
                )
                readable, _, _ = select.select([connection, self._wake_reader], [], [], timeout)
                if self._wake_reader in readable:
                    with contextlib.suppress(BlockingIOError):
                        self._wake_reader.recv(64)
                if self._stopping.is_set():
                    break
                if connection in readable:
                    connection.poll()
                    connection.notifies.clear()  # a wake-up only: the table is the truth
                else:
                    with connection.cursor() as cursor:  # liveness probe on a quiet connection
                        cursor.execute("SELECT 1")
                self._tick()
                self._prune_now_and_then()
                self._heartbeat.beat(state="listening", horizon=self.horizon.value)
        except TRANSIENT_DB_ERRORS as error:
            return error
        finally:
            self._active.clear()
            connection.close()
        return None

    def _take_lock(self, connection: psycopg2.extensions.connection) -> bool:
        waiting = False
        while not self._stopping.is_set():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", (_WORKER_LOCK,))
                if cursor.fetchone()[0]:
                    if waiting:
                        logger.info("audit worker: the other worker is gone; taking over")
                    return True
            if not waiting:
                self.standing_by.set()
                logger.warning(
                    "audit worker: another audit worker is running on this database; "
                    "standing by until it stops"
                )
                waiting = True
            self._heartbeat.beat(state="standby")
            self._stopping.wait(self.config.auditor_poll_seconds)
        return False

    def _start_subscribers(self) -> None:
        check_schema(self.engine)  # SchemaMismatch: refuse to run on a schema we do not know
        with self.engine.begin() as connection:
            latest, _ = change_horizon(connection)
            created = state.register(connection, self.subscribers, latest)
        for name in created:
            logger.info("subscriber %s is new: it starts after change %d", name, latest)
        self._threads = [
            SubscriberThread(
                subscriber,
                sink,
                self.engine,
                self.horizon,
                self.config,
                self._stopping,
                self._active,
            )
            for subscriber, sink in zip(self.subscribers, self._sinks, strict=True)
        ]
        for thread in self._threads:
            thread.start()
        logger.info("audit worker listening on %r", CHANNEL)

    def _tick(self) -> None:
        with self.engine.connect() as connection:
            high, writers = change_horizon(connection)
        settled = self._tracker.observe(high, writers)
        if settled is not None:
            self.horizon.advance(settled)
        self.highest_seen = max(self.highest_seen, high)
        held_back = self._tracker.held_back_for()
        now = time.monotonic()
        if (
            held_back > _HELD_BACK_WARNING_SECONDS
            and now - self._last_held_back_warning > _HELD_BACK_WARNING_SECONDS
        ):
            self._last_held_back_warning = now
            logger.warning(
                "audit worker: deliveries past change %d wait for %d transaction(s) that have "
                "been writing history for %.0f s (see pg_stat_activity)",
                self.horizon.value,
                len(writers),
                held_back,
            )

    def _prune_now_and_then(self) -> None:
        now = time.monotonic()
        if now < self._next_prune:
            return
        self._next_prune = now + _PRUNE_EVERY_SECONDS
        with self.engine.begin() as connection:
            pruned = state.prune_log(connection, self.config.auditor_delivery_log_days)
        if pruned:
            logger.info("audit worker: pruned %d delivery log rows", pruned)

    def _shutdown(self) -> None:
        self._stopping.set()
        self._active.clear()
        self.horizon.close()
        deadline = time.monotonic() + _STOP_GRACE_SECONDS
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        busy = [thread.subscriber_name for thread in self._threads if thread.is_alive()]
        if busy:
            logger.warning(
                "audit worker: not waiting any longer for %s; a delivery in flight is sent "
                "again at the next start",
                ", ".join(busy),
            )
        for subscriber, sink in zip(self.subscribers, self._sinks, strict=True):
            if subscriber.name not in busy:
                sink.close()
        self._heartbeat.stop(state="stopped")
        self.engine.dispose()
        self._wake_reader.close()
        self._wake_writer.close()
        logger.info(
            "audit worker stopped (%d event(s) delivered)",
            sum(thread.delivered for thread in self._threads),
        )
