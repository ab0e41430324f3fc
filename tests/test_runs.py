"""Crash safety of crawl runs (storage.runs): runs abandoned by a process that died are closed
failed/abandoned by the next process that opens the database, and two runs of one vendor at
once each keep their own counters, history and delisting.

Crawls are real `scrapy crawl` children against the replica; rows of processes on other hosts
are written directly, their staleness judged by the database's clock (no sleeping).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lxml.html
import psutil
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from christmas_spiders.config import Config, Destination, Subscriber
from christmas_spiders.distributed.worker import StandingWorker
from christmas_spiders.processes import crawl_command
from christmas_spiders.scheduling.runner import Crawl, CrawlRunner, Outcome
from christmas_spiders.storage import delisting, runs
from christmas_spiders.storage.products import upsert_products
from christmas_spiders.storage.schema import (
    crawl_run_processes,
    crawl_runs,
    process_heartbeats,
    product_changes,
    products,
)
from webapi import auth, create_app
from webapi.auditor.worker import Worker as AuditWorker

from .conftest import PROJECT_ROOT
from .replica.client import Replica
from .test_distributed import FAST, REDIS_URL, expected_ids, stored
from .test_scheduler import READY, SchedulerProcess, quiet_schedule

OS = "ornament_shop_com"
YEAR = 2019
WAIT = 120  # generous deadline for a condition under load
ELSEWHERE = "another-host.example"


# -- helpers -------------------------------------------------------------------------------------


def _env(database_url: str, tmp_path: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        DATABASE_URL=database_url,
        CHRISTMAS_DATA_DIR=str(tmp_path / "data"),
        CHRISTMAS_STORE_FLUSH_SECONDS="0.2",
        PYTHONUNBUFFERED="1",
        **values,
    )
    return env


def _start_crawl(
    env: dict[str, str], log: Path, arguments: dict[str, str]
) -> subprocess.Popen[bytes]:
    command = crawl_command(OS, arguments, FAST)
    with log.open("wb") as output:
        return subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
        )


def _finish(popen: subprocess.Popen[bytes], log: Path) -> str:
    try:
        popen.wait(WAIT)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait()
        pytest.fail(f"the crawl did not end in {WAIT} s:\n{log.read_text()[-4000:]}")
    output = log.read_text()
    assert popen.returncode == 0, output[-4000:]
    return output


def _until(condition: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT
    while not (value := condition()):
        assert time.monotonic() < deadline, f"{what}: not within {WAIT} s"
        time.sleep(0.1)
    return value


def _run(engine: Engine, run_id: int) -> dict[str, Any]:
    with engine.connect() as connection:
        row = connection.execute(sa.select(crawl_runs).where(crawl_runs.c.id == run_id)).one()
    return dict(row._mapping)


def _status(engine: Engine, run_id: int) -> tuple[str, str | None]:
    run = _run(engine, run_id)
    return run["status"], run["close_reason"]


def _delisted(engine: Engine) -> tuple[int, int]:
    """(products delisted, `delisted` history rows)."""
    with engine.connect() as connection:
        marked = connection.execute(
            sa.select(sa.func.count()).where(products.c.delisted_at.is_not(None))
        ).scalar_one()
        events = connection.execute(
            sa.select(sa.func.count()).where(product_changes.c.kind == "delisted")
        ).scalar_one()
    return marked, events


def _seed_year(engine: Engine, replica: Replica) -> int:
    """Every product of the year as an earlier crawl stored it; how many."""
    items = [dataclasses.asdict(item) for item in replica.expected_items(OS, {YEAR})]
    with engine.begin() as connection:
        upsert_products(connection, items)
    return len(items)


def _synced_since_run_start(engine: Engine, run_id: int) -> list[str]:
    """The vendor product ids written since the run started (by it, or by a run after it)."""
    started = sa.select(crawl_runs.c.started_at).where(crawl_runs.c.id == run_id)
    with engine.connect() as connection:
        return list(
            connection.execute(
                sa.select(products.c.vendor_product_id).where(
                    products.c.vendor == OS, products.c.last_synced_at >= started.scalar_subquery()
                )
            ).scalars()
        )


def _run_of(engine: Engine, pid: int) -> int | None:
    """The run the process `pid` of this host has entered."""
    with engine.connect() as connection:
        return connection.execute(
            sa.select(crawl_run_processes.c.run_id).where(
                crawl_run_processes.c.host == socket.gethostname(),
                crawl_run_processes.c.pid == pid,
            )
        ).scalar()


def _assert_shown_abandoned(settings: Config, engine: Engine, run_id: int) -> None:
    """The web view's /runs and the API's /v1/runs show the run failed, reason abandoned."""
    with engine.begin() as connection:
        _, key = auth.create_key(connection, f"runs-{uuid.uuid4().hex[:6]}")
    app = create_app(settings)
    try:
        client = app.test_client()
        page = client.get("/runs")
        assert page.status_code == 200
        tree = lxml.html.fromstring(page.get_data(as_text=True))
        [row] = tree.cssselect(f'table.runs tr[data-run="{run_id}"]')
        assert row.get("data-status") == "failed"
        assert "failed (abandoned)" in " ".join(row.text_content().split())
        response = client.get("/v1/runs", headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 200, response.get_data(as_text=True)
        [item] = [item for item in response.get_json()["items"] if item["id"] == run_id]
        assert (item["status"], item["close_reason"]) == ("failed", "abandoned")
        assert item["finished_at"] is not None
    finally:
        app.extensions["christmas_db"].dispose()


# -- a crawl killed mid-crawl --------------------------------------------------------------------


@pytest.fixture
def killed_crawl(
    replica_reset: Replica, engine: Engine, database_url: str, tmp_path: Path
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A crawl of the year SIGKILLed mid-crawl over a database that already holds the year's
    products (so a run that delisted what it had not seen yet would show); (run id, process).
    The process is killed but not reaped: the test decides (a zombie must count as gone)."""
    _seed_year(engine, replica_reset)
    replica_reset.set_latency(400, OS)  # 34 product pages, 4 at a time: seconds of crawling
    log = tmp_path / "killed.log"
    env = _env(database_url, tmp_path)
    crawl = _start_crawl(env, log, {"base_url": replica_reset.base_urls[OS], "year": str(YEAR)})
    try:
        run_id = _until(lambda: _run_of(engine, crawl.pid), "the crawl entered its run")
        _until(lambda: _synced_since_run_start(engine, run_id), "the crawl stored products")
        crawl.send_signal(signal.SIGKILL)  # out of memory, a crash: nothing is recorded
        _until(lambda: psutil.Process(crawl.pid).status() == psutil.STATUS_ZOMBIE, "the crawl died")
        assert _status(engine, run_id) == ("running", None)  # it died before its close
        replica_reset.set_latency(0, OS)
        yield run_id, crawl
    finally:
        if crawl.poll() is None:
            crawl.kill()
        crawl.wait()


