"""Crawl health (docs/health.md): a shop whose theme broke is caught in the run it happens, and
that run harms nothing; genuine changes are stored as usual.

Real crawls (`scrapy crawl` child processes) of ornament-shop.com's 2018 and 2019 on the replica,
whose broken-theme switch hides prices, availability text or names, or cuts listings to their
first page. Each test starts from a clone of one healthy crawl (made once for the module), and
the real audit worker delivers crawl_health events to a webhook receiver.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from christmas_spiders.config import Config, resolve_subscribers
from christmas_spiders.storage import database
from christmas_spiders.storage.schema import crawl_runs, product_changes, products
from webapi.auditor.receiver import WebhookReceiver
from webapi.auditor.worker import Worker

from .conftest import _url_for
from .replica.client import Replica
from .test_spiders import crawl

OS = "ornament_shop_com"
YEARS = "2018,2019"
SECRET = "health check secret"
WAIT = 120.0
# What a broken theme must leave as it was. (A page without its availability row may still word
# its state elsewhere, "Sold Out" for "Out of stock": such present text is stored as usual.)
KEPT = ("price", "regular_price", "availability", "name", "delisted_at")


# -- a healthy crawl to start from ---------------------------------------------------------


@pytest.fixture(scope="module")
def healthy_database(
    admin_engine: Engine,
    template_database: str,
    replica: Replica,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """A migrated database holding one healthy crawl of OS 2018-2019 (a template)."""
    name = f"xmas_health_{uuid.uuid4().hex[:8]}"
    with admin_engine.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
    replica.reset(OS)
    result = crawl(OS, replica, _url_for(name), tmp_path_factory.mktemp("health"), year=YEARS)
    assert result.returncode == 0, result.stdout[-4000:]
    yield name
    with admin_engine.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def crawled(admin_engine: Engine, healthy_database: str) -> Iterator[str]:
    """This test's own copy of the healthy crawl."""
    name = f"xmas_test_{uuid.uuid4().hex[:12]}"
    with admin_engine.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{healthy_database}"'))
    yield _url_for(name)
    with admin_engine.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def health_config(crawled: str, make_config: Callable[..., Config]) -> Config:
    return make_config(DATABASE_URL=crawled, CHRISTMAS_AUDITOR_POLL_SECONDS="1")


@pytest.fixture
def health_engine(health_config: Config) -> Iterator[Engine]:
    engine = database.get_engine(health_config)
    yield engine
    engine.dispose()


def crawl_os(replica: Replica, database_url: str, tmp_path: Path) -> dict[str, Any]:
    """Crawl OS 2018-2019; the run it recorded."""
    result = crawl(OS, replica, database_url, tmp_path, year=YEARS)
    assert result.returncode == 0, result.stdout[-4000:]
    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg2://"))
    try:
        with engine.connect() as connection:
            run = connection.execute(sa.select(crawl_runs).order_by(crawl_runs.c.id.desc())).first()
    finally:
        engine.dispose()
    return {**run._mapping, "stdout": result.stdout}


def snapshot(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(sa.select(products).where(products.c.vendor == OS)).all()
    return {row.vendor_key: dict(row._mapping) for row in rows}


def changes(engine: Engine, run_id: int) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                sa.select(
                    product_changes.c.kind,
                    product_changes.c.field,
                    product_changes.c.old_value,
                    product_changes.c.new_value,
                )
                .where(product_changes.c.crawl_run_id == run_id)
                .order_by(product_changes.c.id)
            )
        ]


# -- the audit worker, delivering crawl_health events -------------------------------------


@contextmanager
def auditor(config: Config, make_config: Callable[..., Config]) -> Iterator[dict[str, Any]]:
    """The audit worker with three webhook subscribers: `ops` asks for crawl_health rows,
    `alerts` has the crawl_health alert rule, `shop-sync` takes the default (product changes)."""
    with (
        WebhookReceiver(SECRET) as ops,
        WebhookReceiver(SECRET) as alerts,
        WebhookReceiver(SECRET) as sync,
    ):
        entries = [
            {"name": "ops", "webhook": _hook(ops), "kinds": ["crawl_health"]},
            {"name": "alerts", "webhook": _hook(alerts), "alerts": [{"rule": "crawl_health"}]},
            {"name": "shop-sync", "webhook": _hook(sync)},
        ]
        settings = make_config(
            DATABASE_URL=config.database_url,
            CHRISTMAS_SUBSCRIBERS=json.dumps(entries),
            CHRISTMAS_AUDITOR_POLL_SECONDS="1",
        )
        worker = Worker(settings, resolve_subscribers(settings, {}))
        thread = threading.Thread(target=worker.run, name="test-health-auditor")
        thread.start()
        try:
            assert worker.ready.wait(WAIT), "the audit worker did not start"
            yield {"ops": ops, "alerts": alerts, "shop-sync": sync, "worker": worker}
        finally:
            worker.stop()
            thread.join(WAIT)
            assert not thread.is_alive(), "the audit worker did not stop"


