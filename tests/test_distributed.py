"""Distributed crawling through Redis: real Redis, real PostgreSQL, the replica, `scrapy crawl`.

Each test writes under its own key prefix on the shared Redis (127.0.0.1:6379, or
TEST_REDIS_URL) and deletes those keys afterwards; tests that kill Redis start a private
redis-server of their own on a free port. Crawls are child processes, as users run them.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from christmas_spiders.distributed import keys
from christmas_spiders.storage.schema import crawl_runs, products

from .conftest import PROJECT_ROOT
from .crawl import scrapy_crawl
from .replica.client import Replica

HOOH = "hookedonhallmark_com"
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# Politeness off for speed (AutoThrottle, and a shared budget far above what a test sends).
FAST = {"AUTOTHROTTLE_ENABLED": "0", "RETRY_BACKOFF_BASE": "0.05", "RETRY_BACKOFF_MAX": "1"}
FAST_ENV = {
    "CHRISTMAS_CRAWL_IDLE_SECONDS": "1",
    "CHRISTMAS_SHOP_MAX_CONCURRENCY": "100",
    "CHRISTMAS_SHOP_REQUESTS_PER_SECOND": "10000",
}
PRODUCT_PATH = re.compile(r"GET (/[^ ]*_p_\d+\.html) HTTP")  # werkzeug colours non-200 lines
# With the products table locked (products_locked), a crawl with these stops taking requests as
# soon as a product page of its own waits to be stored: its first item waits for the table (a
# batch of one), and its engine takes nothing while a response is in its scraper (a scraper
# slot smaller than one response). So it holds a few product pages, leased, until the lock goes.
HOLD_ENV = {"CHRISTMAS_STORE_BATCH_SIZE": "1"}
HOLD = {"CONCURRENT_REQUESTS": "2", "SCRAPER_SLOT_MAX_ACTIVE_SIZE": "1"}


# -- fixtures --------------------------------------------------------------------------------------


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own on the shared Redis; its keys are deleted afterwards."""
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    yield prefix
    server = redis.Redis.from_url(REDIS_URL)
    for key in server.scan_iter(match=f"{prefix}:*", count=1000):
        server.delete(key)
    server.close()


@pytest.fixture
def shared_redis() -> Iterator[redis.Redis]:
    server = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    yield server
    server.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrivateRedis:
    """A redis-server of this test's own (never the shared one), which it may kill."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        self.popen = subprocess.Popen(
            [
                *(binary, "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.folder)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "the private redis-server did not start"
                time.sleep(0.05)
        client.close()

    def kill(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    folder = tmp_path / "redis"
    folder.mkdir()
    server = PrivateRedis(folder)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def redis_env(
    database_url: str, tmp_path: Path, redis_prefix: str
) -> Callable[..., dict[str, str]]:
    """The environment of a distributed crawl of this test; keyword arguments override."""

    def make(**values: str) -> dict[str, str]:
        env = {
            "DATABASE_URL": database_url,
            "CHRISTMAS_DATA_DIR": str(tmp_path / "data"),
            "REDIS_URL": REDIS_URL,
            "CHRISTMAS_REDIS_KEY_PREFIX": redis_prefix,
            **FAST_ENV,
        }
        env.update(values)
        return env

    return make


# -- helpers ---------------------------------------------------------------------------------------


def _command(
    spider: str, arguments: dict[str, str], settings: dict[str, str], verb: str = "crawl"
) -> list[str]:
    command = [sys.executable, "-m", "scrapy", verb, spider]
    for key, value in settings.items():
        command += ["-s", f"{key}={value}"]
    for key, value in arguments.items():
        command += ["-a", f"{key}={value}"]
    return command


def _child_env(env: dict[str, str]) -> dict[str, str]:
    child = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    child.update(env)
    return child


def start_crawl(
    spider: str,
    env: dict[str, str],
    log: Path,
    arguments: dict[str, str] | None = None,
    settings: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """`scrapy crawl` in the background, its output in `log`."""
    with open(log, "wb") as output:
        return subprocess.Popen(
            _command(spider, arguments or {}, {**FAST, **(settings or {})}),
            cwd=PROJECT_ROOT,
            env=_child_env(env),
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def announce(spider: str, env: dict[str, str], **arguments: str) -> int:
    result = subprocess.run(
        _command(spider, arguments, {}, verb="announce"),
        cwd=PROJECT_ROOT,
        env=_child_env(env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return int(result.stdout.strip().splitlines()[-1])


def crawl(spider: str, env: dict[str, str], **arguments: str) -> subprocess.CompletedProcess[str]:
    return scrapy_crawl(spider, env=env, arguments=arguments, settings=FAST, timeout=120)


def wait(popen: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> str:
    try:
        popen.wait(timeout)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait()
        pytest.fail(f"the crawl did not end in {timeout:.0f} s:\n{log.read_text()[-4000:]}")
    return log.read_text()


def stored(engine: Engine, vendor: str) -> dict[str, dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(sa.select(products).where(products.c.vendor == vendor))
        return {row.vendor_product_id: dict(row._mapping) for row in rows}


def run_row(engine: Engine, run_id: int | None = None) -> dict[str, Any]:
    query = sa.select(crawl_runs).order_by(crawl_runs.c.id.desc())
    if run_id is not None:
        query = query.where(crawl_runs.c.id == run_id)
    with engine.connect() as connection:
        return dict(connection.execute(query).first()._mapping)


def stat(output: str, name: str) -> int:
    found = re.search(rf"'{re.escape(name)}': (\d+)", output)
    return int(found.group(1)) if found else 0


def product_requests(log_path: Path) -> collections.Counter[str]:
    """Product pages requested, by path, from the replica's access log."""
    return collections.Counter(PRODUCT_PATH.findall(log_path.read_text()))