def test_a_killed_crawl_is_closed_by_the_sweep_command(
    killed_crawl: tuple[int, subprocess.Popen[bytes]],
    engine: Engine,
    settings: Config,
    database_url: str,
    tmp_path: Path,
) -> None:
    run_id, crawl = killed_crawl  # not reaped yet: a zombie is gone too
    result = subprocess.run(
        [sys.executable, "-m", "christmas_spiders.storage", "sweep"],
        cwd=PROJECT_ROOT,
        env=_env(database_url, tmp_path),
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"1 abandoned crawl run(s) closed: {run_id}" in result.stdout
    assert _status(engine, run_id) == ("failed", "abandoned")
    abandoned = _run(engine, run_id)["stats"][runs.ABANDONED_STAT]
    assert abandoned["processes"] == [f"{socket.gethostname()}:{crawl.pid}"]
    assert _delisted(engine) == (0, 0)
    _assert_shown_abandoned(settings, engine, run_id)


def test_a_killed_crawl_is_closed_by_the_next_crawl(
    killed_crawl: tuple[int, subprocess.Popen[bytes]],
    replica_reset: Replica,
    engine: Engine,
    settings: Config,
    database_url: str,
    tmp_path: Path,
) -> None:
    run_id, crawl = killed_crawl
    crawl.wait()  # reaped: its pid is gone
    log = tmp_path / "next.log"
    arguments = {"base_url": replica_reset.base_urls[OS], "year": str(YEAR)}
    output = _finish(_start_crawl(_env(database_url, tmp_path), log, arguments), log)
    assert f"crawl run {run_id} of {OS} was abandoned" in output
    assert _status(engine, run_id) == ("failed", "abandoned")
    assert _status(engine, run_id + 1) == ("finished", "finished")
    assert _delisted(engine) == (0, 0)
    _assert_shown_abandoned(settings, engine, run_id)


def test_a_killed_crawl_is_closed_by_the_scheduler_at_start(
    killed_crawl: tuple[int, subprocess.Popen[bytes]],
    replica_reset: Replica,
    engine: Engine,
    settings: Config,
    database_url: str,
    tmp_path: Path,
) -> None:
    run_id, crawl = killed_crawl
    crawl.wait()
    path = tmp_path / "config.json"
    vendors = {vendor: {"base_url": url} for vendor, url in replica_reset.base_urls.items()}
    path.write_text(json.dumps({"vendors": vendors, "schedule": quiet_schedule()}))
    env = _env(database_url, tmp_path, CONFIG_PATH=str(path))
    for name in ("ENV", "CHRISTMAS_SCHEDULE"):
        env.pop(name, None)
    scheduler = SchedulerProcess(env, tmp_path / "scheduler.log").start()
    try:
        scheduler.wait_for(READY, timeout=WAIT)
        assert _status(engine, run_id) == ("failed", "abandoned")
        assert f"crawl run {run_id} of {OS} was abandoned" in scheduler.log
        assert scheduler.stop() == 0
    finally:
        scheduler.kill()
    assert _delisted(engine) == (0, 0)
    _assert_shown_abandoned(settings, engine, run_id)


# -- who is alive: rows of processes on this and other hosts -------------------------------------


def _open_run(connection: Connection, *, started_ago: float = 0) -> int:
    run_id = runs.start_run(connection, OS, {"year": str(YEAR)})
    connection.execute(
        sa.update(crawl_runs).where(crawl_runs.c.id == run_id).values(started_at=_ago(started_ago))
    )
    return run_id


def _ago(seconds: float) -> Any:
    """A timestamp `seconds` before the database's now()."""
    return sa.func.now() - sa.func.make_interval(0, 0, 0, 0, 0, 0, seconds)


def _member(
    connection: Connection,
    run_id: int,
    *,
    host: str = ELSEWHERE,
    pid: int,
    pid_created: float = 0.0,
    joined_ago: float = 3600,
    beat_ago: float | None = None,
    interval: float = 10.0,
    left: bool = False,
) -> None:
    """A process of the run; with `beat_ago`, its crawl heartbeat beat that long ago."""
    connection.execute(
        sa.insert(crawl_run_processes).values(
            run_id=run_id,
            host=host,
            pid=pid,
            pid_created=pid_created,
            joined_at=_ago(joined_ago),
            left_at=sa.func.now() if left else None,
        )
    )
    if beat_ago is not None:
        connection.execute(
            sa.insert(process_heartbeats).values(
                process="crawl",
                instance=f"{host}:{pid}",
                pid=pid,
                interval_seconds=interval,
                details={"spider": OS, "run_id": run_id},
                started_at=_ago(joined_ago),
                beat_at=_ago(beat_ago),
            )
        )


def _this_process() -> dict[str, Any]:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "pid_created": psutil.Process().create_time(),
    }


