"""Crawl benchmark: our spiders over HTTP vs the 2020 prototype's way (a browser for every page).

    python -m bench.crawl_efficiency [--products 20000] [--browser-year 2019]

1. Requests per stored product and browser renders of a full crawl of each shop's small
   replica catalog (the minimum the layout allows is one request per product, listing and
   index page).
2. Pages per second: a full crawl of a 20,000-product HooH replica over HTTP, against the same
   spider with every page loaded in one headless Chromium (as the 2020 prototype did), on one
   year of the same catalog (the browser would take hours on all of it), same run.

Politeness is off (AutoThrottle off, 16 requests at a time) so the crawler, not the delay, is
measured. Each crawl writes to a scratch database: DATABASE_URL's server when set, else a
throw-away embedded one.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from christmas_spiders import config
from christmas_spiders.settings import DOWNLOADER_MIDDLEWARES
from christmas_spiders.storage import embedded
from tests.replica.process import ReplicaProcess

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VENDORS = ("hookedonhallmark_com", "ornament_shop_com", "hallmark_ornaments_com")
FAST = ["-s", "AUTOTHROTTLE_ENABLED=0", "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=16"]
# The project's downloader middlewares, plus one that sends every page to the browser.
EVERY_PAGE_IN_BROWSER = json.dumps(
    {**DOWNLOADER_MIDDLEWARES, "bench.crawl_efficiency.RenderEveryPage": 940}
)


class RenderEveryPage:
    """Downloader middleware for the baseline: every page goes through the browser."""

    def process_request(self, request):
        if not request.url.endswith("/robots.txt") and "render" not in request.meta:
            request.meta["render"] = {"wait_for": "body"}  # a plain page load, as in 2020


def _stat(output: str, name: str) -> int:
    match = re.search(rf"'{re.escape(name)}': (\d+)", output)
    return int(match.group(1)) if match else 0


def _crawl(vendor: str, origin: str, database_url: str, *extra: str) -> tuple[str, float]:
    began = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "scrapy",
            "crawl",
            vendor,
            "-a",
            f"base_url={origin}",
            *FAST,
            *extra,
        ],
        cwd=PROJECT_ROOT,
        env={"DATABASE_URL": database_url, "PATH": "/usr/bin:/bin", "LOG_LEVEL": "INFO"},
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - began
    if result.returncode != 0:
        raise RuntimeError(f"crawl of {vendor} failed:\n{result.stdout[-3000:]}")
    return result.stdout, seconds


_SCRATCH: list[str] = []


def _admin(server_url: str) -> sa.Engine:
    url = make_url(server_url).set(drivername="postgresql+psycopg2")
    return sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


def _scratch_database(server_url: str) -> str:
    """A new empty database on the server, dropped by _drop_scratch_databases."""
    name = f"christmas_bench_{uuid.uuid4().hex[:8]}"
    with _admin(server_url).connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    _SCRATCH.append(name)
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def _drop_scratch_databases(server_url: str) -> None:
    with _admin(server_url).connect() as connection:
        for name in _SCRATCH:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def efficiency(server_url: str) -> list[tuple[str, str]]:
    rows = []
    with ReplicaProcess.start(seed=1, size="small") as replica:
        for vendor in VENDORS:
            output, _ = _crawl(vendor, replica.base_urls[vendor], _scratch_database(server_url))
            products = _stat(output, "store/created")
            requests = _stat(output, "downloader/request_count") - _stat(
                output, "robotstxt/request_count"
            )
            renders = _stat(output, "selenium/renders")
            rows.append(
                (
                    f"{vendor}: requests per stored product (small catalog)",
                    f"{requests / products:.2f} ({requests} requests, {products} products)",
                )
            )
            rows.append((f"{vendor}: browser renders per crawl", str(renders)))
    return rows


def speed(server_url: str, products: int, browser_year: int) -> list[tuple[str, str]]:
    with ReplicaProcess.start(seed=1, size=products) as replica:
        origin = replica.base_urls["hookedonhallmark_com"]
        output, seconds = _crawl("hookedonhallmark_com", origin, _scratch_database(server_url))
        http_pages = _stat(output, "response_received_count")
        stored = _stat(output, "store/created")
        output, browser_seconds = _crawl(
            "hookedonhallmark_com",
            origin,
            _scratch_database(server_url),
            "-a",
            f"year={browser_year}",
            "-s",
            f"DOWNLOADER_MIDDLEWARES={EVERY_PAGE_IN_BROWSER}",
            "-s",
            "SELENIUM_SETTLE_TIME=0.05",  # static pages: no waiting for a script to settle
        )
        browser_pages = _stat(output, "response_received_count")
        renders = _stat(output, "selenium/renders")
    http_rate, browser_rate = http_pages / seconds, browser_pages / browser_seconds
    return [
        (
            f"HooH over HTTP: {http_pages:,} pages, {stored:,} products stored",
            f"{seconds:.1f} s, {http_rate:.1f} pages/s",
        ),
        (
            f"HooH with a browser for every page (year {browser_year}): {browser_pages} pages, "
            f"{renders} renders",
            f"{browser_seconds:.1f} s, {browser_rate:.1f} pages/s",
        ),
        ("HTTP ÷ browser-for-every-page, pages per second", f"{http_rate / browser_rate:.1f}×"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=20_000)
    parser.add_argument("--browser-year", type=int, default=2019)
    args = parser.parse_args()
    settings = config.load()
    with tempfile.TemporaryDirectory(prefix="christmas-bench-") as folder:
        server_url = settings.database_url or embedded.start(Path(folder))
        try:
            rows = efficiency(server_url) + speed(server_url, args.products, args.browser_year)
        finally:
            _drop_scratch_databases(server_url)
            if not settings.database_url:
                embedded.server_for(Path(folder)).cleanup()
    print("| crawl | figure |\n| --- | --- |")
    for label, figure in rows:
        print(f"| {label} | {figure} |")


if __name__ == "__main__":
    main()
