"""The fault matrix: each fault injected into real processes, each test asserting that nothing is
lost and that the system recovers without a human (README "Faults"). Crawls run as child
processes against the replica; servers a test breaks are its own (a private PostgreSQL, a
private redis-server), never the shared ones.

Two rows of the matrix are tested where the component lives: the audit worker killed during a
burst (tests/test_auditor.py::test_crash_mid_stream_repeats_only_the_batch_in_flight) and, at
the middleware level, a browser or chromedriver killed mid-render (tests/test_rendering.py::
test_killed_browser_is_restarted_and_the_render_succeeds).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from christmas_spiders.config import Config
from christmas_spiders.middlewares import RetryWaits
from christmas_spiders.processes import crawl_command
from christmas_spiders.scheduling import jobs
from christmas_spiders.storage import get_engine, upgrade
from christmas_spiders.storage.schema import crawl_runs, process_heartbeats, products

from .conftest import PROJECT_ROOT, PrivatePostgres
from .crawl import scrapy_crawl
from .replica.client import Replica
from .test_distributed import PrivateRedis, announce, expected_ids, stored
from .test_scheduler import (
    READY,
    SchedulerProcess,
    cli,
    crawling,
    offline_store,
    quiet_schedule,
)

HOOH, OS, HO = "hookedonhallmark_com", "ornament_shop_com", "hallmark_ornaments_com"
FAST = {"AUTOTHROTTLE_ENABLED": "0", "RETRY_BACKOFF_BASE": "0.05", "RETRY_BACKOFF_MAX": "1"}
WAIT = 90


def _env(database_url: str, tmp_path: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        DATABASE_URL=database_url,
        CHRISTMAS_DATA_DIR=str(tmp_path / "data"),
        PYTHONUNBUFFERED="1",
        **values,
    )
    return env


def _crawl(
    spider: str, env: dict[str, str], log: Path, arguments: dict[str, str], **settings: str
) -> subprocess.Popen[bytes]:
    command = crawl_command(spider, arguments, {**FAST, **settings})
    with log.open("wb") as output:
        return subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
        )


def _finish(popen: subprocess.Popen[bytes], log: Path, timeout: float = WAIT) -> str:
    try:
        popen.wait(timeout)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait()
        pytest.fail(f"the process did not end in {timeout:.0f} s:\n{log.read_text()[-4000:]}")
    return log.read_text()


def _until(condition: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(0.1)
    return value


def _runs(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(sa.select(crawl_runs).order_by(crawl_runs.c.id)).all()
    return [dict(row._mapping) for row in rows]


def _delisted(engine: Engine) -> int:
    with engine.connect() as connection:
        query = sa.select(sa.func.count()).where(products.c.delisted_at.is_not(None))
        return connection.execute(query).scalar_one()


# -- PostgreSQL restarted mid-crawl ------------------------------------------------------------


def test_postgres_restarted_mid_crawl_loses_nothing(
    private_postgres: PrivatePostgres, replica_reset: Replica, tmp_path: Path
) -> None:
    # Slow pages keep the crawl going for several seconds after its first item is stored, so
    # the server is stopped while items are still to come; it is started again only once a
    # write has failed, so the outage is always felt, however loaded the machine.
    replica_reset.set_latency(1000, OS)
    env = _env(
        private_postgres.url,
        tmp_path,
        CHRISTMAS_STORE_FLUSH_SECONDS="0.2",
        CHRISTMAS_DB_WRITE_ATTEMPTS="8",
        CHRISTMAS_DB_RETRY_BACKOFF_SECONDS="0.5",  # retries span a minute: a restart fits in it
    )
    config = Config(database_url=private_postgres.url)
    engine = get_engine(config)
    upgrade(engine, config)  # as the release phase does
    log = tmp_path / "crawl.log"
    crawl = _crawl(OS, env, log, {"base_url": replica_reset.base_urls[OS], "year": "2019"})
    try:
        _until(lambda: stored(engine, OS) or crawl.poll() is not None, "an item stored")
        engine.dispose()
        private_postgres.stop()  # every connection is cut; writes fail and are retried
        _until(
            lambda: "database write failed" in log.read_text() or crawl.poll() is not None,
            "a write failed",
        )
        private_postgres.start()
        output = _finish(crawl, log)
        assert crawl.returncode == 0, output[-4000:]
        assert "database write failed" in output  # the outage was felt…
        assert set(stored(engine, OS)) == expected_ids(replica_reset, OS, {2019})  # …and survived
        [run] = _runs(engine)
        assert (run["status"], run["items_dead_lettered"]) == ("finished", 0)
        assert not (tmp_path / "data" / "dead-letter").exists()
    finally:
        if crawl.poll() is None:
            crawl.kill()
            crawl.wait()
        engine.dispose()


# -- Redis restarted mid-crawl -----------------------------------------------------------------


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    folder = tmp_path / "redis"
    folder.mkdir()
    server = PrivateRedis(folder)
    server.start()
    yield server
    server.kill()


def test_redis_restarted_mid_crawl_the_worker_recovers_and_the_next_run_completes(
    private_redis: PrivateRedis,
    replica_reset: Replica,
    database_url: str,
    engine: Engine,
    tmp_path: Path,
) -> None:
    replica_reset.set_latency(150, HOOH)
    env = _env(
        database_url,
        tmp_path,
        REDIS_URL=private_redis.url,
        CHRISTMAS_REDIS_KEY_PREFIX=f"test-{uuid.uuid4().hex[:8]}",
        CHRISTMAS_WORKER_POLL_SECONDS="1",
        CHRISTMAS_CRAWL_IDLE_SECONDS="1",
        CHRISTMAS_STORE_FLUSH_SECONDS="0.2",
        CHRISTMAS_SHOP_MAX_CONCURRENCY="100",
        CHRISTMAS_SHOP_REQUESTS_PER_SECOND="10000",
    )
    log = tmp_path / "worker.log"
    settings = [item for key, value in FAST.items() for item in ("-s", f"{key}={value}")]
    with log.open("wb") as output:
        worker = subprocess.Popen(
            [sys.executable, "-m", "scrapy", "worker", *settings],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        _until(lambda: "standing worker up" in log.read_text(), "the worker is up")
        first = announce(HOOH, env, base_url=replica_reset.base_urls[HOOH])
        _until(lambda: len(stored(engine, HOOH)) >= 5, "the first run stores items")
        private_redis.kill()
        failed = _until(
            lambda: [r for r in _runs(engine) if r["id"] == first and r["status"] != "running"],
            "the first run is closed",
        )
        assert (failed[0]["status"], failed[0]["close_reason"]) == ("failed", "redis_unavailable")
        kept = len(stored(engine, HOOH))
        private_redis.start()  # a fresh, empty Redis, as after a restart without persistence
        _until(lambda: "Redis failed" in log.read_text(), "the worker noticed")
        # The next run (the scheduler's next sync) is joined by the same worker process.
        second = announce(HOOH, env, base_url=replica_reset.base_urls[HOOH])
        _until(
            lambda: [r for r in _runs(engine) if r["id"] == second and r["status"] == "finished"],
            "the next run finishes",
        )
        assert worker.poll() is None  # no human restarted anything
    finally:
        worker.send_signal(signal.SIGTERM)
        output = _finish(worker, log, 40)
    assert worker.returncode == 0, output[-4000:]
    assert kept >= 5  # what the first run stored stayed stored
    assert set(stored(engine, HOOH)) == expected_ids(replica_reset, HOOH)
    assert _delisted(engine) == 0


# -- chromedriver killed -------------------------------------------------------------------------


def _descendants(pid: int, name: str) -> list[psutil.Process]:
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        try:
            if child.name() == name and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def test_chromedriver_killed_mid_crawl_is_restarted_and_every_product_stored(
    replica_reset: Replica, database_url: str, engine: Engine, tmp_path: Path
) -> None:
    replica_reset.set_latency(300, HO)  # the grid's data arrives slowly: the kill lands mid-render
    env = _env(database_url, tmp_path)
    log = tmp_path / "crawl.log"
    arguments = {"base_url": replica_reset.base_urls[HO], "year": "2023-2025"}
    crawl = _crawl(HO, env, log, arguments)
    killed = 0
    try:
        drivers = _until(
            lambda: (
                _descendants(crawl.pid, "chromedriver")
                if _descendants(crawl.pid, "chrome") or _descendants(crawl.pid, "chromium")
                else crawl.poll() is not None
            ),
            "a browser is up",
        )
        assert crawl.poll() is None, log.read_text()[-4000:]
        for driver in drivers:
            driver.kill()
            killed += 1
        output = _finish(crawl, log)
    finally:
        if crawl.poll() is None:
            crawl.kill()
    assert killed == 1
    assert crawl.returncode == 0, output[-4000:]
    assert "'selenium/restarts': 1" in output or "'selenium/restarts': 2" in output
    assert set(stored(engine, HO)) == expected_ids(replica_reset, HO, {2023, 2024, 2025})
    [run] = _runs(engine)
    assert run["status"] == "finished" and run["browser_renders"] >= 3


# -- the scheduler killed while a crawl runs -----------------------------------------------------


def test_scheduler_killed_while_a_crawl_runs_the_crawl_is_recorded_and_the_next_run_happens(
    replica_reset: Replica, database_url: str, engine: Engine, tmp_path: Path
) -> None:
    config_path = tmp_path / "config.json"
    vendors = {vendor: {"base_url": url} for vendor, url in replica_reset.base_urls.items()}
    schedule = quiet_schedule(sync={"cron": quiet_schedule()["sync"]["cron"],
                                    "spread": "1h", "misfire_grace": "1d"})  # fmt: skip
    config_path.write_text(json.dumps({"vendors": vendors, "schedule": schedule}))
    env = _env(database_url, tmp_path, CONFIG_PATH=str(config_path))
    job_id = jobs.sync_id(OS, 2019)

    first = SchedulerProcess(env, tmp_path / "scheduler-1.log").start()
    second = None
    try:
        first.wait_for(READY)
        replica_reset.set_latency(200, OS)
        assert cli(env, "run", job_id).returncode == 0
        _until(lambda: crawling(engine), "the crawl runs")
        crawl = next(
            child
            for child in psutil.Process(first.pid).children(recursive=True)
            if "crawl" in child.cmdline()
        )
        first.kill()  # SIGKILL: out of memory, a crash; nothing is said or recorded
        # The crawl, in a session of its own, finishes and records its run itself.
        psutil.wait_procs([crawl], timeout=WAIT)
        [run] = _runs(engine)
        assert (run["status"], run["finished_at"] is not None) == ("finished", True)
        assert set(stored(engine, OS)) == expected_ids(replica_reset, OS, {2019})
        replica_reset.set_latency(0, OS)

        # Its next run comes due while the scheduler is down; the restarted scheduler runs it.
        config = _config(env)
        with offline_store(config) as control:
            due = control.get_job(job_id).next_run_time
            control.modify_job(job_id, next_run_time=due - timedelta(days=1))
        second = SchedulerProcess(env, tmp_path / "scheduler-2.log").start()
        second.wait_for(rf"{job_id}: crawl run \d+ finished")
        assert second.stop() == 0
    finally:
        first.kill()
        if second is not None:
            second.kill()
    assert [(r["arguments"], r["status"]) for r in _runs(engine)] == [
        ({"year": "2019"}, "finished"),
        ({"year": "2019"}, "finished"),
    ]


def _config(env: dict[str, str]) -> Config:
    from christmas_spiders import config

    return config.load(env)


# -- the shop answering 5xx, 429 and timeouts ----------------------------------------------------


def test_production_retries_outlast_a_one_minute_outage() -> None:
    """With the project's settings, the retries of one request span more than a minute even
    when every wait draws the shortest jitter (no Retry-After: our backoff alone)."""
    script = (
        "import json; from scrapy.utils.project import get_project_settings as g; s = g(); "
        "print(json.dumps({k: s[k] for k in ('RETRY_TIMES', 'RETRY_BACKOFF_BASE', "
        "'RETRY_BACKOFF_MAX', 'RETRY_AFTER_MAX')}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    values = json.loads(result.stdout.splitlines()[-1])
    waits = RetryWaits(
        base=float(values["RETRY_BACKOFF_BASE"]),
        maximum=float(values["RETRY_BACKOFF_MAX"]),
        retry_after_max=float(values["RETRY_AFTER_MAX"]),
    )
    span = sum(waits.wait(attempt, None, jitter=0.75) for attempt in range(1, 8))
    assert int(values["RETRY_TIMES"]) == 7 and span > 60  # 95.25 s


def test_shop_outage_of_5xx_429_and_timeouts_is_ridden_out(
    replica_reset: Replica, database_url: str, engine: Engine, tmp_path: Path
) -> None:
    # The outage is counted in requests, not seconds: after 20 requests served, the next seven
    # fail, whichever requests they hit — three 503 (`Retry-After: 0`), two 429
    # (`Retry-After: 1`), two never answered (the download times out). RETRY_TIMES is 7, so
    # even a request that draws all seven gets through: nothing may give up.
    replica_reset.faults(
        OS,
        {"kind": "503", "retry_after": 0, "times": 3},
        {"kind": "429", "retry_after": 1, "times": 2},
        {"kind": "timeout", "times": 2},
        skip=20,
    )
    env = _env(database_url, tmp_path, CHRISTMAS_STORE_FLUSH_SECONDS="0.2")
    log = tmp_path / "crawl.log"
    scaled = {"RETRY_BACKOFF_BASE": "0.1", "RETRY_BACKOFF_MAX": "6", "RETRY_TIMES": "7",
              "DOWNLOAD_TIMEOUT": "3"}  # fmt: skip
    crawl = _crawl(OS, env, log, {"base_url": replica_reset.base_urls[OS]}, **scaled)
    try:
        output = _finish(crawl, log)
    finally:
        if crawl.poll() is None:
            crawl.kill()
    assert crawl.returncode == 0, output[-4000:]
    assert replica_reset.stats(OS)["faulted"] == {"503": 3, "429": 2, "timeout": 2}
    [run] = _runs(engine)
    retries = {k: v for k, v in run["stats"].items() if k.startswith("retry/")}
    assert retries == {
        "retry/count": 7,
        "retry/reason_count/503 Service Unavailable": 3,
        "retry/reason_count/429 Unknown Status": 2,
        "retry/reason_count/scrapy.exceptions.DownloadTimeoutError": 2,
        "retry/retry_after_honoured": 5,
        "retry/retry_after_longest": 1,
    }
    assert set(stored(engine, OS)) == expected_ids(replica_reset, OS)
    assert run["status"] == "finished"
    assert _delisted(engine) == 0


# -- the dead-letter file path failing -----------------------------------------------------------


def test_dead_letter_path_failure_is_one_clear_error_and_the_next_crawl_stores_all(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    with engine.begin() as connection:  # every write of products is refused…
        connection.execute(
            sa.text(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$BEGIN RAISE EXCEPTION 'refused by the test'; END$$; "
                "CREATE TRIGGER refuse BEFORE INSERT ON products "
                "FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
        )
    data = tmp_path / "data"
    data.mkdir()
    (data / "dead-letter").write_text("")  # …and the dead-letter folder cannot be created
    env = _env(database_url, tmp_path)
    arguments = {"count": "5"}
    spiders = {"SPIDER_MODULES": "tests.spiders"}
    result = scrapy_crawl(OS, env=env, arguments=arguments, settings=spiders)
    assert result.returncode == 1, result.stdout[-4000:]
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert (
        "could not store 1 item(s) (refused by the test), and could not keep them in the "
        "dead-letter file"
    ) in output
    assert "FileExistsError" in output and "the next crawl fetches them again" in output
    assert "NOT STORED 5 item(s): the dead-letter file failed" in output
    [run] = _runs(engine)
    assert run["status"] == "failed"
    assert run["stats"]["store/lost"] == 5

    (data / "dead-letter").unlink()  # the disk is fixed, the database takes writes again
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TRIGGER refuse ON products"))
    again = scrapy_crawl(OS, env=env, arguments=arguments, settings=spiders)
    assert again.returncode == 0, again.stdout[-4000:]
    assert len(stored(engine, OS)) == 5


def test_a_crawl_leaves_a_stopped_heartbeat_with_its_run(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    result = scrapy_crawl(
        OS,
        env=_env(database_url, tmp_path),
        arguments={"count": "3"},
        settings={"SPIDER_MODULES": "tests.spiders"},
    )
    assert result.returncode == 0, result.stdout[-3000:]
    [run] = _runs(engine)
    with engine.connect() as connection:
        [beat] = connection.execute(sa.select(process_heartbeats)).all()
    assert beat.process == "crawl" and beat.stopped_at is not None
    assert beat.details["run_id"] == run["id"]
    assert beat.details["close_reason"] == "finished"