def _gone_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def _sweep(engine: Engine, settings: Config) -> list[int]:
    with engine.begin() as connection:
        return runs.sweep_abandoned(connection, unjoined_after=settings.redis_run_ttl_seconds)


def test_on_another_host_a_heartbeat_silent_for_three_intervals_is_a_gone_process(
    engine: Engine, settings: Config
) -> None:
    with engine.begin() as connection:
        silent = _open_run(connection)
        _member(connection, silent, pid=101, beat_ago=10 * 3 + 60)
        beating = _open_run(connection)
        _member(connection, beating, pid=102, beat_ago=0)
        slow = _open_run(connection)  # beats every 10 minutes: 5 minutes is nothing
        _member(connection, slow, pid=103, beat_ago=300, interval=600)
        never_beat = _open_run(connection)
        _member(connection, never_beat, pid=104, joined_ago=3600)
        just_joined = _open_run(connection)  # its first beat is on the way
        _member(connection, just_joined, pid=105, joined_ago=0)
    assert _sweep(engine, settings) == [silent, never_beat]
    assert _status(engine, silent) == ("failed", "abandoned")
    for run_id in (beating, slow, just_joined):
        assert _status(engine, run_id) == ("running", None)
    assert _sweep(engine, settings) == []  # closed once


def test_on_this_host_a_run_is_abandoned_as_soon_as_its_pid_is_gone(
    engine: Engine, settings: Config
) -> None:
    with engine.begin() as connection:
        alive = _open_run(connection)
        connection.execute(sa.insert(crawl_run_processes).values(run_id=alive, **_this_process()))
        gone = _open_run(connection)
        # Its heartbeat is fresh (it was killed a second ago): the pid decides on this host.
        _member(connection, gone, host=socket.gethostname(), pid=_gone_pid(), beat_ago=0)
        reused = _open_run(connection)  # the pid now belongs to a later process
        _member(connection, reused, host=socket.gethostname(), pid=os.getpid(), pid_created=1.0)
    assert _sweep(engine, settings) == [gone, reused]
    assert _status(engine, alive) == ("running", None)


