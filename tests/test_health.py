"""Crawl health (docs/health.md): a shop whose theme broke is caught in the run it happens, and
that run harms nothing; genuine changes are stored as usual.

Real crawls (`scrapy crawl` child processes) of ornament-shop.com's 2018 and 2019 on the replica,
whose broken-theme switch hides prices, availability text or names, or cuts listings to their
first page. Each test starts from a clone of one healthy crawl (made once for the module), and
the real audit worker delivers crawl_health events to a webhook receiver.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import lxml.html
import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from christmas_spiders.config import Config, resolve_subscribers
from christmas_spiders.distributed import keys
from christmas_spiders.storage import database
from christmas_spiders.storage.schema import crawl_runs, product_changes, products
from webapi import auth, create_app
from webapi.auditor.receiver import WebhookReceiver
from webapi.auditor.worker import Worker

from . import test_distributed as distributed
from .conftest import PROJECT_ROOT, _url_for
from .replica.client import Replica
from .test_spiders import crawl

OS = "ornament_shop_com"
YEARS = "2018,2019"
SECRET = "health check secret"
WAIT = 120.0
# The fixtures of distributed crawls (a key prefix of the test's own on the shared Redis).
redis_env, redis_prefix, shared_redis = (
    distributed.redis_env,
    distributed.redis_prefix,
    distributed.shared_redis,
)
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


# -- genuine changes -------------------------------------------------------------------------


def test_a_shop_wide_price_rise_is_ok_and_stored(
    replica_reset: Replica, crawled: str, health_engine: Engine, tmp_path: Path
) -> None:
    replica = replica_reset
    raised = {}
    for item in replica.expected_items(OS, {2018, 2019}):
        if item.price is not None:
            raised[item.vendor_product_id] = (item.price * Decimal("1.1")).quantize(Decimal("0.01"))
            replica.set_product(
                OS, item.vendor_product_id, price=str(raised[item.vendor_product_id])
            )
    run = crawl_os(replica, crawled, tmp_path)
    assert (run["health"], run["health_reasons"]) == ("ok", [])
    stored = {row["vendor_product_id"]: row["price"] for row in snapshot(health_engine).values()}
    assert {key: stored[key] for key in raised} == raised
    prices = [change for change in changes(health_engine, run["id"]) if change[1] == "price"]
    assert len(prices) == len(raised) and all(kind == "changed" for kind, *_ in prices)


def test_a_price_one_product_really_lost_is_recorded_when_the_run_ends(
    replica_reset: Replica, crawled: str, health_engine: Engine, tmp_path: Path
) -> None:
    replica = replica_reset
    item = next(i for i in replica.expected_items(OS, {2019}) if i.price and not i.regular_price)
    replica.set_product(OS, item.vendor_product_id, price=None)  # now "Call for pricing"
    run = crawl_os(replica, crawled, tmp_path)
    assert (run["health"], run["stats"]["health/applied/price"]) == ("ok", 1)
    assert changes(health_engine, run["id"]) == [("changed", "price", str(item.price), None)]


def test_an_emptied_year_is_left_to_the_incomplete_year_guard_and_explained(
    replica_reset: Replica, crawled: str, health_engine: Engine, tmp_path: Path
) -> None:
    replica = replica_reset
    gone = replica.expected_items(OS, {2019})[0]
    replica.set_product(OS, gone.vendor_product_id, gone=True)
    replica.theme(OS, empty_years=(2018,))  # the shop removed 2018
    run = crawl_os(replica, crawled, tmp_path)
    assert run["health"] == "ok"
    assert run["health_reasons"] == [
        "2018: no products, last healthy run 7: the year looks emptied; nothing of it is "
        "delisted (incomplete-year guard)"
    ]
    assert "ornament_shop_com 2018 looks incomplete (0 products, 7 last time)" in run["stdout"]
    delisted = {
        row["vendor_product_id"]: row["release_year"]
        for row in snapshot(health_engine).values()
        if row["delisted_at"] is not None
    }
    assert delisted == {gone.vendor_product_id: 2019}  # 2019 is delisted as usual, 2018 is not


# -- one product page, and an operator's word -------------------------------------------------


def test_one_product_page_without_its_price_keeps_it(
    replica_reset: Replica, crawled: str, health_engine: Engine, tmp_path: Path
) -> None:
    replica = replica_reset
    item = next(i for i in replica.expected_items(OS, {2019}) if i.price)
    replica.theme(OS, "price")
    result = crawl(OS, replica, crawled, tmp_path, url=item.link)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "health    suspect: price gone from 1 of 1 products that had one" in result.stdout
    row = next(
        r
        for r in snapshot(health_engine).values()
        if r["vendor_product_id"] == item.vendor_product_id
    )
    assert row["price"] == item.price


def test_an_accepted_run_becomes_the_baseline_and_its_kept_values_are_applied(
    replica_reset: Replica,
    crawled: str,
    health_config: Config,
    health_engine: Engine,
    tmp_path: Path,
) -> None:
    replica = replica_reset
    replica.theme(OS, "price")  # say the shop really stopped showing prices
    suspect = crawl_os(replica, crawled, tmp_path)
    assert suspect["health"] == "suspect"
    priced = [row for row in snapshot(health_engine).values() if row["price"] is not None]
    assert priced and suspect["stats"]["health/protected/price"] == len(priced)
    assert_shown_suspect(health_config, health_engine, suspect)

    result = subprocess.run(
        [sys.executable, "-m", "christmas_spiders.health", "accept", str(suspect["id"])],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DATABASE_URL": crawled},
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"kept values applied: {len(priced)} price" in result.stdout
    assert all(row["price"] is None for row in snapshot(health_engine).values())
    history = changes(health_engine, suspect["id"])
    assert sorted(change[:2] for change in history) == sorted(
        [("changed", "price")] * len(priced) + [("crawl_health", None)] * 2
    )
    again = subprocess.run(
        [sys.executable, "-m", "christmas_spiders.health", "accept", str(suspect["id"])],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DATABASE_URL": crawled},
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert again.returncode == 2
    assert f"crawl run {suspect['id']} is ok, not suspect: nothing to accept." in again.stdout

    after = crawl_os(replica, crawled, tmp_path)  # judged against the accepted run
    assert (after["health"], after["health_reasons"]) == ("ok", [])
    assert changes(health_engine, after["id"]) == []


def assert_shown_suspect(config: Config, engine: Engine, run: dict[str, Any]) -> None:
    """/v1/runs and the /runs page show the run suspect, with its reasons."""
    with engine.begin() as connection:
        _, key = auth.create_key(connection, "health-test")
    app = create_app(config)
    try:
        client = app.test_client()
        headers = {"Authorization": f"Bearer {key}"}
        answer = client.get("/v1/runs", query_string={"health": "suspect"}, headers=headers)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        [listed] = answer.get_json()["items"]
        assert (listed["id"], listed["health"]) == (run["id"], "suspect")
        assert listed["health_reasons"] == run["health_reasons"]
        assert (
            client.get("/v1/runs", query_string={"health": "bad"}, headers=headers).status_code
            == 400
        )
        tree = lxml.html.fromstring(client.get("/runs").get_data(as_text=True))
        [row] = tree.cssselect(f"table.runs tr[data-run='{run['id']}']")
        assert "suspect" in row.get("class").split() and row.get("data-health") == "suspect"
        assert [li.text_content() for li in row.cssselect("ul.reasons li")] == run["health_reasons"]
    finally:
        app.extensions["christmas_db"].dispose()


def test_a_listing_cut_by_a_quarter_delists_nothing(
    replica_reset: Replica, database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """hookedonhallmark.com's view-all listing cut to its first 24 of 32 products: above the
    incomplete-year guard's half, so without the health check 8 products would be delisted."""
    replica, hooh = replica_reset, "hookedonhallmark_com"
    assert crawl(hooh, replica, database_url, tmp_path, year="2019").returncode == 0
    replica.theme(hooh, "listing")
    result = crawl(hooh, replica, database_url, tmp_path, year="2019")
    assert result.returncode == 0, result.stdout[-4000:]
    assert "health    suspect: 2019: 24 products, last healthy run 32" in result.stdout
    assert "looks incomplete" not in result.stdout  # the guard alone would have delisted
    with engine.connect() as connection:
        delisted = connection.execute(
            sa.select(sa.func.count()).where(products.c.delisted_at.is_not(None))
        ).scalar_one()
    assert delisted == 0


