"""A webhook receiver that hangs: the other subscribers get their changes all the same, a
request past `auditor_webhook_timeout_seconds` is a failed attempt, and SIGTERM stops the
worker without waiting for the hung request (which is sent again at the next start)."""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Callable
from http.client import HTTPMessage
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from christmas_spiders.config import Config
from christmas_spiders.storage.schema import audit_deliveries
from webapi.auditor.receiver import PostServer, WebhookReceiver
from webapi.auditor.worker import Worker

from .test_auditor import (
    SECRET,
    WAIT,
    auditor_config,
    catalog,
    change_ids,
    cursor,
    raise_prices,
    registered,
    running,
    subscriber_row,
    subscribers,
    wait_until,
    webhook,
    worker_process,
)


class HangingReceiver(PostServer):
    """Reads each POST and answers nothing until `release()` (then 200, to whoever still
    listens)."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived: list[tuple[int, ...]] = []  # change ids of each request, in order
        self.answered = 0
        self._released = threading.Event()
        self._lock = threading.Condition()

    def received(self, path: str, headers: HTTPMessage, body: bytes) -> int:
        events = json.loads(body)["events"]
        with self._lock:
            self.arrived.append(tuple(event["change_id"] for event in events))
            self._lock.notify_all()
        self._released.wait()
        with self._lock:
            self.answered += 1
        return 200

    def url(self, path: str = "/hung") -> str:
        return super().url(path)

    def release(self) -> None:
        self._released.set()

    def wait_for(self, condition: Callable[[HangingReceiver], bool]) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: condition(self), WAIT)

    def __exit__(self, *exc_info: object) -> None:
        self.release()
        super().__exit__(*exc_info)


def test_a_request_past_the_timeout_fails_and_is_retried_while_others_are_served(
    engine: Engine, make_config: Callable[..., Config], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    [product_id] = catalog(engine, 1)
    with HangingReceiver() as hung, WebhookReceiver(SECRET) as receiver:
        settings = auditor_config(
            make_config,
            {"name": "hung", "webhook": {"url": hung.url(), "secret": SECRET}},
            {"name": "feed", "webhook": webhook(receiver)},
            CHRISTMAS_AUDITOR_WEBHOOK_TIMEOUT_SECONDS="0.2",
            CHRISTMAS_AUDITOR_DELIVERY_ATTEMPTS="2",
        )
        with running(Worker(settings)):
            raise_prices(engine, [product_id])
            assert wait_until(lambda: subscriber_row(engine, "hung")["paused_at"] is not None)
            raise_prices(engine, [product_id])  # hung is paused: feed goes on alone
            assert receiver.wait_for(lambda r: len(r.change_ids()) == 2, WAIT)
    first, second = change_ids(engine, after=1)
    assert receiver.change_ids() == [first, second]
    assert hung.arrived == [(first,), (first,)]  # two attempts, neither answered in time
    row = subscriber_row(engine, "hung")
    assert (row["last_change_id"], row["failures"]) == (1, 2)
    # requests' message, without the receiver's path (a URL may carry a token)
    assert row["last_error"].startswith("ReadTimeout: HTTPConnectionPool(host='127.0.0.1'")
    assert "read timeout=0.2" in row["last_error"] and "/hung" not in row["last_error"]
    with engine.connect() as connection:
        log = connection.execute(
            sa.select(audit_deliveries.c.status, audit_deliveries.c.http_status)
            .where(audit_deliveries.c.subscriber == "hung")
            .order_by(audit_deliveries.c.id)
        ).all()
    assert log == [("failed", None), ("failed", None)]
    assert "subscriber hung PAUSED" in caplog.text


def test_sigterm_does_not_wait_for_a_hung_request_and_it_is_sent_again_at_the_next_start(
    engine: Engine, make_config: Callable[..., Config], database_url: str, tmp_path: Path
) -> None:
    [product_id] = catalog(engine, 1)
    with HangingReceiver() as hung, WebhookReceiver(SECRET) as receiver:
        hung_entry = {"name": "hung", "webhook": {"url": hung.url(), "secret": SECRET}}
        entries = [hung_entry, {"name": "feed", "webhook": webhook(receiver)}]
        entries.append({"name": "journal", "log": True})
        # The longest timeout there is: the hung request is in flight until the worker exits.
        process = worker_process(
            database_url,
            tmp_path,
            subscribers(*entries),
            CHRISTMAS_AUDITOR_WEBHOOK_TIMEOUT_SECONDS="300",
        )
        try:
            assert wait_until(lambda: len(registered(engine)) == 3, WAIT)
            for round_number in (1, 2):
                raise_prices(engine, [product_id])
                expected = change_ids(engine, after=1)
                assert receiver.wait_for(lambda r, e=expected: r.change_ids() == e, WAIT)
                assert wait_until(lambda e=expected: cursor(engine, "journal") == e[-1])
                assert hung.arrived == [(expected[0],)] and hung.answered == 0, round_number
            process.send_signal(signal.SIGTERM)
            output, _ = process.communicate(timeout=WAIT)  # far less than the 300 s timeout
        finally:
            process.kill()
        assert process.returncode == 0, output
        # The worker exited with the hung request still unanswered, and said so.
        assert hung.arrived == [(expected[0],)] and hung.answered == 0
        assert (
            "not waiting any longer for hung; a delivery in flight is sent again at the next "
            "start" in output
        )
        assert "audit worker stopped (4 event(s) delivered)" in output
        row = subscriber_row(engine, "hung")
        assert (row["last_change_id"], row["failures"], row["paused_at"]) == (1, 0, None)

        # The receiver is fixed: the next start sends what was in flight, then the rest.
        hung.release()
        settings = auditor_config(make_config, hung_entry)
        with running(Worker(settings)):
            assert wait_until(lambda: cursor(engine, "hung") == expected[-1])
    assert hung.arrived[1:] == [tuple(expected)]