def test_a_distributed_run_is_abandoned_only_when_none_of_its_processes_is_alive(
    engine: Engine, settings: Config
) -> None:
    here = socket.gethostname()
    with engine.begin() as connection:
        one_alive = _open_run(connection)
        _member(connection, one_alive, host=here, pid=_gone_pid())
        _member(connection, one_alive, pid=201, beat_ago=120)
        _member(connection, one_alive, pid=202, beat_ago=1)  # still working it, elsewhere
        all_gone = _open_run(connection)
        _member(connection, all_gone, host=here, pid=_gone_pid())
        _member(connection, all_gone, pid=203, beat_ago=120)
        _member(connection, all_gone, pid=204, beat_ago=0, left=True)  # left it to the others
    assert _sweep(engine, settings) == [all_gone]
    stats = _run(engine, all_gone)["stats"][runs.ABANDONED_STAT]
    assert len(stats["processes"]) == 3
    assert stats["swept_by"] == f"{here}:{os.getpid()}"
    with engine.begin() as connection:  # the last one elsewhere falls silent
        connection.execute(
            sa.update(process_heartbeats)
            .where(process_heartbeats.c.instance == f"{ELSEWHERE}:202")
            .values(beat_at=_ago(31))
        )
    assert _sweep(engine, settings) == [one_alive]


def test_a_run_nobody_joined_is_abandoned_once_its_announcement_expired(
    engine: Engine, settings: Config
) -> None:
    ttl = settings.redis_run_ttl_seconds
    with engine.begin() as connection:
        waiting = _open_run(connection, started_ago=ttl - 600)  # workers may still join it
        expired = _open_run(connection, started_ago=ttl + 60)
        # Older code records no process, but its crawls beat with the run id.
        beating = _open_run(connection, started_ago=ttl + 60)
        connection.execute(
            sa.insert(process_heartbeats).values(
                process="crawl",
                instance=f"{ELSEWHERE}:301",
                pid=301,
                interval_seconds=10,
                details={"run_id": beating},
            )
        )
    assert _sweep(engine, settings) == [expired]
    assert _status(engine, waiting) == ("running", None)
    assert _status(engine, beating) == ("running", None)