def test_a_distributed_run_is_judged_once_on_every_workers_counts(
    replica_reset: Replica,
    redis_env: Callable[..., dict[str, str]],
    shared_redis: redis.Redis,
    redis_prefix: str,
    engine: Engine,
    tmp_path: Path,
) -> None:
    """Two workers share a run on a shop whose prices vanished: the last to leave judges it on
    both workers' counts (each did real work: HOLD), and nothing is written over or delisted."""
    replica, hooh = replica_reset, "hookedonhallmark_com"
    env = redis_env(**distributed.HOLD_ENV)
    base_url = replica.base_urls[hooh]
    assert distributed.crawl(hooh, env, base_url=base_url).returncode == 0  # healthy
    prices = {key: row["price"] for key, row in distributed.stored(engine, hooh).items()}
    replica.theme(hooh, "price")
    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
    with distributed.products_locked(engine):
        run_id = distributed.announce(hooh, env, base_url=base_url)
        workers = [
            distributed.start_crawl(hooh, env, log, {"run_id": str(run_id)}, distributed.HOLD)
            for log in logs
        ]
        run = keys.RunKeys(redis_prefix, hooh, run_id)
        distributed.wait_until_each_holds_products(shared_redis, run, replica, workers)
    outputs = [distributed.wait(worker, log) for worker, log in zip(workers, logs, strict=True)]
    assert [worker.returncode for worker in workers] == [0, 0], outputs[0][-3000:]
    scraped = [distributed.stat(output, "item_scraped_count") for output in outputs]
    assert min(scraped) >= 1 and sum(scraped) == len(prices)  # both read pages
    row = distributed.run_row(engine, run_id)
    assert (row["status"], row["health"]) == ("finished", "suspect")
    [reason] = row["health_reasons"]
    assert reason.startswith(f"price on 0% of {len(prices)} products (last healthy run: ")
    judged = [output for output in outputs if "\n    health    suspect: " in output]
    assert len(judged) == 1  # the last worker, once
    stored = distributed.stored(engine, hooh)
    assert {key: row["price"] for key, row in stored.items()} == prices
    assert all(row["delisted_at"] is None for row in stored.values())
    assert [kind for kind, *_ in changes(engine, run_id)] == ["crawl_health"]