def expected_ids(replica: Replica, vendor: str, years: set[int] | None = None) -> set[str]:
    return {item.vendor_product_id for item in replica.expected_items(vendor, years)}


def run_keys(server: redis.Redis, prefix: str) -> list[str]:
    return sorted(server.scan_iter(match=f"{prefix}:run:*", count=1000))


@contextlib.contextmanager
def products_locked(engine: Engine) -> Iterator[None]:
    """No crawl can store a product until the block ends (so none releases what it took)."""
    with engine.begin() as connection:
        connection.execute(sa.text("LOCK TABLE products IN EXCLUSIVE MODE"))
        yield


def leased_urls(server: redis.Redis, run: keys.RunKeys) -> dict[str, set[str]]:
    """The URLs of the requests leased in the run, by worker id (lease id = <worker>#<n>)."""
    by_worker: dict[str, set[str]] = collections.defaultdict(set)
    for lease, entry in server.hgetall(run.leased).items():
        _, request = entry.split(" ", 1)  # "<queue score> <request JSON>"
        by_worker[lease.rsplit("#", 1)[0]].add(json.loads(request)["url"])
    return by_worker


def item_pages(replica: Replica) -> set[str]:
    """The URLs of the product pages that yield an item."""
    return {item.link for item in replica.expected_items(HOOH)}


def leased_products(
    server: redis.Redis, run: keys.RunKeys, replica: Replica
) -> dict[str, set[str]]:
    """The product pages that yield an item leased in the run, by worker id."""
    links = item_pages(replica)
    held = {worker: urls & links for worker, urls in leased_urls(server, run).items()}
    return {worker: urls for worker, urls in held.items() if urls}


def wait_for(check: Callable[[], Any], processes: list[subprocess.Popen[bytes]]) -> Any:
    """What `check` returns once it is true; fails if a process exits, or after 90 s."""
    deadline = time.monotonic() + 90
    while not (found := check()):
        assert all(process.poll() is None for process in processes), "a worker exited"
        assert time.monotonic() < deadline, "the workers never got there in 90 s"
        time.sleep(0.05)
    return found


def wait_until_each_holds_products(
    server: redis.Redis,
    run: keys.RunKeys,
    replica: Replica,
    processes: list[subprocess.Popen[bytes]],
) -> dict[str, set[str]]:
    """Wait until two workers each hold (leased) a product page that yields an item; with the
    products locked and HOLD, they keep it until the lock goes."""
    return wait_for(
        lambda: held if len(held := leased_products(server, run, replica)) >= 2 else None,
        processes,
    )


def worker_pid(worker: str) -> int:
    """The pid in a worker id, <host>:<pid>:<random>."""
    return int(worker.rsplit(":", 2)[1])