def test_a_run_closed_by_its_process_is_left_alone(engine: Engine, settings: Config) -> None:
    with engine.begin() as connection:
        run_id = _open_run(connection)
        runs.enter_run(connection, run_id)
        runs.finish_run(
            connection,
            run_id,
            status="finished",
            close_reason="finished",
            counters={"items_unchanged": 3},
            stats={},
        )
        left = connection.execute(sa.select(crawl_run_processes.c.left_at)).scalar_one()
    assert left is not None
    assert _sweep(engine, settings) == []
    assert _status(engine, run_id) == ("finished", "finished")


def test_the_scheduler_sweeps_every_minute(engine: Engine, settings: Config) -> None:
    now = [1000.0]
    sweep = runs.PeriodicSweep(engine, settings, clock=lambda: now[0])
    with engine.begin() as connection:
        run_id = _open_run(connection)
        _member(connection, run_id, pid=401, beat_ago=600)
    assert sweep() is None  # the scheduler swept as it opened the database
    now[0] += runs.SWEEP_SECONDS - 0.5
    assert sweep() is None
    assert _status(engine, run_id) == ("running", None)
    now[0] += 0.5
    assert sweep() == [run_id]
    assert sweep() is None


def test_the_standing_worker_and_the_audit_worker_sweep_as_they_start(
    engine: Engine, make_config: Callable[..., Config]
) -> None:
    settings = make_config(CHRISTMAS_REDIS_KEY_PREFIX=f"test-runs-{uuid.uuid4().hex[:8]}")
    settings = dataclasses.replace(settings, redis_url=REDIS_URL)
    with engine.begin() as connection:
        for_worker = _open_run(connection)
        _member(connection, for_worker, pid=501, beat_ago=600)
    worker = StandingWorker(settings)
    worker.stopping.set()  # start, then stop at once
    assert worker.run() == 0
    assert _status(engine, for_worker) == ("failed", "abandoned")

    with engine.begin() as connection:
        for_auditor = _open_run(connection)
        _member(connection, for_auditor, pid=502, beat_ago=600)
    auditor = AuditWorker(settings, [Subscriber("log", Destination("log"))])
    auditor.stop()  # start, then stop at once
    auditor.run()
    assert _status(engine, for_auditor) == ("failed", "abandoned")


# -- two runs of one vendor at once --------------------------------------------------------------


