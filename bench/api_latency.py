"""API benchmark: latency and throughput of the product list, history and SKU endpoints at
100,000 products and 2,000,000 history rows, next to /healthz in the same run.

    python -m bench.api_latency [--products 100000] [--history 20] [--seconds 10] [--clients 4]

The catalog and its history are generated in SQL (`generate_series`, the history trigger off
while loading) in a scratch database: on DATABASE_URL's server when set (created and dropped),
else in a throw-away embedded PostgreSQL. The API runs under gunicorn with 2 sync workers on
127.0.0.1; a threaded client (one new connection per request, as gunicorn's sync workers
close them) drives each endpoint for a fixed time with varied parameters. Prints a Markdown
table: p50 / p99 latency and requests per second per endpoint.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from bench.common import percentile
from christmas_spiders import config, logs
from christmas_spiders.storage import database, embedded
from christmas_spiders.storage.database import HISTORY_TRIGGER
from webapi import auth

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VENDOR_IDS = ("hookedonhallmark_com", "ornament_shop_com", "hallmark_ornaments_com")
SERIES = ("Frosty Friends", "Nostalgic Rocking Horse", "Snow Buddies", "Here Comes Santa")
WORDS = ("Frosty", "Rocking", "Snow", "Santa", "Train", "Angel", "Star", "Disney")

_PRODUCTS = sa.text(
    """
    INSERT INTO products (vendor, vendor_product_id, vendor_key, sku, name, price, currency,
                          availability, release_year, brand, link, series, series_number, artist,
                          first_seen_at, last_synced_at, created_at, updated_at)
    SELECT (ARRAY['hookedonhallmark_com', 'ornament_shop_com',
                  'hallmark_ornaments_com'])[1 + g % 3],
           g::text, g::text,
           'QX' || lpad((g / 3)::text, 6, '0'),
           (1973 + (g / 3) % 53)::text || ' '
             || (ARRAY['Frosty', 'Rocking', 'Snow', 'Santa', 'Train', 'Angel', 'Star',
                       'Disney'])[1 + (g / 3) % 8]
             || ' Keepsake Ornament ' || (g / 3)::text,
           CASE WHEN g % 17 = 0 THEN NULL ELSE round(5 + ((g * 7919) % 9500) / 100.0, 2) END,
           'USD',
           (ARRAY['available', 'preorder', 'unavailable'])[1 + (g / 7) % 3],
           1973 + (g / 3) % 53, 'Hallmark', 'https://shop.invalid/p/' || g::text,
           CASE WHEN g % 5 = 0 THEN (ARRAY['Frosty Friends', 'Nostalgic Rocking Horse',
                 'Snow Buddies', 'Here Comes Santa'])[1 + (g / 5) % 4] END,
           CASE WHEN g % 5 = 0 THEN 1 + (g / 20) % 40 END,
           (ARRAY['Ken Crow', 'Lynn Norton', 'Sharon Visker', NULL])[1 + g % 4],
           now() - interval '400 days', now() - (g % 1440) * interval '1 minute',
           now() - interval '400 days', now() - (g % 365) * interval '1 day'
    FROM generate_series(0, :products - 1) AS g
    """
)
# Time-major, as crawls write it: one product's rows are spread over the whole table.
_HISTORY = sa.text(
    """
    INSERT INTO product_changes (product_id, kind, field, old_value, new_value, changed_at)
    SELECT p.id,
           CASE WHEN s = 0 THEN 'listed' ELSE 'changed' END,
           CASE WHEN s = 0 THEN NULL WHEN s % 4 = 0 THEN 'availability' ELSE 'price' END,
           CASE WHEN s = 0 THEN NULL
                WHEN s % 4 = 0 THEN (ARRAY['available', 'unavailable'])[1 + s / 4 % 2]
                ELSE (10 + (p.id + s - 1) % 40)::text || '.95' END,
           CASE WHEN s = 0 THEN '{"price": "' || (10 + p.id % 40)::text || '.95", '
                                || '"availability": "available"}'
                WHEN s % 4 = 0 THEN (ARRAY['unavailable', 'available'])[1 + s / 4 % 2]
                ELSE (10 + (p.id + s) % 40)::text || '.95' END,
           now() - interval '400 days' + s * interval '19 days' + (p.id % 1000) * interval '1 s'
    FROM generate_series(0, :history - 1) AS s CROSS JOIN products AS p
    ORDER BY s, p.id
    """
)


def _generate(engine: Engine, products: int, history: int) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text(f"ALTER TABLE products DISABLE TRIGGER {HISTORY_TRIGGER}"))
        connection.execute(_PRODUCTS, {"products": products})
        connection.execute(_HISTORY, {"history": history})
        connection.execute(sa.text(f"ALTER TABLE products ENABLE TRIGGER {HISTORY_TRIGGER}"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text("VACUUM ANALYZE products, product_changes"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_up(server: subprocess.Popen, port: int, deadline: float) -> None:
    while time.monotonic() < deadline and server.poll() is None:
        try:
            status, _ = _get(port, "/healthz", {})
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("gunicorn did not start")


def _get(port: int, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _drive(
    port: int, paths: list[str], headers: dict[str, str], seconds: float, clients: int
) -> tuple[list[float], int, float]:
    """Latencies (ms), errors and elapsed seconds of `clients` threads over `seconds`."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    cycle = itertools.cycle(paths)
    stop_at = time.monotonic() + seconds

    def client() -> None:
        mine: list[float] = []
        failed = 0
        while time.monotonic() < stop_at:
            with lock:
                path = next(cycle)
            started = time.perf_counter()
            status, _ = _get(port, path, headers)
            mine.append((time.perf_counter() - started) * 1000)
            failed += status != 200
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    started = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors[0], time.monotonic() - started


