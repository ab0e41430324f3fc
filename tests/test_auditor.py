"""The audit worker on a real PostgreSQL with real local HTTP receivers: delivery, order,
catch-up after downtime, lost connections, crashes, filters, retries and pauses, SIGTERM."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from christmas_spiders.config import Config, resolve_subscribers
from christmas_spiders.storage import database
from christmas_spiders.storage.products import upsert_products
from christmas_spiders.storage.schema import audit_deliveries, audit_subscribers, product_changes
from webapi.auditor import state
from webapi.auditor.horizon import HorizonTracker
from webapi.auditor.receiver import Received, WebhookReceiver
from webapi.auditor.worker import APPLICATION_NAME, Worker

from .conftest import PROJECT_ROOT, PrivatePostgres, _load_config
from .test_storage import item

SECRET = "correct horse battery staple"
WAIT = 60.0  # generous: the figures are in bench/auditor_latency.py, not here


# --- helpers ------------------------------------------------------------------------------------


def subscribers(*entries: dict[str, Any]) -> str:
    return json.dumps(list(entries))


def webhook(receiver: WebhookReceiver, path: str = "/hook") -> dict[str, str]:
    return {"url": receiver.url(path), "secret": SECRET}


def auditor_config(make_config: Callable[..., Config], *entries: dict[str, Any], **env: str):
    defaults = {
        "CHRISTMAS_AUDITOR_POLL_SECONDS": "1",
        "CHRISTMAS_AUDITOR_RETRY_BACKOFF_SECONDS": "0.05",
    }
    return make_config(CHRISTMAS_SUBSCRIBERS=subscribers(*entries), **{**defaults, **env})


def catalog(engine: Engine, count: int, vendor: str = "hookedonhallmark_com") -> list[int]:
    """`count` new products of one vendor at $20.00; their ids."""
    items = [
        item(
            vendor=vendor,
            vendor_product_id=f"{vendor}-{number}",
            sku=f"QX{number:05d}",
            name=f"2019 Test Ornament {number}",
            link=f"http://127.0.0.1:9/{vendor}/{number}",
            price=Decimal("20.00"),
        )
        for number in range(count)
    ]
    with engine.begin() as connection:
        upsert_products(connection, items)
        return list(
            connection.execute(
                sa.text("SELECT id FROM products WHERE vendor = :vendor ORDER BY id"),
                {"vendor": vendor},
            ).scalars()
        )


def raise_prices(engine: Engine, product_ids: list[int], rounds: int = 1, pause: float = 0) -> None:
    """One price change per product per round, one UPDATE statement per round."""
    for _ in range(rounds):
        with engine.begin() as connection:
            connection.execute(
                sa.text("UPDATE products SET price = price + 1 WHERE id = ANY(:ids)"),
                {"ids": product_ids},
            )
        time.sleep(pause)


def change_ids(engine: Engine, after: int = 0) -> list[int]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                sa.select(product_changes.c.id)
                .where(product_changes.c.id > after)
                .order_by(product_changes.c.id)
            ).scalars()
        )


def subscriber_row(engine: Engine, name: str) -> dict[str, Any]:
    with engine.connect() as connection:
        return dict(
            connection.execute(sa.select(audit_subscribers).where(audit_subscribers.c.name == name))
            .one()
            ._mapping
        )


def wait_until(condition: Callable[[], bool], timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@contextmanager
def running(worker: Worker) -> Iterator[Worker]:
    thread = threading.Thread(target=worker.run, name="test-auditor")
    thread.start()
    try:
        assert worker.ready.wait(WAIT), "the worker did not start listening"
        yield worker
    finally:
        worker.stop()
        thread.join(WAIT)
        assert not thread.is_alive(), "the worker did not stop"


def assert_in_order_with_repeats_only_of_a_batch_in_flight(
    requests: list[Received], expected: list[int]
) -> int:
    """Every expected id arrives, in order; a repeat only re-sends the batch that was in flight
    (it starts where the previous request started). Returns how many requests repeated."""
    seen: list[int] = []
    repeats = 0
    previous: Received | None = None
    for request in requests:
        ids = request.change_ids
        if seen and ids[0] <= seen[-1]:
            repeats += 1
            assert previous is not None and ids[0] == previous.change_ids[0], (
                f"request {ids[0]}–{ids[-1]} repeats more than the batch in flight"
            )
            ids = [change_id for change_id in ids if change_id > seen[-1]]
        seen += ids
        previous = request
    assert seen == expected
    return repeats


# --- delivery -----------------------------------------------------------------------------------


def test_a_high_mark_settles_once_the_transactions_writing_then_have_ended() -> None:
    tracker = HorizonTracker()
    assert tracker.observe(10, frozenset()) == 10  # nobody writing: all of it is final
    assert tracker.observe(15, frozenset({"3/7"})) is None  # 3/7 may hold ids below 15
    assert tracker.observe(18, frozenset({"3/7", "4/2"})) is None
    assert tracker.observe(20, frozenset({"4/2", "5/1"})) == 15  # 3/7 ended: 15 is final
    assert tracker.pending
    assert tracker.observe(21, frozenset()) == 21
    assert not tracker.pending


def test_price_update_reaches_a_webhook_signed(
    engine: Engine, make_config: Callable[..., Config]
) -> None:
    [product_id] = catalog(engine, 1)
    with WebhookReceiver(SECRET) as receiver:
        settings = auditor_config(
            make_config,
            {"name": "feed", "webhook": {"url": receiver.url(), "secret_env": "FEED_SECRET"}},
        )
        worker = Worker(settings, resolve_subscribers(settings, {"FEED_SECRET": SECRET}))
        with running(worker):
            raise_prices(engine, [product_id])
            assert receiver.wait_for(lambda r: r.requests, WAIT)
    [change_id] = change_ids(engine, after=1)
    [request] = receiver.requests
    expected = "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Christmas-Signature-256"] == expected
    assert request.headers["X-Christmas-Delivery"] == f"feed:{change_id}-{change_id}"
    [event] = request.payload["events"]
    assert request.payload["subscriber"] == "feed"
    assert (event["change_id"], event["kind"], event["field"]) == (change_id, "changed", "price")
    assert (event["old_value"], event["new_value"]) == ("20.00", "21.00")
    assert event["product"]["name"] == "2019 Test Ornament 0"
    assert event["product"]["link"] == "http://127.0.0.1:9/hookedonhallmark_com/0"
    row = subscriber_row(engine, "feed")
    assert (row["last_change_id"], row["failures"], row["paused_at"]) == (change_id, 0, None)
    with engine.connect() as connection:
        [logged] = connection.execute(sa.select(audit_deliveries)).all()
    assert (logged.status, logged.http_status, logged.first_change_id) == (
        "delivered",
        200,
        change_id,
    )


def test_ten_thousand_changes_made_while_stopped_are_all_delivered_in_order_once(
    engine: Engine, make_config: Callable[..., Config]
) -> None:
    products = catalog(engine, 1000)
    with WebhookReceiver(SECRET) as receiver:
        settings = auditor_config(make_config, {"name": "feed", "webhook": webhook(receiver)})
        with running(Worker(settings)):
            pass  # registers the subscriber: its cursor starts at the latest change
        first_new = max(change_ids(engine)) + 1
        raise_prices(engine, products, rounds=10)  # 10,000 changes while the worker is down
        expected = change_ids(engine, after=first_new - 1)
        assert len(expected) == 10_000
        with running(Worker(settings)):
            assert receiver.wait_for(lambda r: r.events_delivered >= 10_000, WAIT)
            assert wait_until(
                lambda: subscriber_row(engine, "feed")["last_change_id"] >= expected[-1]
            )
    assert receiver.change_ids() == expected  # in order, none twice, none skipped
    assert all(request.signature_valid for request in receiver.requests)


def test_a_change_committed_late_with_a_lower_id_is_not_skipped(
    engine: Engine, make_config: Callable[..., Config]
) -> None:
    first, second = catalog(engine, 2)
    with WebhookReceiver(SECRET) as receiver:
        settings = auditor_config(make_config, {"name": "feed", "webhook": webhook(receiver)})
        with running(Worker(settings)) as worker:
            slow = engine.connect()
            try:
                with slow.begin():
                    # The slow transaction takes the lower change id and commits last.
                    slow.execute(
                        sa.text("UPDATE products SET price = 25 WHERE id = :id"), {"id": first}
                    )
                    raise_prices(engine, [second])
                    [higher] = change_ids(engine, after=2)  # the only one visible yet
                    assert wait_until(lambda: worker.highest_seen >= higher)
                    # Seen, and held back: delivering it alone would skip the lower id.
                    assert worker.horizon.value < higher
                    assert receiver.requests == []
            finally:
                slow.close()
            assert receiver.wait_for(lambda r: len(r.change_ids()) >= 2, WAIT)
    lower, higher = change_ids(engine, after=2)
    assert receiver.change_ids() == [lower, higher]


def test_filters_send_one_vendor_availability_changes_only_to_its_subscriber(
    engine: Engine, make_config: Callable[..., Config]
) -> None:
    [hooked] = catalog(engine, 1)
    [shop] = catalog(engine, 1, vendor="ornament_shop_com")
    with WebhookReceiver(SECRET) as receiver:
        settings = auditor_config(
            make_config,
            {
                "name": "hooked-stock",
                "webhook": webhook(receiver, "/stock"),
                "kinds": ["changed"],
                "fields": ["availability"],
                "vendors": ["hookedonhallmark_com"],
            },
            {"name": "everything", "webhook": webhook(receiver, "/all")},
        )
        with running(Worker(settings)):
            with engine.begin() as connection:
                for product_id in (hooked, shop):
                    connection.execute(
                        sa.text("UPDATE products SET availability = 'unavailable' WHERE id = :id"),
                        {"id": product_id},
                    )
            raise_prices(engine, [hooked, shop])
            catalog(engine, 1, vendor="hallmark_ornaments_com")  # a listing
            expected = change_ids(engine, after=2)
            assert receiver.wait_for(lambda r: len(r.change_ids("/all")) >= 5, WAIT)
            assert wait_until(
                lambda: subscriber_row(engine, "hooked-stock")["last_change_id"] == expected[-1]
            )
    assert receiver.change_ids("/all") == expected
    [only] = [event for r in receiver.delivered("/stock") for event in r.payload["events"]]
    assert (only["field"], only["product"]["vendor"]) == ("availability", "hookedonhallmark_com")
    assert (only["old_value"], only["new_value"]) == ("available", "unavailable")


def test_failing_receiver_is_retried_then_paused_and_others_are_unaffected(
    engine: Engine, make_config: Callable[..., Config], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    [product_id] = catalog(engine, 1)
    broken = {"/broken": 500}
    answered_after_healthy: list[bool] = []

    def answer(path: str) -> int:
        if path in broken:
            # Each failure is answered only once the healthy subscriber has its delivery: had
            # it to wait for the broken one's retries, this would wait in vain (and say so).
            answered_after_healthy.append(
                receiver.wait_for(lambda r: r.delivered("/healthy"), WAIT)
            )
        return broken.get(path, 200)

    with WebhookReceiver(SECRET, answer) as receiver:
        settings = auditor_config(
            make_config,
            {"name": "broken", "webhook": webhook(receiver, "/broken")},
            {"name": "healthy", "webhook": webhook(receiver, "/healthy")},
            CHRISTMAS_AUDITOR_DELIVERY_ATTEMPTS="3",
            CHRISTMAS_AUDITOR_RETRY_BACKOFF_SECONDS="0.3",
        )
        with running(Worker(settings)):
            raise_prices(engine, [product_id])
            assert wait_until(lambda: subscriber_row(engine, "broken")["paused_at"] is not None)
            raise_prices(engine, [product_id])  # while paused: only the healthy one gets it
            assert receiver.wait_for(lambda r: len(r.change_ids("/healthy")) == 2, WAIT)
            attempts = [r for r in receiver.requests if r.path == "/broken"]
            # Retried with backoff (0.3 s, then 0.6 s), then paused: no fourth attempt.
            assert [r.status for r in attempts] == [500, 500, 500]
            assert len({tuple(r.change_ids) for r in attempts}) == 1
            failed = "to webhook http://127.0.0.1:{} failed (attempt {} of 3): HTTP 500 "
            for attempt, delay in ((1, "0.3"), (2, "0.6")):
                assert (
                    failed.format(receiver.port, attempt)
                    + (f"Internal Server Error; retrying in {delay} s")
                    in caplog.text
                )
            assert "(attempt 3 of 3)" not in caplog.text  # the last one pauses instead
            assert answered_after_healthy == [True, True, True]
            row = subscriber_row(engine, "broken")
            assert (row["failures"], row["last_error"]) == (3, "HTTP 500 Internal Server Error")
            assert "subscriber broken PAUSED" in caplog.text
            # Fixed and resumed: the paused subscriber catches up from where it stopped.
            broken.clear()
            with engine.begin() as connection:
                assert state.resume(connection, "broken")
            assert receiver.wait_for(lambda r: len(r.change_ids("/broken")) == 2, WAIT)
    assert (
        receiver.change_ids("/broken")
        == receiver.change_ids("/healthy")
        == change_ids(engine, after=1)
    )
    with engine.connect() as connection:
        log = connection.execute(
            sa.select(audit_deliveries.c.status, audit_deliveries.c.http_status)
            .where(audit_deliveries.c.subscriber == "broken")
            .order_by(audit_deliveries.c.id)
        ).all()
    assert log == [("failed", 500)] * 3 + [("delivered", 200)]


# --- connections, crashes, restarts -------------------------------------------------------------


def _terminate_worker_connections(engine: Engine) -> int:
    with engine.connect() as connection:
        return len(
            connection.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = :name AND datname = current_database()"
                ),
                {"name": APPLICATION_NAME},
            ).all()
        )


def test_killed_database_connections_lose_nothing(
    engine: Engine, make_config: Callable[..., Config], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    products = catalog(engine, 500)
    with WebhookReceiver(SECRET) as receiver:
        settings = auditor_config(
            make_config,
            {"name": "feed", "webhook": webhook(receiver), "batch_size": 50},
        )
        with running(Worker(settings)):
            start = max(change_ids(engine))
            for _ in range(5):
                raise_prices(engine, products)  # 500 changes, ten batches to deliver
                # Then every connection of the worker's is killed, as soon as it has one
                # (it may still be reconnecting after the previous round's).
                assert wait_until(lambda: _terminate_worker_connections(engine) > 0)
            expected = change_ids(engine, after=start)
            assert receiver.wait_for(lambda r: expected[-1] in r.change_ids(), WAIT)
    assert "reconnected; catching up" in caplog.text
    assert_in_order_with_repeats_only_of_a_batch_in_flight(receiver.delivered(), expected)


def test_database_restart_is_ridden_out(
    private_postgres: PrivatePostgres, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with WebhookReceiver(SECRET) as receiver:
        settings = _load_config(
            DATABASE_URL=private_postgres.url,
            CHRISTMAS_DATA_DIR=str(tmp_path / "data"),
            CHRISTMAS_SUBSCRIBERS=subscribers({"name": "feed", "webhook": webhook(receiver)}),
            CHRISTMAS_AUDITOR_POLL_SECONDS="1",
        )
        engine = sa.create_engine(database.database_url(settings), pool_pre_ping=True)
        try:
            database.upgrade(engine, settings)
            [product_id] = catalog(engine, 1)
            with running(Worker(settings)):
                raise_prices(engine, [product_id])
                assert receiver.wait_for(lambda r: len(r.change_ids()) == 1, WAIT)
                engine.dispose()
                private_postgres.stop()
                # The worker notices, and retries against a server that is down.
                assert wait_until(lambda: "lost the database" in caplog.text)
                private_postgres.start()
                raise_prices(engine, [product_id])
                assert receiver.wait_for(lambda r: len(r.change_ids()) == 2, WAIT)
            assert receiver.change_ids() == change_ids(engine, after=1)
        finally:
            engine.dispose()


def worker_process(
    database_url: str, tmp_path: Path, entries: str, **settings: str
) -> subprocess.Popen:
    """`python -m webapi.auditor` on this database; `settings` are extra environment values."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": database_url,
        "CHRISTMAS_DATA_DIR": str(tmp_path / "data"),
        "CONFIG_PATH": str(PROJECT_ROOT / "config" / "default.json"),
        "CHRISTMAS_SUBSCRIBERS": entries,
        "CHRISTMAS_AUDITOR_POLL_SECONDS": "1",
        "FEED_SECRET": SECRET,
        **settings,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "webapi.auditor"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_sigterm_stops_the_worker_cleanly(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    [product_id] = catalog(engine, 1)
    with WebhookReceiver(SECRET) as receiver:
        entries = subscribers(
            {"name": "feed", "webhook": {"url": receiver.url(), "secret_env": "FEED_SECRET"}},
            {"name": "journal", "log": True},
        )
        process = worker_process(database_url, tmp_path, entries)
        try:
            assert wait_until(lambda: len(registered(engine)) == 2, WAIT)
            raise_prices(engine, [product_id])
            [change_id] = change_ids(engine, after=1)
            for name in ("feed", "journal"):  # both delivered and recorded: nothing in flight
                assert wait_until(lambda n=name: cursor(engine, n) == change_id)
            process.send_signal(signal.SIGTERM)
            # Stopping is bounded by construction (the worker gives deliveries in flight 4 s,
            # see test_auditor_hung_receiver); here it only has to happen.
            output, _ = process.communicate(timeout=WAIT)
        finally:
            process.kill()
    assert process.returncode == 0, output
    assert f"journal: change {change_id}: 2019 Test Ornament 0: price $20.00 → $21.00" in output
    assert "SIGTERM received, stopping" in output
    assert "not waiting any longer" not in output
    assert "audit worker stopped (2 event(s) delivered)" in output


def test_the_worker_and_its_commands_load_no_flask() -> None:
    """The audit worker lives under webapi but is a process of its own: no web framework."""
    modules = ("webapi.auditor.__main__", "webapi.auditor.worker", "webapi.auditor.receiver")
    web = "sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'werkzeug'))"
    check = f"import sys, {', '.join(modules)}; print({web})"
    found = subprocess.run(
        [sys.executable, "-c", check], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    assert found.stdout.strip() == "[]", found.stdout


def cursor(engine: Engine, name: str) -> int:
    return subscriber_row(engine, name)["last_change_id"]


def registered(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.execute(sa.select(audit_subscribers.c.name)).scalars())


def test_crash_mid_stream_repeats_only_the_batch_in_flight(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    products = catalog(engine, 500)
    with WebhookReceiver(SECRET) as receiver:
        entries = subscribers(
            {
                "name": "feed",
                "webhook": {"url": receiver.url(), "secret_env": "FEED_SECRET"},
                "batch_size": 100,
            }
        )
        start = max(change_ids(engine))
        process = worker_process(database_url, tmp_path, entries)
        try:
            assert wait_until(lambda: registered(engine) == ["feed"], WAIT)
            writer = threading.Thread(target=raise_prices, args=(engine, products, 6, 0.2))
            writer.start()
            assert receiver.wait_for(lambda r: len(r.change_ids()) >= 700, WAIT)
            process.kill()  # SIGKILL: no chance to record anything
            process.communicate(timeout=WAIT)
            before_crash = len(receiver.delivered())
            writer.join()
            process = worker_process(database_url, tmp_path, entries)
            expected = change_ids(engine, after=start)
            assert receiver.wait_for(lambda r: expected[-1] in r.change_ids(), WAIT)
        finally:
            process.kill()
            process.communicate(timeout=WAIT)
    requests = receiver.delivered()
    repeats = assert_in_order_with_repeats_only_of_a_batch_in_flight(requests, expected)
    assert repeats <= 1
    if repeats:  # the one repeat is the first request after the restart
        assert requests[before_crash].change_ids[0] == requests[before_crash - 1].change_ids[0]


def test_a_second_worker_stands_by_until_the_first_stops(
    engine: Engine, make_config: Callable[..., Config]
) -> None:
    [product_id] = catalog(engine, 1)
    with WebhookReceiver(SECRET) as receiver:
        settings = auditor_config(make_config, {"name": "feed", "webhook": webhook(receiver)})
        first, second = Worker(settings), Worker(settings)
        standby = threading.Thread(target=second.run)
        with running(first):
            standby.start()
            assert second.standing_by.wait(WAIT)  # it found the first one's lock
            assert not second.ready.is_set()
        try:
            assert second.ready.wait(WAIT)  # took over
            raise_prices(engine, [product_id])
            assert receiver.wait_for(lambda r: r.change_ids(), WAIT)
        finally:
            second.stop()
            standby.join(WAIT)
    assert receiver.change_ids() == change_ids(engine, after=1)