def test_two_runs_of_one_vendor_at_once_keep_their_own_counters_history_and_delisting(
    replica_reset: Replica, engine: Engine, database_url: str, tmp_path: Path
) -> None:
    """A manual crawl during a scheduled one, a price changed in between."""
    env = _env(database_url, tmp_path)
    arguments = {"base_url": replica_reset.base_urls[OS], "year": str(YEAR)}
    log = tmp_path / "earlier.log"
    _finish(_start_crawl(env, log, arguments), log)  # an earlier complete crawl of the year
    total = len(stored(engine, OS))
    assert total == len(expected_ids(replica_reset, OS, {YEAR}))

    replica_reset.set_latency(400, OS)
    scheduled_log, manual_log = tmp_path / "scheduled.log", tmp_path / "manual.log"
    scheduled = _start_crawl(env, scheduled_log, arguments)
    try:
        first = _until(lambda: _run_of(engine, scheduled.pid), "the scheduled crawl opened")
        with engine.connect() as holder:
            # Holding the scheduled run's row keeps it open (its close waits to write the row)
            # until the manual run has ended: the two runs are open at once, whatever the speed.
            status = holder.execute(
                sa.select(crawl_runs.c.status)
                .where(crawl_runs.c.id == first)
                .with_for_update(key_share=True)  # FOR NO KEY UPDATE: history rows still go in
            ).scalar_one()
            assert status == "running"
            # A product the scheduled run has stored changes price; the manual run sees it.
            seen = _until(
                lambda: [
                    row
                    for vendor_product_id, row in stored(engine, OS).items()
                    if vendor_product_id in _synced_since_run_start(engine, first)
                    and row["price"] is not None
                    and row["price"] > 1
                ],
                "the scheduled crawl stored a priced product",
            )
            changed = seen[0]
            new_price = changed["price"] - 1
            replica_reset.set_product(OS, changed["vendor_product_id"], price=str(new_price))
            manual = _start_crawl(env, manual_log, arguments)
            _finish(manual, manual_log)
            second = _run_of(engine, manual.pid)
            assert _status(engine, first) == ("running", None)
            holder.rollback()
        _finish(scheduled, scheduled_log)
    finally:
        if scheduled.poll() is None:
            scheduled.kill()
            scheduled.wait()

    scheduled_run, manual_run = _run(engine, first), _run(engine, second)
    for run in (scheduled_run, manual_run):
        assert (run["status"], run["close_reason"]) == ("finished", "finished")
        assert (run["items_created"], run["items_dropped"], run["errors"]) == (0, 0, 0)
        assert run["stats"]["delisted"] == 0
        assert run["stats"]["seen_per_year"] == {str(YEAR): total}
    counters = [
        (run["items_updated"], run["items_unchanged"]) for run in (scheduled_run, manual_run)
    ]
    assert counters == [(0, total), (1, total - 1)]
    with engine.connect() as connection:
        history = connection.execute(
            sa.select(
                product_changes.c.product_id,
                product_changes.c.kind,
                product_changes.c.field,
                product_changes.c.new_value,
                product_changes.c.crawl_run_id,
            ).where(product_changes.c.crawl_run_id.in_([first, second]))
        ).all()
    assert history == [(changed["id"], "changed", "price", str(new_price), second)]
    assert _delisted(engine) == (0, 0)
    now = stored(engine, OS)
    assert len(now) == total and now[changed["vendor_product_id"]]["price"] == new_price


def test_a_run_does_not_delist_what_it_stored_when_an_older_write_commits_after(
    replica_reset: Replica, engine: Engine
) -> None:
    """The race behind the test above, made deterministic on two connections: the manual run's
    batch began (its now()) before the scheduled run opened, but wrote the product after the
    scheduled run had stored it. The product must not look unseen to the scheduled run."""
    _seed_year(engine, replica_reset)
    item = dataclasses.asdict(replica_reset.expected_items(OS, {YEAR})[0])
    with engine.connect() as manual_batch:
        manual_batch.execute(sa.select(sa.func.now()))  # its transaction (and now()) begins
        with engine.begin() as connection:
            scheduled = _open_run(connection)
            runs.enter_run(connection, scheduled)
        with engine.begin() as connection:
            upsert_products(connection, [item], scheduled)  # the scheduled run stores it
        upsert_products(manual_batch, [item])  # the older write lands after
        manual_batch.commit()
    with engine.begin() as connection:
        since = runs.started_at(connection, scheduled)
        assert delisting.seen_per_year(connection, OS, [YEAR], since) == {YEAR: 1}
        delisted = delisting.delist_unseen(connection, OS, [YEAR], since, scheduled)
        total = len(replica_reset.expected_items(OS, {YEAR}))
        assert delisted == total - 1  # every other product of the year, not the one it stored


def _waiting_for_a_lock(engine: Engine) -> bool:
    with engine.connect() as connection:
        return bool(
            connection.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        )