# -- several workers, one run ----------------------------------------------------------------------


def test_two_workers_share_one_run_and_fetch_each_page_once(
    start_replica: Callable[..., Replica],
    redis_env: Callable[..., dict[str, str]],
    shared_redis: redis.Redis,
    redis_prefix: str,
    engine: Engine,
    tmp_path: Path,
) -> None:
    """Both do real work however fast either starts: until each holds a product page, the
    products are locked, and a worker holding one takes nothing more (HOLD)."""
    replica = start_replica(access_log=True)
    env = redis_env(**HOLD_ENV)
    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
    with products_locked(engine):
        run_id = announce(HOOH, env, base_url=replica.base_urls[HOOH])
        workers = [start_crawl(HOOH, env, log, {"run_id": str(run_id)}, HOLD) for log in logs]
        run = keys.RunKeys(redis_prefix, HOOH, run_id)
        wait_until_each_holds_products(shared_redis, run, replica, workers)
    outputs = [wait(worker, log) for worker, log in zip(workers, logs, strict=True)]

    assert [worker.returncode for worker in workers] == [0, 0], outputs[0][-3000:]
    assert set(stored(engine, HOOH)) == expected_ids(replica, HOOH)
    row = run_row(engine, run_id)
    assert (row["status"], row["items_created"]) == ("finished", len(expected_ids(replica, HOOH)))
    requested = product_requests(replica.process.log_path)
    assert len(requested) == len(replica.shop(HOOH))  # every product page of the shop …
    assert set(requested.values()) == {1}  # … exactly once between the two workers
    scraped = [stat(output, "item_scraped_count") for output in outputs]
    assert min(scraped) >= 1, scraped  # both did real work
    assert sum(scraped) == len(expected_ids(replica, HOOH))


def test_a_worker_killed_mid_crawl_loses_nothing_another_finishes_its_requests(
    replica: Replica,
    redis_env: Callable[..., dict[str, str]],
    shared_redis: redis.Redis,
    redis_prefix: str,
    engine: Engine,
    tmp_path: Path,
) -> None:
    """SIGKILL a worker holding product pages it has parsed but whose items are not stored yet
    (the products are locked): they stay leased, the leases expire, and the other worker
    crawls them again and completes the run."""
    env = redis_env(CHRISTMAS_CRAWL_LEASE_SECONDS="3", CHRISTMAS_CRAWL_WORKER_TIMEOUT_SECONDS="3")
    with products_locked(engine):
        run_id = announce(HOOH, env, base_url=replica.base_urls[HOOH])
        logs, workers = {}, {}
        for name in ("a", "b"):
            log = tmp_path / f"worker-{name}.log"
            worker = start_crawl(HOOH, env, log, {"run_id": str(run_id)})
            logs[worker.pid], workers[worker.pid] = log, worker
        run = keys.RunKeys(redis_prefix, HOOH, run_id)

        def victim() -> tuple[str, set[str]] | None:
            """Both workers in the run, and every product page parsed and still leased (none
            can be stored): the worker holding the most of them."""
            held = leased_products(shared_redis, run, replica)
            everything = sum(map(len, held.values())) == len(item_pages(replica))
            if shared_redis.zcard(run.workers) < 2 or not everything:
                return None
            return max(held.items(), key=lambda worker_pages: len(worker_pages[1]))

        killed, pages = wait_for(victim, list(workers.values()))
        workers[worker_pid(killed)].kill()
        workers.pop(worker_pid(killed)).wait()
    (survivor,) = workers.values()
    output = wait(survivor, logs[survivor.pid])

    assert survivor.returncode == 0, output[-3000:]
    assert "stopped reporting while busy: presumed dead" in output
    state = shared_redis.hgetall(run.state)
    assert state["lost"] == "1"
    assert int(state["reclaimed"]) >= len(pages)  # its pages went back to the queue …
    assert set(stored(engine, HOOH)) == expected_ids(replica, HOOH)  # … and were stored
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(sa.func.count()).select_from(products).where(products.c.vendor == HOOH)
        ).scalar_one()
    assert rows == len(expected_ids(replica, HOOH))  # no product twice
    assert run_row(engine, run_id)["status"] == "finished"
    assert run_keys(shared_redis, redis_prefix) == [run.seen, run.state]  # nothing leased