def _workload(engine: Engine, products: int) -> dict[str, list[str]]:
    rng = random.Random(42)
    with engine.connect() as connection:
        low, high = connection.execute(sa.text("SELECT min(id), max(id) FROM products")).one()
    years = range(1973, 2026)
    lists = []
    for _ in range(200):
        vendor, year = rng.choice(VENDOR_IDS), rng.choice(years)
        sort = rng.choice(("id", "-price", "price", "name", "-updated_at", "release_year"))
        lists.append(
            rng.choice(
                (
                    f"/v1/products?sort={sort}&limit=50",
                    f"/v1/products?vendor={vendor}&release_year={year}&sort={sort}",
                    f"/v1/products?availability=available&price_max=30&sort={sort}",
                    f"/v1/products?q={rng.choice(WORDS)}&limit=50",
                    f"/v1/products?series={SERIES[rng.randrange(4)].replace(' ', '+')}",
                    f"/v1/products?release_year_min={year}&release_year_max={year + 5}&sort={sort}",
                )
            )
        )
    return {
        "/healthz": ["/healthz"],
        "product list (mixed filters and sorts, 50 a page)": lists,
        "product history": [f"/v1/products/{rng.randint(low, high)}/history" for _ in range(500)],
        "SKU view (3 shops, each with its history)": [
            f"/v1/skus/QX{rng.randrange(products // 3):06d}" for _ in range(500)
        ],
    }


def run(url: str, products: int, history: int, seconds: float, clients: int) -> list[str]:
    scratch = config.Config(database_url=url)
    engine = sa.create_engine(database.database_url(scratch))
    database.upgrade(engine, scratch)
    started = time.monotonic()
    _generate(engine, products, history)
    generated = time.monotonic() - started
    with engine.begin() as connection:
        _, key = auth.create_key(connection, "bench")
        changes = connection.execute(sa.text("SELECT count(*) FROM product_changes")).scalar()
    workload = _workload(engine, products)
    engine.dispose()

    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "LOG_LEVEL": "WARNING",
        "CHRISTMAS_API_RATE_LIMIT": "10000000",
    }
    env.pop("REDIS_URL", None)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            "2",
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "webapi:create_app()",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        start_new_session=True,
    )
    rows = []
    try:
        _wait_until_up(server, port, time.monotonic() + 60)
        headers = {"Authorization": f"Bearer {key}"}
        for label, paths in workload.items():
            _drive(port, paths[:20], headers, 1.0, clients)  # warm the pools and caches
            latencies, errors, elapsed = _drive(port, paths, headers, seconds, clients)
            rows.append(
                f"| {label} | {len(latencies):,} | {statistics.median(latencies):.1f} | "
                f"{percentile(latencies, 0.99):.1f} | {len(latencies) / elapsed:,.0f} | {errors} |"
            )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
    return [
        f"{products:,} products, {changes:,} history rows (generated in {generated:.0f} s); "
        f"gunicorn, 2 sync workers; {clients} client threads for {seconds:.0f} s per endpoint",
        "",
        "| endpoint | requests | p50 ms | p99 ms | req/s | non-200 |",
        "| --- | --- | --- | --- | --- | --- |",
        *rows,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--history", type=int, default=20, help="history rows per product")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    settings = config.load()
    logs.configure("WARNING", settings.log_format)
    options = (args.products, args.history, args.seconds, args.clients)
    with tempfile.TemporaryDirectory(prefix="christmas-bench-") as folder:
        if settings.database_url:
            admin = sa.create_engine(
                make_url(settings.database_url).set(drivername="postgresql+psycopg2"),
                isolation_level="AUTOCOMMIT",
            )
            name = f"christmas_bench_{uuid.uuid4().hex[:8]}"
            with admin.connect() as connection:
                connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
            url = make_url(settings.database_url).set(drivername="postgresql", database=name)
            try:
                lines = run(url.render_as_string(False), *options)
            finally:
                with admin.connect() as connection:
                    connection.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
                admin.dispose()
        else:
            try:
                lines = run(embedded.start(Path(folder)), *options)
            finally:
                embedded.server_for(Path(folder)).cleanup()  # stop it before its folder goes
    print("\n".join(lines))


if __name__ == "__main__":
    main()