def test_a_run_delisting_while_another_stores_the_same_products_does_not_deadlock(
    replica_reset: Replica, engine: Engine
) -> None:
    """The other run's batch locks products in key order; so must the delisting, or the two
    wait for each other (PostgreSQL then aborts one: a lost batch or a run never closed)."""
    low, high = sorted(
        (dataclasses.asdict(item) for item in replica_reset.expected_items(OS, {YEAR})[:2]),
        key=lambda item: item["vendor_product_id"],
    )
    for item in (high, low):  # on disk in the other order than the keys
        with engine.begin() as connection:
            upsert_products(connection, [item])
    with engine.begin() as connection:
        closing = _open_run(connection)
        since = runs.started_at(connection, closing)
    outcome: dict[str, Any] = {}

    def close_the_run() -> None:
        try:
            with engine.begin() as connection:
                outcome["delisted"] = delisting.delist_unseen(
                    connection, OS, [YEAR], since, closing
                )
        except sa.exc.DBAPIError as error:
            outcome["error"] = error

    with engine.connect() as other_run:
        upsert_products(other_run, [low])  # its batch holds the first product…
        closer = threading.Thread(target=close_the_run)
        closer.start()
        _until(lambda: _waiting_for_a_lock(engine), "the delisting waits for the batch")
        upsert_products(other_run, [high])  # …then takes the second
        other_run.commit()
    closer.join(WAIT)
    assert not closer.is_alive()
    assert "error" not in outcome, outcome.get("error")
    assert outcome["delisted"] == 0  # the other run stored both after the closing run began


def test_a_scheduled_crawl_swept_before_the_scheduler_recorded_it_gets_the_true_reason(
    replica_reset: Replica,
    engine: Engine,
    settings: Config,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The scheduler's runner records how its killed child ended, even when a sweep (say, a
    crawl starting meanwhile) closed the child's run as abandoned first."""
    for name, value in _env(database_url, tmp_path).items():
        monkeypatch.setenv(name, value)  # the children's environment
    monkeypatch.delenv("REDIS_URL", raising=False)
    replica_reset.set_latency(400, OS)
    runner = CrawlRunner(settings, engine, threading.Event())
    crawl = Crawl("test", OS, {"year": str(YEAR), "base_url": replica_reset.base_urls[OS]}, 3600)
    outcome: list[Outcome] = []
    thread = threading.Thread(target=lambda: outcome.append(runner.run(crawl)))
    thread.start()
    try:
        child = _until(
            lambda: [p for p in psutil.Process().children() if "crawl" in p.cmdline()],
            "the scheduled crawl started",
        )[0]
        run_id = _until(lambda: _run_of(engine, child.pid), "the crawl entered its run")
        with engine.connect() as holder:
            holder.execute(
                sa.select(crawl_runs.c.id).where(crawl_runs.c.id == run_id).with_for_update()
            )
            child.kill()  # the runner reaps it, then waits for the row to record its end
            _until(lambda: _waiting_for_a_lock(engine), "the runner records the crawl")
            assert runs.sweep_abandoned(holder, unjoined_after=3600) == [run_id]
            holder.commit()
        thread.join(WAIT)
    finally:
        for process in psutil.Process().children(recursive=True):
            if "crawl" in process.cmdline():
                process.kill()
        thread.join(WAIT)
    [result] = outcome
    reason = "ended without recording its end (killed by SIGKILL)"
    assert (result.status, result.reason) == ("failed", reason)
    assert _status(engine, run_id) == ("failed", reason)


def test_a_run_swept_by_mistake_is_closed_by_its_process_when_it_ends_after_all(
    engine: Engine, settings: Config
) -> None:
    """A process elsewhere that lost the database for longer than three beats is taken for
    gone; when it comes back and finishes, its own record stands."""
    with engine.begin() as connection:
        run_id = _open_run(connection)
        _member(connection, run_id, pid=601, beat_ago=120)
    assert _sweep(engine, settings) == [run_id]
    with engine.begin() as connection:
        runs.finish_run(
            connection,
            run_id,
            status="finished",
            close_reason="finished",
            counters={"items_unchanged": 5},
            stats={},
        )
    assert _status(engine, run_id) == ("finished", "finished")
    assert _run(engine, run_id)["items_unchanged"] == 5
