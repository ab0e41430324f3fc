"""Figure 5 — scale-out: one crawl run of a 20,000-product shop worked by 1, 2 and 4 scrapy-redis
workers.

    python -m bench.crawl_workers [--quick]

For each worker count, one crawl run is announced (`announce_run`) and that many
`scrapy crawl hookedonhallmark_com -a run_id=…` processes are started at once, each under
bench.procmon. The per-shop budget (`shop_max_concurrency`, `shop_requests_per_second`) and
Scrapy's per-domain limit are raised far above what the workers can send, so the workers, not
politeness, are the bound; `crawl_idle_seconds` is 2 s. Figures:

* wall time from the workers' start to the last one's exit (start-up and the idle end
  included), and the speed-up against one worker;
* where the machine's CPU went meanwhile: the workers' own CPU seconds (OS accounting), the
  replica's, and everything else (PostgreSQL, Redis, other users of the machine), as a share
  of the cores × wall time available — which says what bounds the crawl.

Redis keys live under a scratch prefix, deleted afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import psutil
import redis
import sqlalchemy as sa

from bench.constants import HOOH, PROJECT_ROOT, SHORT, UNTHROTTLED
from bench.crawls import process_cpu_seconds, scrapy_command
from bench.report import Row, log, markdown
from bench.services import child_env
from bench.session import Session, standalone
from christmas_spiders import config
from christmas_spiders.distributed.announce import announce_run
from christmas_spiders.storage import database
from christmas_spiders.storage.schema import crawl_runs, products
from tests.replica.catalog import generate

FIGURE = "5"
GOAL = 1.7
UNBOUNDED = {
    "CHRISTMAS_SHOP_MAX_CONCURRENCY": "1000",
    "CHRISTMAS_SHOP_REQUESTS_PER_SECOND": "100000",
}
SCRAPY_SETTINGS = {**UNTHROTTLED, "LOG_LEVEL": "WARNING"}
IDLE_SECONDS = "2"


def _busy_seconds(before: psutil._common.scputimes, after: psutil._common.scputimes) -> float:
    """CPU seconds the whole machine spent not idle between two cpu_times() readings."""
    idle = (after.idle - before.idle) + (getattr(after, "iowait", 0) - getattr(before, "iowait", 0))
    total = sum(after) - sum(before)
    return total - idle


def run_workers(
    session: Session, settings: config.Config, vendor: str, workers: int, env: dict[str, str]
) -> dict[str, object]:
    engine = database.get_engine(settings)
    with engine.begin() as connection:
        connection.execute(sa.text("TRUNCATE products, product_changes CASCADE"))
    process = session.replica()
    run_id = announce_run(settings, vendor, {"base_url": process.base_urls[vendor]})
    command = scrapy_command(vendor, {"run_id": str(run_id)}, SCRAPY_SETTINGS)
    replica_before = process_cpu_seconds(process.pid)
    machine_before = psutil.cpu_times()
    began = time.perf_counter()
    children, reports, logs = [], [], []
    for number in range(workers):
        report = session.work / f"workers{workers}-run{run_id}-{number}.procmon.json"
        log_path = session.work / f"workers{workers}-run{run_id}-{number}.log"
        reports.append(report)
        logs.append(log_path)
        with open(log_path, "wb") as output:
            children.append(
                subprocess.Popen(
                    [sys.executable, "-m", "bench.procmon", str(report), "--", *command],
                    cwd=PROJECT_ROOT,
                    env=env,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            )
    codes = [child.wait() for child in children]
    wall = time.perf_counter() - began
    machine_busy = _busy_seconds(machine_before, psutil.cpu_times())
    replica_cpu = process_cpu_seconds(process.pid) - replica_before
    measured = [json.loads(path.read_text()) for path in reports]
    with engine.connect() as connection:
        status = connection.execute(
            sa.select(crawl_runs.c.status).where(crawl_runs.c.id == run_id)
        ).scalar_one()
        stored, first, last = connection.execute(
            sa.select(
                sa.func.count(),
                sa.func.min(products.c.created_at),
                sa.func.max(products.c.created_at),
            ).where(products.c.vendor == vendor)
        ).one()
    expected = len(generate(1, session.size)[vendor].expected_items("http://127.0.0.1"))
    if status != "finished" or any(codes) or stored != expected:
        tail = logs[0].read_text(errors="replace")[-3000:]
        raise RuntimeError(
            f"{workers} worker(s): run {status}, exit codes {codes}, {stored} of {expected} "
            f"products stored; worker 0's log ends:\n{tail}"
        )
    workers_cpu = sum(report["cpu_seconds"] for report in measured)
    return {
        "workers": workers,
        "wall": wall,
        "stored": stored,
        # one batch in all (tiny catalogs) leaves no interval: fall back to the wall time
        "writing": ((last - first).total_seconds() if first and last else 0) or wall,
        "workers_cpu": workers_cpu,
        "replica_cpu": replica_cpu,
        "other_cpu": max(0.0, machine_busy - workers_cpu - replica_cpu),
        "machine_busy": machine_busy,
        "peak_rss": max(report["peak_rss_bytes"] for report in measured),
    }


def measure(session: Session) -> list[Row]:
    vendor = HOOH
    counts = [1, 2] if session.quick else [1, 2, 4]
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    url = session.services.scratch_database()
    settings = config.Config(
        database_url=url, redis_url=session.services.redis_url, redis_key_prefix=prefix
    )
    env = child_env(
        DATABASE_URL=url,
        REDIS_URL=session.services.redis_url,
        CHRISTMAS_REDIS_KEY_PREFIX=prefix,
        CHRISTMAS_CRAWL_IDLE_SECONDS=IDLE_SECONDS,
        **UNBOUNDED,
    )
    results = []
    try:
        for workers in counts:
            log(f"scale-out: {SHORT[vendor]} {session.size:,} products, {workers} worker(s)")
            results.append(run_workers(session, settings, vendor, workers, env))
            log(f"  {results[-1]['wall']:.1f} s")
    finally:
        database.get_engine(settings).dispose()
        server = redis.Redis.from_url(session.services.redis_url)
        for key in server.scan_iter(match=f"{prefix}:*", count=1000):
            server.delete(key)
        server.close()
        session.services.drop(url)

    cores = os.cpu_count() or 1
    one = results[0]
    rows, details = [], []
    for result in results:
        speedup = one["wall"] / result["wall"]
        steady = (result["stored"] / result["writing"]) / (one["stored"] / one["writing"])
        available = cores * result["wall"]
        bound = (
            f"CPU {result['machine_busy'] / available:.0%} busy: workers "
            f"{result['workers_cpu'] / available:.0%}, replica "
            f"{result['replica_cpu'] / available:.0%}, rest {result['other_cpu'] / available:.0%}"
        )
        details.append(
            [
                result["workers"],
                f"{result['stored']:,}",
                f"{result['wall']:.1f} s",
                f"{result['stored'] / result['wall']:,.0f}",
                f"{speedup:.2f}×",
                f"{steady:.2f}×",
                f"{result['workers_cpu']:.0f}",
                f"{result['replica_cpu']:.0f}",
                f"{result['other_cpu']:.0f}",
                bound,
            ]
        )
        if result["workers"] == 1:
            continue
        goal = result["workers"] == 2
        rows.append(
            Row(
                FIGURE,
                f"scale-out, {SHORT[vendor]} {session.size:,} products: {result['workers']} "
                "workers vs 1 (wall time of the run)",
                f"{result['wall']:.1f} s ({result['stored'] / result['wall']:,.0f} products/s)",
                f"1 worker: {one['wall']:.1f} s ({one['stored'] / one['wall']:,.0f}/s)",
                f"{speedup:.2f}×" + (f" (goal ≥ {GOAL:g}×)" if goal else f"; {bound}"),
                speedup >= GOAL if goal else None,
            )
        )
    session.detail(
        FIGURE,
        f"Scale-out on {cores} cores ({SHORT[vendor]}, {session.size:,} products, one run each)",
        markdown(
            [
                "workers",
                "stored",
                "wall",
                "products/s",
                "speed-up (wall)",
                "speed-up (first to last write)",
                "workers CPU-s",
                "replica CPU-s",
                "other CPU-s",
                "machine",
            ],
            details,
        )
        + f"\n\nWall time includes each worker's start-up and the {IDLE_SECONDS} s idle end; "
        "'first to last write' is the rate between the first and the last product row written. "
        "Shares are of cores × wall time; 'rest' is PostgreSQL, Redis and anything else running "
        "on the machine (other users included).",
    )
    return rows


if __name__ == "__main__":
    standalone(measure, __doc__.splitlines()[0])
