"""One thread per subscriber: read changes after its cursor, deliver them, move the cursor.

Subscribers never wait for each other: each has its own thread, database connection and cursor,
so a slow or failing receiver only delays itself. A delivery is retried with exponential
backoff (`auditor_delivery_attempts`, `auditor_retry_backoff_seconds`); when every attempt
failed, the subscriber is paused (`audit_subscribers.paused_at`) and reported in the log, and
is tried again after `auditor_pause_seconds` or at once with
`python -m webapi.auditor resume NAME`. Its cursor waits where it stopped, so nothing is lost.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy.engine import Connection, Engine
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
)

from christmas_spiders.config import Config, Subscriber
from christmas_spiders.errors import one_line
from christmas_spiders.retrying import Interrupted, backoff, failure, interruptible
from christmas_spiders.storage.history import Change, change_feed
from webapi.auditor import state, watch
from webapi.auditor.alerts import NO_CATALOG, Catalog, alerts_for
from webapi.auditor.events import Event
from webapi.auditor.horizon import Horizon
from webapi.auditor.retry import TRANSIENT_DB_ERRORS
from webapi.auditor.sinks import DeliveryFailed, Sink

logger = logging.getLogger(__name__)

T = TypeVar("T")
_MAX_RETRY_DELAY = 300.0


class SubscriberThread(threading.Thread):
    def __init__(
        self,
        subscriber: Subscriber,
        sink: Sink,
        engine: Engine,
        horizon: Horizon,
        config: Config,
        stopping: threading.Event,
        active: threading.Event,
    ) -> None:
        super().__init__(name=f"auditor-{subscriber.name}", daemon=True)
        self.subscriber = subscriber
        self.subscriber_name = subscriber.name
        self.sink = sink
        self.cursor = 0
        self.delivered = 0  # events delivered by this thread (for the stop summary)
        self._engine = engine
        self._horizon = horizon
        self._config = config
        self._stopping = stopping
        self._active = active
        self._paused_at: datetime | None = None
        self._batch_size = subscriber.batch_size or config.auditor_batch_size
        self._sleep = interruptible(stopping)  # raises Interrupted once the worker stops
        # A bug must not end this subscriber's deliveries for good (nor anyone else's).
        self._starting_over = Retrying(
            retry=retry_if_exception(
                lambda error: isinstance(error, Exception) and not isinstance(error, Interrupted)
            ),
            wait=backoff(1.0, 60.0, jitter=True),
            sleep=self._sleep,
            before_sleep=lambda state: logger.error(
                "subscriber %s: unexpected error; starting over in %.0f s",
                self.subscriber_name,
                state.upcoming_sleep,
                exc_info=failure(state),
            ),
        )
        # The database (_db): retried forever while it is unreachable, until the worker stops.
        self._transacting = Retrying(
            retry=retry_if_exception_type(TRANSIENT_DB_ERRORS),
            wait=backoff(0.2, 30.0, jitter=True),
            sleep=self._sleep,
            before_sleep=lambda state: logger.warning(
                "subscriber %s: database unavailable (%s); retrying in %.1f s",
                self.subscriber_name,
                one_line(failure(state)),
                state.upcoming_sleep,
            ),
        )

    def run(self) -> None:
        with contextlib.suppress(Interrupted):  # the worker is stopping
            self._starting_over(self._serve)

    # --- the loop ---------------------------------------------------------------------------

    def _serve(self) -> None:
        current = self._db(lambda connection: state.load(connection, self.subscriber_name))
        self.cursor = current.last_change_id
        self._paused_at = current.paused_at
        if self._paused_at is not None:
            logger.warning(
                "subscriber %s is paused since %s (last error: %s)",
                self.subscriber_name,
                self._paused_at.isoformat(timespec="seconds"),
                current.last_error,
            )
        while not self._stopping.is_set():
            if self._paused_at is not None:
                self._wait_while_paused()
                continue
            if not self._active.wait(1.0):
                continue
            horizon = self._horizon.wait_beyond(self.cursor, timeout=1.0)
            if horizon > self.cursor and not self._stopping.is_set():
                self._step(horizon)
        raise Interrupted

    def _step(self, horizon: int) -> None:
        """Deliver the changes after the cursor, up to `horizon`, at most one batch."""
        subscriber = self.subscriber
        page = self._db(
            lambda connection: change_feed(
                connection,
                self.cursor,
                up_to=horizon,
                limit=self._batch_size,
                vendors=subscriber.vendors,
                kinds=subscriber.kinds,
                fields=subscriber.fields,
            )
        )
        catalog = NO_CATALOG
        if watch.needed(subscriber.alerts):  # a rule watches an ornament or a SKU
            catalog = self._db(
                lambda connection: watch.read_catalog(connection, subscriber.alerts, page.changes)
            )
        events = self._events(page.changes, catalog)
        for start in range(0, len(events), self.sink.max_events):
            if not self._deliver(events[start : start + self.sink.max_events]):
                return  # paused
        if page.next_after_id > self.cursor:
            self._db(
                lambda connection: state.advance(
                    connection, self.subscriber_name, page.next_after_id
                )
            )
            self.cursor = page.next_after_id

    def _events(self, changes: Sequence[Change], catalog: Catalog) -> list[Event]:
        rules = self.subscriber.alerts
        if not rules:
            return [Event(change) for change in changes]
        events = []
        for change in changes:
            alerts = alerts_for(change, rules, catalog)
            if alerts:
                events.append(Event(change, alerts))
            elif change.suspicious:
                logger.info(
                    "subscriber %s: change %d (%s %s → %s) is flagged suspicious: no alert",
                    self.subscriber_name,
                    change.id,
                    change.field,
                    change.old_value,
                    change.new_value,
                )
        return events

    def _deliver(self, events: Sequence[Event]) -> bool:
        """Deliver with retries; True once delivered and recorded, False if now paused."""
        first, last = events[0].change.id, events[-1].change.id
        delivering = Retrying(
            retry=retry_if_exception_type(DeliveryFailed),
            stop=stop_after_attempt(self._config.auditor_delivery_attempts),
            wait=backoff(self._config.auditor_retry_backoff_seconds, _MAX_RETRY_DELAY),
            sleep=self._sleep,
            before_sleep=lambda retry: self._log_failed_delivery(first, last, retry),
            reraise=True,  # the last DeliveryFailed: the subscriber is paused
        )
        try:
            for attempt in delivering:
                with attempt:
                    done = self._attempt(events, attempt.retry_state.attempt_number)
        except DeliveryFailed as failed:
            self._pause(first, last, failed)
            return False
        self._db(lambda connection: state.delivered(connection, self.subscriber_name, done))
        self.cursor = max(self.cursor, last)
        self.delivered += len(events)
        return True

    def _attempt(self, events: Sequence[Event], number: int) -> state.Attempt:
        """One delivery; a failed one is recorded, then raised."""
        first, last = events[0].change.id, events[-1].change.id
        began = time.monotonic()
        try:
            http_status = self.sink.deliver(events)
        except DeliveryFailed as failed:
            elapsed = int((time.monotonic() - began) * 1000)
            tried = state.Attempt(first, last, len(events), number, failed.http_status, elapsed)
            self._record_failure(tried, failed)
            raise
        elapsed = int((time.monotonic() - began) * 1000)
        return state.Attempt(first, last, len(events), number, http_status, elapsed)

    def _log_failed_delivery(self, first: int, last: int, retry: RetryCallState) -> None:
        failed = failure(retry)
        assert isinstance(failed, DeliveryFailed)
        logger.warning(
            "subscriber %s: delivery of changes %d–%d to %s failed (attempt %d of %d): "
            "%s; retrying in %.1f s",
            self.subscriber_name,
            first,
            last,
            self.sink.describe(),
            retry.attempt_number,
            self._config.auditor_delivery_attempts,
            failed.reason,
            retry.upcoming_sleep,
        )

    # --- failures and pauses ----------------------------------------------------------------

    def _record_failure(self, attempt: state.Attempt, failure: DeliveryFailed) -> None:
        try:
            with self._engine.begin() as connection:
                state.failed(connection, self.subscriber_name, attempt, failure.reason)
        except TRANSIENT_DB_ERRORS as error:
            # The delivery log is best effort for failures; the cursor is what must hold.
            logger.warning(
                "subscriber %s: could not log the failed delivery (%s)",
                self.subscriber_name,
                one_line(error),
            )

    def _pause(self, first: int, last: int, failure: DeliveryFailed) -> None:
        self._paused_at = self._db(lambda connection: state.pause(connection, self.subscriber_name))
        logger.error(
            "subscriber %s PAUSED: %d attempts to deliver changes %d–%d to %s failed "
            "(last: %s). The other subscribers go on. It is tried again in %.0f s, or now "
            "with `python -m webapi.auditor resume %s`.",
            self.subscriber_name,
            self._config.auditor_delivery_attempts,
            first,
            last,
            self.sink.describe(),
            failure.reason,
            self._config.auditor_pause_seconds,
            self.subscriber_name,
        )

    def _wait_while_paused(self) -> None:
        assert self._paused_at is not None
        retry_at = self._paused_at + timedelta(seconds=self._config.auditor_pause_seconds)
        while True:
            remaining = (retry_at - datetime.now(UTC)).total_seconds()
            if remaining <= 0:
                logger.info("subscriber %s: pause over, trying again", self.subscriber_name)
                break
            if self._stopping.wait(min(2.0, remaining)):
                raise Interrupted
            current = self._db(lambda connection: state.load(connection, self.subscriber_name))
            if current.paused_at is None:
                logger.info("subscriber %s resumed", self.subscriber_name)
                break
        self._paused_at = None

    # --- the database -----------------------------------------------------------------------

    def _db(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in a transaction, retrying while the database is unreachable (forever,
        unless the worker is stopping: a first attempt is made even then, so that a delivery
        that just succeeded is still recorded)."""
        return self._transacting(self._in_transaction, work)

    def _in_transaction(self, work: Callable[[Connection], T]) -> T:
        with self._engine.begin() as connection:
            return work(connection)