def test_a_worker_joining_takes_the_runs_arguments(
    replica: Replica, redis_env: Callable[..., dict[str, str]], tmp_path: Path
) -> None:
    env = redis_env()
    run_id = announce(HOOH, env, base_url=replica.base_urls[HOOH], year="2019")
    result = crawl(HOOH, env, run_id=str(run_id), year="2018")
    assert result.returncode != 0
    assert f"crawl run {run_id} was started with arguments" in result.stderr
    assert f"give only -a run_id={run_id}" in result.stderr


def test_a_worker_joining_a_closed_run_leaves_it_alone(
    replica: Replica, redis_env: Callable[..., dict[str, str]], engine: Engine
) -> None:
    env = redis_env()
    first = crawl(HOOH, env, base_url=replica.base_urls[HOOH], year="2019")
    assert first.returncode == 0, first.stdout[-3000:]
    before = run_row(engine)
    late = crawl(HOOH, env, run_id=str(before["id"]))
    assert late.returncode == 0, late.stdout[-3000:]
    assert "is already closed in Redis" in late.stdout
    after = run_row(engine)
    assert (after["requests"], after["status"]) == (before["requests"], "finished")


# -- dedup per run ---------------------------------------------------------------------------------


def test_the_next_run_refetches_everything_and_every_run_key_expires(
    replica_reset: Replica,
    redis_env: Callable[..., dict[str, str]],
    shared_redis: redis.Redis,
    redis_prefix: str,
) -> None:
    replica = replica_reset
    env = redis_env(CHRISTMAS_REDIS_RUN_TTL_SECONDS="3600")
    first = crawl(HOOH, env, base_url=replica.base_urls[HOOH], year="2019")
    assert first.returncode == 0, first.stdout[-3000:]
    fetched_first = replica.stats(HOOH)["by_kind"]["product"]
    first_run = int(re.search(r"started crawl run (\d+)", first.stdout).group(1))
    assert keys.RunKeys(redis_prefix, HOOH, first_run).seen in run_keys(shared_redis, redis_prefix)

    replica.reset(HOOH)
    second = crawl(HOOH, env, base_url=replica.base_urls[HOOH], year="2019")
    assert second.returncode == 0, second.stdout[-3000:]
    assert replica.stats(HOOH)["by_kind"]["product"] == fetched_first > 0

    # Every key the runs left expires: a run's (queue, dedup set, state) within the run TTL of
    # its last activity; the shared cache and budget keys on their own TTLs.
    ttls = {key: shared_redis.ttl(key) for key in shared_redis.scan_iter(f"{redis_prefix}:*")}
    assert all(ttl > 0 for ttl in ttls.values()), ttls
    assert all(0 < ttls[key] <= 3600 for key in run_keys(shared_redis, redis_prefix)), ttls
    others = set(ttls) - set(run_keys(shared_redis, redis_prefix))
    assert all(":cache:" in key or ":shop:" in key for key in others), others


# -- the year-link cache ---------------------------------------------------------------------------


def _year_link_key(prefix: str, year: int) -> str:
    return keys.year_link(prefix, HOOH, year)


def test_year_link_cache_miss_reads_the_index_and_fills_the_cache(
    replica_reset: Replica,
    redis_env: Callable[..., dict[str, str]],
    shared_redis: redis.Redis,
    redis_prefix: str,
) -> None:
    replica = replica_reset
    env = redis_env(CHRISTMAS_YEAR_LINKS_TTL_SECONDS="5000")
    result = crawl(HOOH, env, base_url=replica.base_urls[HOOH], year="2019")
    assert result.returncode == 0, result.stdout[-3000:]
    assert replica.stats(HOOH)["by_kind"]["index"] == 1
    assert stat(result.stdout, "year_links/cache_miss") == 1
    assert 4900 < shared_redis.ttl(_year_link_key(redis_prefix, 2019)) <= 5000
    assert shared_redis.get(_year_link_key(redis_prefix, 2019)).startswith('["http')