def _hook(receiver: WebhookReceiver) -> dict[str, str]:
    return {"url": receiver.url("/hook"), "secret": SECRET}


def events(receiver: WebhookReceiver) -> list[dict[str, Any]]:
    return [event for request in receiver.requests for event in request.payload["events"]]


def wait_for_events(receiver: WebhookReceiver, count: int) -> list[dict[str, Any]]:
    assert receiver.wait_for(lambda r: len(events(r)) >= count, WAIT), "no crawl_health event"
    return events(receiver)


# -- each broken theme ----------------------------------------------------------------------

BROKEN = {
    # theme switch: (the reason the run must give, the field whose stored values were kept)
    "price": ("price on 0% of 41 products (last healthy run: 100%)", "price"),
    "availability_text": (
        "availability text on 46% of 41 products (last healthy run: 100%)",
        "availability_text",
    ),
    "name": ("name on 0% of 41 product pages (last healthy run: 100%)", None),
    "listing": ("2019: 13 products, last healthy run 34", None),
}


@pytest.mark.parametrize("broken", sorted(BROKEN))
def test_a_broken_theme_is_suspect_and_harms_nothing(
    broken: str,
    replica_reset: Replica,
    crawled: str,
    health_config: Config,
    health_engine: Engine,
    make_config: Callable[..., Config],
    tmp_path: Path,
) -> None:
    replica = replica_reset
    reason, kept_field = BROKEN[broken]
    before = snapshot(health_engine)
    with auditor(health_config, make_config) as subscribers:
        replica.theme(OS, broken)
        suspect = crawl_os(replica, crawled, tmp_path)
        assert (suspect["health"], suspect["status"]) == ("suspect", "finished")
        assert reason in suspect["health_reasons"], suspect["health_reasons"]
        summary = suspect["stdout"].split("health    ", 1)[-1]
        assert summary.startswith("suspect: ") and reason in summary, summary
        after = snapshot(health_engine)
        assert after.keys() == before.keys()
        for key, row in after.items():  # prices, availability, names: as they were; none delisted
            assert {f: row[f] for f in KEPT} == {f: before[key][f] for f in KEPT}, key
            assert row["availability_text"] is not None, key
        synced = [
            key
            for key, row in after.items()
            if row["last_synced_at"] > before[key]["last_synced_at"]
        ]
        if broken == "listing":
            assert 0 < len(synced) < len(before)  # the first pages' products were read
        else:
            assert len(synced) == len(before)  # every page was read: seen, though not stored
        if kept_field:
            assert suspect["stats"][f"health/protected/{kept_field}"] > 0
        assert changes(health_engine, suspect["id"]) == [
            ("crawl_health", None, "ok", _verdict(suspect))
        ]

        replica.theme(OS)  # the shop fixed its theme
        healthy = crawl_os(replica, crawled, tmp_path)
        assert (healthy["health"], healthy["health_reasons"]) == ("ok", [])
        assert changes(health_engine, healthy["id"]) == [
            ("crawl_health", None, "suspect", _verdict(healthy))
        ]  # "healthy again"; and not a single product change
        for key, row in snapshot(health_engine).items():
            assert {f: row[f] for f in KEPT} == {f: before[key][f] for f in KEPT}, key

        ops = wait_for_events(subscribers["ops"], 2)
        alerts = wait_for_events(subscribers["alerts"], 2)
        last = max(event["change_id"] for event in ops)
        until(lambda: _cursor(health_engine, "shop-sync") >= last, "shop-sync's cursor moves on")
    assert [(e["kind"], e["crawl_health"]["health"], e["crawl_run_id"]) for e in ops] == [
        ("crawl_health", "suspect", suspect["id"]),
        ("crawl_health", "ok", healthy["id"]),
    ]
    assert reason in ops[0]["crawl_health"]["reasons"]
    assert ops[0]["crawl_health"]["vendor"] == OS and ops[0]["product"] is None
    assert [[alert["rule"] for alert in event["alerts"]] for event in alerts] == [
        ["crawl_health"],
        ["crawl_health"],
    ]
    assert alerts[0]["alerts"][0]["title"] == (
        f"Crawl health: Ornament Shop is SUSPECT (crawl run {suspect['id']})"
    )
    assert subscribers["shop-sync"].requests == []  # not asked for: never sent


def _verdict(run: dict[str, Any]) -> str:
    return json.dumps(
        {
            "vendor": OS,
            "run_id": run["id"],
            "health": run["health"],
            "reasons": run["health_reasons"],
        }
    )


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {WAIT:.0f} s"
        time.sleep(0.1)


def _cursor(engine: Engine, name: str) -> int:
    with engine.connect() as connection:
        return connection.execute(
            sa.text("SELECT last_change_id FROM audit_subscribers WHERE name = :name"),
            {"name": name},
        ).scalar_one()
