"""The crawl runner: real `scrapy crawl` children against the replica, outcomes in crawl_runs.

The runner is driven in-process; its children inherit this process's environment, so each test
points DATABASE_URL and CONFIG_PATH at its own database and configuration (as the scheduler
process's environment would)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from christmas_spiders import config as config_module
from christmas_spiders.config import Config
from christmas_spiders.distributed.keys import RunKeys
from christmas_spiders.scheduling import jobs
from christmas_spiders.scheduling.runner import Crawl, CrawlRunner
from christmas_spiders.scheduling.runtime import Runtime
from christmas_spiders.storage import get_engine, runs
from christmas_spiders.storage.schema import crawl_run_processes, crawl_runs, products
from christmas_spiders.vendors import VENDORS

from .conftest import PROJECT_ROOT
from .replica.client import Replica

OS = "ornament_shop_com"
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
FAST = {"AUTOTHROTTLE_ENABLED": "0", "RETRY_BACKOFF_BASE": "0.05", "RETRY_BACKOFF_MAX": "1"}


@pytest.fixture
def configure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str
) -> Callable[..., Config]:
    """This process's environment (the children's) and config: this test's database, every
    shop at `base_urls`, this schedule."""

    def build(base_urls: dict[str, str], schedule: dict[str, Any], **env: str) -> Config:
        path = tmp_path / "config.json"
        vendors = {vendor: {"base_url": base_urls[vendor]} for vendor in VENDORS}
        schedule = {"crawl_settings": FAST, **schedule}
        path.write_text(json.dumps({"vendors": vendors, "schedule": schedule}))
        for name in ("ENV", "REDIS_URL", "CHRISTMAS_SCHEDULE", "CHRISTMAS_REDIS_KEY_PREFIX"):
            monkeypatch.delenv(name, raising=False)
        values = {
            "DATABASE_URL": database_url,
            "CONFIG_PATH": str(path),
            "CHRISTMAS_DATA_DIR": str(tmp_path / "data"),
            **env,
        }
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        return config_module.load()

    return build


def make_runner(config: Config) -> CrawlRunner:
    return CrawlRunner(config, get_engine(config), threading.Event())


def the_run(engine: Engine, run_id: int | None) -> dict[str, Any]:
    with engine.connect() as connection:
        rows = connection.execute(sa.select(crawl_runs)).all()
    assert [row.id for row in rows] == [run_id], "exactly one crawl run, the outcome's"
    return dict(rows[0]._mapping)


def crawl_children() -> list[psutil.Process]:
    return [
        child
        for child in psutil.Process().children(recursive=True)
        if "scrapy" in " ".join(child.cmdline())
    ]


def test_a_crawl_stores_products_and_its_run_gets_exit_status_and_duration(
    configure, replica: Replica, engine: Engine
) -> None:
    config = configure(replica.base_urls, {})
    outcome = make_runner(config).run(Crawl("sync:x", OS, {"year": "2019"}, budget=120))
    assert (outcome.status, outcome.exit_status) == ("finished", 0), outcome
    expected = replica.expected_items(OS, {2019})
    run = the_run(engine, outcome.run_id)
    assert (run["status"], run["close_reason"], run["arguments"]) == (
        "finished",
        "finished",
        {"year": "2019"},
    )
    assert run["items_created"] == len(expected) == outcome.counters["items_created"]
    assert run["stats"]["scheduler/job_id"] == "sync:x"
    assert run["stats"]["scheduler/exit_status"] == 0
    assert run["stats"]["scheduler/duration_seconds"] > 0
    with engine.connect() as connection:
        stored = set(
            connection.execute(
                sa.select(products.c.vendor_product_id).where(products.c.release_year == 2019)
            ).scalars()
        )
    assert stored == {item.vendor_product_id for item in expected}


def test_a_hanging_crawl_is_stopped_at_its_budget_and_recorded_failed(
    configure, start_replica, engine: Engine
) -> None:
    stuck = start_replica(latency_ms=120_000)  # every page takes two minutes to come
    config = configure(stuck.base_urls, {"stop_grace": "1s"})
    outcome = make_runner(config).run(Crawl("sync:x", OS, {"year": "2019"}, budget=3))
    assert (outcome.status, outcome.reason) == ("failed", "time_budget")
    run = the_run(engine, outcome.run_id)
    assert (run["status"], run["close_reason"]) == ("failed", "time_budget")
    assert run["finished_at"] is not None
    assert run["stats"]["scheduler/stopped"] == "time_budget"
    # Recorded either way: 0 when SIGTERM came before the crawl had a page in flight (it stops
    # cleanly), -9 when the grace ran out on the two-minute page. Which one is up to the load.
    assert isinstance(run["stats"]["scheduler/exit_status"], int)
    assert crawl_children() == []  # the crawl and anything it started are gone


def test_a_crawl_that_dies_before_opening_its_run_gets_a_failed_run(
    configure, replica: Replica, engine: Engine
) -> None:
    config = configure(replica.base_urls, {})
    outcome = make_runner(config).run(Crawl("sync:x", OS, {"year": "1900"}, budget=60))
    assert (outcome.status, outcome.exit_status) == ("failed", 2)  # a usage error
    run = the_run(engine, outcome.run_id)
    assert run["status"] == "failed"
    assert run["close_reason"] == "the crawl never joined its run (exit status 2)"
    assert run["stats"]["scheduler/exit_status"] == 2
    assert run["arguments"] == {"year": "1900"}  # the run the scheduler opened for it


def test_the_crawl_owns_the_run_the_scheduler_opened_and_delists_what_is_gone(
    configure, replica_reset: Replica, engine: Engine
) -> None:
    """The child joins the run (-a run_id=) as its only process: it ends it as a full crawl
    does, health judged and the product the shop no longer lists delisted."""
    config = configure(replica_reset.base_urls, {})
    runner = make_runner(config)
    crawl = Crawl("sync:x", OS, {"year": "2019"}, budget=120)
    assert runner.run(crawl).status == "finished"
    gone = replica_reset.expected_items(OS, {2019})[0]
    replica_reset.set_product(OS, gone.vendor_product_id, gone=True)

    outcome = runner.run(crawl)
    assert outcome.status == "finished", outcome
    with engine.connect() as connection:
        run = connection.execute(sa.select(crawl_runs).where(crawl_runs.c.id == outcome.run_id))
        run = run.one()
        members = connection.execute(
            sa.select(crawl_run_processes.c.pid).where(
                crawl_run_processes.c.run_id == outcome.run_id
            )
        ).all()
        delisted = connection.execute(
            sa.select(products.c.delisted_at).where(
                products.c.vendor_product_id == str(gone.vendor_product_id)
            )
        ).scalar_one()
    assert len(members) == 1  # the child, and only it, worked the run
    assert run.stats["delisted"] == 1 and delisted is not None
    assert run.health == "ok"


def test_only_the_first_process_to_enter_a_running_run_owns_it(engine: Engine) -> None:
    with engine.begin() as connection:
        opened = runs.start_run(connection, OS, {"year": "2019"})
        finished = runs.start_run(connection, OS, {"year": "2019"})
        runs.finish_run(
            connection, finished, status="finished", close_reason="x", counters={}, stats={}
        )
    with engine.begin() as connection:
        assert runs.enter_run(connection, opened) is True
    with engine.begin() as connection:  # the same process again: it was in the run already
        assert runs.enter_run(connection, opened) is False
    with engine.begin() as connection:
        assert runs.enter_run(connection, finished) is False  # joining a run that is over


def test_the_same_crawl_never_runs_twice_at_once(configure, start_replica, engine: Engine) -> None:
    slow = start_replica(latency_ms=120_000)
    config = configure(slow.base_urls, {"stop_grace": "1s"})
    runner = make_runner(config)
    crawl = Crawl("sync:x", OS, {"year": "2019"}, budget=4)
    first = threading.Thread(target=runner.run, args=(crawl,))
    first.start()
    deadline = time.monotonic() + 10
    while runner.active == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    second = runner.run(Crawl("run:sync:x", OS, {"year": "2019"}, budget=4))
    first.join()
    assert (second.status, second.reason) == ("skipped", "already running")
    with engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(crawl_runs)).scalar() == 1


@pytest.fixture
def standing_worker(configure, replica: Replica) -> Iterator[Config]:
    """A standing worker (`scrapy worker`) on this test's database and Redis key prefix."""
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    config = configure(
        replica.base_urls,
        {},
        REDIS_URL=REDIS_URL,
        CHRISTMAS_REDIS_KEY_PREFIX=prefix,
        CHRISTMAS_CRAWL_IDLE_SECONDS="1",
        CHRISTMAS_SHOP_MAX_CONCURRENCY="100",
        CHRISTMAS_SHOP_REQUESTS_PER_SECOND="10000",
        CHRISTMAS_WORKER_POLL_SECONDS="0.5",
    )
    command = [sys.executable, "-m", "scrapy", "worker"]
    for name, value in FAST.items():
        command += ["-s", f"{name}={value}"]
    worker = subprocess.Popen(
        command, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    server = redis.Redis.from_url(REDIS_URL)
    channel = f"{prefix}:runs:announced"
    try:
        deadline = time.monotonic() + 30
        while server.pubsub_numsub(channel)[0][1] == 0:
            assert worker.poll() is None, "the standing worker exited"
            assert time.monotonic() < deadline, "the standing worker did not subscribe"
            time.sleep(0.1)
        yield config
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
        for key in server.scan_iter(match=f"{prefix}:*", count=1000):
            server.delete(key)
        server.close()


def test_with_standing_workers_the_run_is_announced_for_them_and_followed(
    standing_worker: Config, replica: Replica, engine: Engine
) -> None:
    runner = make_runner(standing_worker)
    outcome = runner.run(Crawl("sync:x", OS, {"year": "2019"}, budget=120))
    assert outcome.status == "finished", outcome
    assert outcome.exit_status is None  # no child of the scheduler's own
    run = the_run(engine, outcome.run_id)
    assert run["status"] == "finished"
    assert run["stats"]["scheduler/announced"] is True
    assert run["items_created"] == len(replica.expected_items(OS, {2019}))


def test_the_stale_job_resyncs_each_stale_product_by_its_id(
    configure, replica: Replica, engine: Engine
) -> None:
    config = configure(replica.base_urls, {"stale_after": "3d", "stale_batch": 2})
    runner = make_runner(config)
    assert runner.run(Crawl("sync:x", OS, {"year": "2018"}, budget=120)).status == "finished"
    with engine.begin() as connection:
        ids = (
            connection.execute(
                sa.select(products.c.id).where(products.c.vendor == OS).order_by(products.c.id)
            )
            .scalars()
            .all()
        )
        stale = ids[:3]  # three stale products, the batch takes two: the stalest
        for age, product_id in enumerate(stale, start=4):
            connection.execute(
                sa.update(products)
                .where(products.c.id == product_id)
                .values(last_synced_at=sa.func.now() - timedelta(days=age))
            )
    # The stale job's work, as the scheduler's job pool runs it (no APScheduler needed).
    Runtime(config, engine, None, runner, threading.Event()).resync_stale(OS)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(crawl_runs.c.arguments, crawl_runs.c.status, crawl_runs.c.stats)
            .where(crawl_runs.c.arguments.has_key("product_id"))
            .order_by(crawl_runs.c.id)
        ).all()
        synced = (
            connection.execute(
                sa.select(products.c.id).where(
                    products.c.last_synced_at > sa.func.now() - timedelta(hours=1)
                )
            )
            .scalars()
            .all()
        )
    assert [(row.arguments, row.status) for row in rows] == [
        ({"product_id": str(stale[2])}, "finished"),
        ({"product_id": str(stale[1])}, "finished"),
    ]
    assert {row.stats["scheduler/job_id"] for row in rows} == {jobs.stale_id(OS)}
    assert set(ids) - set(synced) == {stale[0]}  # left for the next run


def test_an_announced_run_over_budget_is_failed_and_its_workers_stop(
    standing_worker: Config, replica: Replica, engine: Engine
) -> None:
    replica.set_latency(400, OS)  # a slow shop: the crawl cannot end within its budget
    try:
        outcome = make_runner(standing_worker).run(Crawl("sync:x", OS, {}, budget=3))
    finally:
        replica.set_latency(0, OS)
    assert (outcome.status, outcome.reason) == ("failed", "time_budget"), outcome
    run_keys = RunKeys(standing_worker.redis_key_prefix, OS, outcome.run_id)
    server = redis.Redis.from_url(REDIS_URL)
    try:
        assert server.hget(run_keys.state, "status") == b"closed"
        deadline = time.monotonic() + 30
        while server.zcard(run_keys.workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert server.zcard(run_keys.workers) == 0, "the run's workers did not stop"
    finally:
        server.close()
    assert the_run(engine, outcome.run_id)["status"] == "failed"