def test_a_cached_year_is_crawled_without_the_index(
    replica_reset: Replica,
    redis_env: Callable[..., dict[str, str]],
    shared_redis: redis.Redis,
    redis_prefix: str,
    engine: Engine,
) -> None:
    replica = replica_reset
    links = [
        replica.url(HOOH, category.path)
        for category in replica.shop(HOOH).year_categories()
        if category.year == 2019
    ]
    shared_redis.set(_year_link_key(redis_prefix, 2019), f'["{links[0]}"]', ex=600)
    result = crawl(HOOH, redis_env(), base_url=replica.base_urls[HOOH], year="2019")
    assert result.returncode == 0, result.stdout[-3000:]
    assert replica.stats(HOOH)["by_kind"].get("index", 0) == 0
    assert stat(result.stdout, "year_links/cache_hit") == 1
    assert set(stored(engine, HOOH)) == expected_ids(replica, HOOH, {2019})


def test_a_stale_cached_link_is_dropped_and_refreshed_from_the_index(
    replica_reset: Replica,
    redis_env: Callable[..., dict[str, str]],
    shared_redis: redis.Redis,
    redis_prefix: str,
    engine: Engine,
) -> None:
    replica = replica_reset
    stale = replica.url(HOOH, "/2019-Hallmark-Ornaments_c_99999.html")  # answers 404
    shared_redis.set(_year_link_key(redis_prefix, 2019), f'["{stale}"]', ex=600)
    result = crawl(HOOH, redis_env(), base_url=replica.base_urls[HOOH], year="2019")
    assert result.returncode == 0, result.stdout[-3000:]
    assert stat(result.stdout, "year_links/stale") == 1
    assert replica.stats(HOOH)["by_kind"]["index"] == 1
    assert stale not in shared_redis.get(_year_link_key(redis_prefix, 2019))
    assert set(stored(engine, HOOH)) == expected_ids(replica, HOOH, {2019})
    assert run_row(engine)["status"] == "finished"


# -- Redis failures --------------------------------------------------------------------------------


def test_redis_lost_mid_crawl_fails_the_run_cleanly_and_a_rerun_completes(
    replica_reset: Replica,
    private_redis: PrivateRedis,
    redis_env: Callable[..., dict[str, str]],
    engine: Engine,
    tmp_path: Path,
) -> None:
    replica = replica_reset
    replica.set_latency(150, HOOH)
    env = redis_env(REDIS_URL=private_redis.url, CHRISTMAS_STORE_FLUSH_SECONDS="0.2")
    log = tmp_path / "crawl.log"
    worker = start_crawl(
        HOOH, env, log, {"base_url": replica.base_urls[HOOH]}, {"CONCURRENT_REQUESTS": "2"}
    )
    deadline = time.monotonic() + 60
    while len(stored(engine, HOOH)) < 5:  # some items stored: the crawl is well under way
        assert time.monotonic() < deadline and worker.poll() is None, log.read_text()[-3000:]
        time.sleep(0.1)
    private_redis.kill()
    output = wait(worker, log, timeout=60)

    assert worker.returncode == 1, output[-3000:]
    assert "lost Redis during crawl run" in output
    run = run_row(engine)
    assert (run["status"], run["close_reason"]) == ("failed", "redis_unavailable")
    assert run["items_dead_lettered"] == 0
    rows = stored(engine, HOOH)
    assert len(rows) == run["items_created"] == stat(output, "item_scraped_count")  # none lost
    assert set(rows) < expected_ids(replica, HOOH)

    private_redis.start()  # a fresh, empty Redis: the re-run does the whole work again
    again = crawl(HOOH, env, base_url=replica.base_urls[HOOH])
    assert again.returncode == 0, again.stdout[-3000:]
    assert set(stored(engine, HOOH)) == expected_ids(replica, HOOH)
    assert run_row(engine)["status"] == "finished"


def test_redis_down_at_start_refuses_to_start(
    replica_reset: Replica, redis_env: Callable[..., dict[str, str]], engine: Engine
) -> None:
    closed = f"redis://127.0.0.1:{_free_port()}/0"
    result = crawl(HOOH, redis_env(REDIS_URL=closed), base_url=replica_reset.base_urls[HOOH])
    assert result.returncode != 0
    assert f"cannot start the crawl: Redis at {closed} (REDIS_URL) is unreachable" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
    assert replica_reset.stats(HOOH)["total"] == 0
    with engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(crawl_runs)).scalar() == 0


