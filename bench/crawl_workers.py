"""Crawl benchmark: one crawl run of the large replica worked by 1, 2 and 4 workers.

    python -m bench.crawl_workers [--size large] [--workers 1,2,4] [--vendor hookedonhallmark_com]

Starts the replica (`tests.replica`, seed 1, 20,000 products per shop by default) and, for each
worker count, announces one crawl run and starts that many `scrapy crawl <vendor> -a run_id=…`
processes at once; the figure is the wall time from their start to the last one's exit
(process start-up and the final idle window of `--idle` seconds included). The per-shop budget
and Scrapy's per-domain limit are raised far above what the workers can send, so the workers,
not politeness, are the bound. Only one shop by default (HooH: static pages, no browser) to
keep it to a few minutes.

Needs Redis (REDIS_URL, default redis://127.0.0.1:6379/0; keys under a scratch prefix, deleted
afterwards) and PostgreSQL: DATABASE_URL (a scratch database is created and dropped there) or
else a throw-away embedded server. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from christmas_spiders import config
from christmas_spiders.distributed.announce import announce_run
from christmas_spiders.storage import database, embedded
from christmas_spiders.storage.schema import crawl_runs, products
from tests.replica.catalog import generate
from tests.replica.process import PROJECT_ROOT, ReplicaProcess

DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
UNBOUNDED = {
    "CHRISTMAS_SHOP_MAX_CONCURRENCY": "1000",
    "CHRISTMAS_SHOP_REQUESTS_PER_SECOND": "100000",
}
SCRAPY_SETTINGS = {
    "AUTOTHROTTLE_ENABLED": "0",
    "CONCURRENT_REQUESTS": "16",
    "CONCURRENT_REQUESTS_PER_DOMAIN": "16",
    "LOG_LEVEL": "WARNING",
}


def _crawl(
    vendor: str, run_id: int, workers: int, env: dict[str, str], logs: Path
) -> tuple[float, list[int]]:
    command = [sys.executable, "-m", "scrapy", "crawl", vendor, "-a", f"run_id={run_id}"]
    for key, value in SCRAPY_SETTINGS.items():
        command += ["-s", f"{key}={value}"]
    began = time.perf_counter()
    children = []
    for number in range(workers):
        with open(logs / f"run{run_id}-worker{number}.log", "wb") as log:
            children.append(
                subprocess.Popen(
                    command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
                )
            )
    codes = [child.wait() for child in children]
    return time.perf_counter() - began, codes


def _reset(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text("TRUNCATE products, product_changes"))


def _result(engine: Engine, run_id: int, vendor: str) -> tuple[str, int]:
    with engine.connect() as connection:
        status = connection.execute(
            sa.select(crawl_runs.c.status).where(crawl_runs.c.id == run_id)
        ).scalar_one()
        count = connection.execute(
            sa.select(sa.func.count()).select_from(products).where(products.c.vendor == vendor)
        ).scalar_one()
    return status, count


def run(
    database_url: str, redis_url: str, vendor: str, size: str, counts: list[int], idle: float
) -> list[tuple[str, str, str, str]]:
    expected = len(generate(1, size)[vendor].expected_items("http://127.0.0.1"))
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    scratch = config.Config(database_url=database_url, redis_url=redis_url, redis_key_prefix=prefix)
    engine = database.get_engine(scratch)
    database.upgrade(engine, scratch)
    rows = []
    with (
        ReplicaProcess.start(size=size) as replica,
        tempfile.TemporaryDirectory(prefix="christmas-bench-logs-") as logs,
    ):
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env.update(
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
            CHRISTMAS_REDIS_KEY_PREFIX=prefix,
            CHRISTMAS_CRAWL_IDLE_SECONDS=str(idle),
            **UNBOUNDED,
        )
        base_url = replica.base_urls[vendor]
        single = None
        for workers in counts:
            _reset(engine)
            run_id = announce_run(scratch, vendor, {"base_url": base_url})
            seconds, codes = _crawl(vendor, run_id, workers, env, Path(logs))
            status, stored = _result(engine, run_id, vendor)
            if status != "finished" or any(codes) or stored != expected:
                tail = (Path(logs) / f"run{run_id}-worker0.log").read_text()[-3000:]
                raise SystemExit(
                    f"{workers} worker(s): run {status}, exit codes {codes}, "
                    f"{stored} of {expected} products stored; worker 0's log ends:\n{tail}"
                )
            single = single or seconds
            rows.append(
                (
                    f"{workers} worker{'s' if workers > 1 else ''}",
                    f"{seconds:.1f} s",
                    f"{stored / seconds:,.0f}/s",
                    f"{single / seconds:.2f}×",
                )
            )
    engine.dispose()
    server = redis.Redis.from_url(redis_url)
    for key in server.scan_iter(match=f"{prefix}:*", count=1000):
        server.delete(key)
    server.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="large", help="replica size: small, large or N")
    parser.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated")
    parser.add_argument("--vendor", default="hookedonhallmark_com")
    parser.add_argument("--idle", type=float, default=2.0, help="crawl_idle_seconds")
    args = parser.parse_args()
    counts = [int(count) for count in args.workers.split(",")]
    settings = config.load()
    redis_url = settings.redis_url or DEFAULT_REDIS
    with tempfile.TemporaryDirectory(prefix="christmas-bench-") as folder:
        if settings.database_url:
            admin = sa.create_engine(
                make_url(settings.database_url).set(drivername="postgresql+psycopg2"),
                isolation_level="AUTOCOMMIT",
            )
            name = f"christmas_bench_{uuid.uuid4().hex[:8]}"
            with admin.connect() as connection:
                connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
            url = make_url(settings.database_url).set(database=name)
            database_url = url.render_as_string(hide_password=False)
        else:
            database_url = embedded.start(Path(folder))
        try:
            rows = run(database_url, redis_url, args.vendor, args.size, counts, args.idle)
        finally:
            if settings.database_url:
                with admin.connect() as connection:
                    connection.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            else:
                embedded.server_for(Path(folder)).cleanup()
    print(
        f"| {args.vendor}, replica size {args.size}, one run | wall time | products/s | "
        "speed-up |\n| --- | --- | --- | --- |"
    )
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(
        f"\n{os.cpu_count()} CPUs; times include process start-up and a {args.idle:g} s idle end."
    )


if __name__ == "__main__":
    main()