def test_a_quick_sync_of_a_broken_theme_keeps_prices(
    replica_reset: Replica, crawled: str, health_engine: Engine, tmp_path: Path
) -> None:
    """A quick sync reads few pages (here the one overdue for a refresh) and confirms the other
    products from their tiles: the page read that lost its price is judged on its own."""
    replica = replica_reset
    with health_engine.begin() as connection:  # a priced page older than quick_refresh_days (7)
        listed = (products.c.vendor == OS, products.c.price.is_not(None))
        due = connection.execute(sa.select(sa.func.min(products.c.id)).where(*listed)).scalar()
        connection.execute(
            sa.update(products)
            .where(products.c.id == due)
            .values(page_read_at=sa.func.now() - sa.text("interval '8 days'"))
        )
    before = snapshot(health_engine)
    replica.theme(OS, "price")  # product pages only: the listing tiles still show prices
    result = crawl(OS, replica, crawled, tmp_path, year=YEARS, mode="quick")
    assert result.returncode == 0, result.stdout[-4000:]
    assert "pages fetched: 1 " in result.stdout
    assert "health    suspect: price gone from 1 of 1 products that had one" in result.stdout
    after = snapshot(health_engine)
    assert {key: row["price"] for key, row in after.items()} == {
        key: row["price"] for key, row in before.items()
    }