def test_a_crawl_without_redis_uses_scrapys_own_scheduler(
    replica: Replica, database_url: str, tmp_path: Path
) -> None:
    item = replica.expected_items(HOOH)[0]
    result = scrapy_crawl(
        HOOH,
        env={"DATABASE_URL": database_url, "CHRISTMAS_DATA_DIR": str(tmp_path / "data")},
        arguments={"url": item.link, "base_url": replica.base_urls[HOOH]},
        settings=FAST,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "scheduler/enqueued/memory" in result.stdout
    assert "redis" not in result.stdout.lower()


# -- the standing worker ---------------------------------------------------------------------------


def test_a_standing_worker_joins_an_announced_run_and_leaves_it_to_a_sibling_on_sigterm(
    start_replica: Callable[..., Replica],
    redis_env: Callable[..., dict[str, str]],
    shared_redis: redis.Redis,
    redis_prefix: str,
    engine: Engine,
    tmp_path: Path,
) -> None:
    """Both are at work when the standing worker gets SIGTERM (each holds product pages, HOLD),
    and the sibling is frozen (SIGSTOP) until the standing worker has stopped: it is still in
    the run when the standing worker's crawl leaves, and then finishes the run alone."""
    replica = start_replica(access_log=True)
    env = redis_env(CHRISTMAS_WORKER_POLL_SECONDS="1", **HOLD_ENV)
    worker_log, sibling_log = tmp_path / "standing.log", tmp_path / "sibling.log"
    options = [item for key, value in {**FAST, **HOLD}.items() for item in ("-s", f"{key}={value}")]
    with open(worker_log, "wb") as output:
        standing = subprocess.Popen(
            [sys.executable, "-m", "scrapy", "worker", *options],
            cwd=PROJECT_ROOT,
            env=_child_env(env),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    sibling: subprocess.Popen[bytes] | None = None
    try:
        with products_locked(engine):
            run_id = announce(HOOH, env, base_url=replica.base_urls[HOOH])
            sibling = start_crawl(HOOH, env, sibling_log, {"run_id": str(run_id)}, HOLD)
            run = keys.RunKeys(redis_prefix, HOOH, run_id)
            wait_until_each_holds_products(shared_redis, run, replica, [standing, sibling])
            sibling.send_signal(signal.SIGSTOP)
            standing.send_signal(signal.SIGTERM)
        standing_output = wait(standing, worker_log, timeout=60)
        sibling.send_signal(signal.SIGCONT)
        sibling_output = wait(sibling, sibling_log)
    finally:
        for process in (standing, sibling):
            if process is not None and process.poll() is None:
                process.kill()
    assert standing.returncode == 0, standing_output[-3000:]
    assert "standing worker stopped" in standing_output
    assert "other worker(s) still at work" in standing_output  # it left, the sibling went on
    assert sibling.returncode == 0, sibling_output[-3000:]
    assert set(stored(engine, HOOH)) == expected_ids(replica, HOOH)
    assert run_row(engine, run_id)["status"] == "finished"
    assert set(product_requests(replica.process.log_path).values()) == {1}


def test_the_standing_worker_idles_and_stops_on_sigterm(
    redis_env: Callable[..., dict[str, str]],
    shared_redis: redis.Redis,
    redis_prefix: str,
    tmp_path: Path,
) -> None:
    log = tmp_path / "standing.log"
    with open(log, "wb") as output:
        standing = subprocess.Popen(
            [sys.executable, "-m", "scrapy", "worker"],
            cwd=PROJECT_ROOT,
            env=_child_env(redis_env()),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        # Idling: subscribed to the announcements (its SIGTERM handler is installed before).
        channel = keys.announcement_channel(redis_prefix)
        deadline = time.monotonic() + 60
        while dict(shared_redis.pubsub_numsub(channel))[channel] < 1:
            assert standing.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
        standing.send_signal(signal.SIGTERM)
        output_text = wait(standing, log, timeout=60)
    finally:
        if standing.poll() is None:
            standing.kill()
    assert standing.returncode == 0, output_text[-3000:]
    assert "standing worker stopped" in output_text
    assert not re.search(r"joining crawl run \w+:\d+", output_text)  # it only idled


# -- the request queue -----------------------------------------------------------------------------


def test_a_distributed_crawl_renders_year_grids_through_the_queue(
    replica: Replica, redis_env: Callable[..., dict[str, str]], engine: Engine
) -> None:
    vendor = "hallmark_ornaments_com"
    result = crawl(vendor, redis_env(), base_url=replica.base_urls[vendor], year="2019")
    assert result.returncode == 0, result.stdout[-3000:]
    assert set(stored(engine, vendor)) == expected_ids(replica, vendor, {2019})
    assert run_row(engine)["browser_renders"] >= 1  # meta["render"] came back from Redis


def test_render_requests_survive_the_queue_round_trip(
    shared_redis: redis.Redis, redis_prefix: str
) -> None:
    from scrapy.utils.test import get_crawler

    from christmas_spiders import config
    from christmas_spiders.distributed.request_scheduler import RunQueue
    from christmas_spiders.distributed.shared_run import CrawlRun
    from christmas_spiders.spiders.hallmark_ornaments_com import (
        GRID_RENDER,
        HallmarkOrnamentsSpider,
    )

    settings = {"RENDER_YEAR_GRIDS": True, "CHRISTMAS_CONFIG": config.load({})}
    crawler = get_crawler(HallmarkOrnamentsSpider, settings)
    spider = HallmarkOrnamentsSpider.from_crawler(crawler)
    request = spider.category_request("http://127.0.0.1:9/2019_c_300.html", 2019)
    assert request.meta["render"] == GRID_RENDER
    server = redis.Redis.from_url(REDIS_URL)
    run = CrawlRun(
        server,
        keys.RunKeys(redis_prefix, spider.name, 1),
        ttl_seconds=60,
        worker_timeout_seconds=60,
    )
    queue = RunQueue(server, spider, run)
    queue.push(request)
    popped = queue.pop()
    server.close()
    assert popped.meta == request.meta
    assert popped.meta["render"] == GRID_RENDER
    assert (popped.url, popped.callback, popped.cb_kwargs) == (
        request.url,
        spider.parse_category,
        {"year": 2019, "page": 1},
    )


# -- quick syncs -----------------------------------------------------------------------------------


def test_an_announced_quick_sync_is_worked_by_two_workers(
    replica_reset: Replica,
    redis_env: Callable[..., dict[str, str]],
    engine: Engine,
    tmp_path: Path,
) -> None:
    """`scrapy announce <vendor> -a mode=quick`: the workers take the mode from the run, read the
    listings, and between them read each page that must be read once (christmas_spiders.quick)."""
    replica, env = replica_reset, redis_env()
    origin = replica.base_urls[HOOH]
    assert crawl(HOOH, env, base_url=origin).returncode == 0  # the full sync it starts from
    before = stored(engine, HOOH)
    ordinary = [
        item.vendor_product_id
        for item in replica.expected_items(HOOH)
        if item.price is not None and item.regular_price is None
    ]
    # The three read last: the refresh takes the oldest page, which must not be a changed one.
    read_order = sorted(ordinary, key=lambda key: (before[key]["page_read_at"], before[key]["id"]))
    changed = read_order[-3:]
    for key in changed:
        replica.set_product(HOOH, key, price=str(before[key]["price"] + 1))
    served = len(replica.requests(HOOH, "product"))

    run_id = announce(HOOH, env, base_url=origin, mode="quick", refresh="spread")
    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
    workers = [start_crawl(HOOH, env, log, {"run_id": str(run_id)}) for log in logs]
    outputs = [wait(worker, log) for worker, log in zip(workers, logs, strict=True)]

    assert [worker.returncode for worker in workers] == [0, 0], outputs[0][-3000:]
    row = run_row(engine, run_id)
    assert (row["status"], row["arguments"]["mode"]) == ("finished", "quick")
    assert row["stats"]["quick/refresh/rule"] == "spread"  # the run's argument, for both workers
    after = stored(engine, HOOH)
    assert {key for key in after if after[key]["price"] != before[key]["price"]} == set(changed)
    assert all(product["delisted_at"] is None for product in after.values())
    assert all(product["last_synced_at"] >= row["started_at"] for product in after.values())
    pages = replica.requests(HOOH, "product")[served:]
    assert len(pages) == len(set(pages))  # each page once between the two workers
    read = {key for key in after if after[key]["page_read_at"] >= row["started_at"]}
    assert set(changed) <= read
    assert len(read) == len(changed) + 1  # and one page due for its refresh (one quota)
