"""The benchmarks keep working: `python -m bench --quick` runs every figure's script at tiny
sizes against the real services and prints the one table.

No timing is asserted here (the figures are in bench/results.md, from `make bench`): only that
every script runs to its end and every figure has its row.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import sqlalchemy as sa

from bench import __main__ as runner
from bench import api_catalog
from bench.crawl_efficiency import minimum
from bench.report import Row, rows_table
from tests.conftest import ADMIN_URL, PROJECT_ROOT
from tests.replica.catalog import generate

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.mark.slow
@pytest.mark.timeout(480)  # a hang guard: ten figures on a shared, loaded machine
def test_quick_bench_prints_every_figure(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(TEST_DATABASE_URL=ADMIN_URL, REDIS_URL=REDIS_URL)
    output = tmp_path / "results.md"
    recorded = PROJECT_ROOT / "bench" / "results.md"
    before = recorded.stat().st_mtime_ns if recorded.exists() else None
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--output", str(output)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=470,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = output.read_text()
    assert report == result.stdout.rstrip("\n") + "\n"
    figures = re.findall(r"^\| (\d+) \| ", report, flags=re.MULTILINE)
    assert set(figures) == set(runner.TITLES), figures
    assert "| failed |" not in report
    for heading in ("## Machine", "## Details", "versions", "Scrapy", "PostgreSQL", "Chromium"):
        assert heading in report
    # A quick run never overwrites the recorded full run.
    assert (recorded.stat().st_mtime_ns if recorded.exists() else None) == before


def test_minimum_counts_one_request_per_page():
    catalog = generate(1, "small")
    hooh = minimum(catalog["hookedonhallmark_com"])
    shop = catalog["hookedonhallmark_com"]
    # a view-all page per plain year; 2019 (View All) and 2020 (three segments) cost more
    plain = [c for c in shop.year_categories() if not c.children]
    assert hooh.index == 1
    assert hooh.listing == len(plain) + 2 + 4
    assert hooh.renders == 0
    assert minimum(catalog["hallmark_ornaments_com"]).renders == len(
        catalog["hallmark_ornaments_com"].year_categories()
    )
    # every product once, plus the one listed at a URL that redirects (OS's moved product)
    assert minimum(catalog["ornament_shop_com"]).products == len(catalog["ornament_shop_com"])
    assert minimum(catalog["ornament_shop_com"]).redirects == 1


def test_procmon_accounts_for_the_whole_process_tree(tmp_path):
    """Run as a child: procmon makes its process a subreaper and reaps every child it has."""
    burn = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"
    child = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {burn!r}])\n{burn}"
    path = tmp_path / "report.json"
    subprocess.run(
        [sys.executable, "-m", "bench.procmon", str(path), "--", sys.executable, "-c", child],
        cwd=PROJECT_ROOT,
        check=True,
        timeout=60,
    )
    report = json.loads(path.read_text())
    assert report["exit_status"] == 0
    assert report["subreaper"]
    assert report["cpu_seconds"] >= 0.5  # both processes, the grandchild included
    assert report["peak_rss_bytes"] > 0


def test_api_table_is_read_and_judged():
    text = """
| endpoint | requests | p50 ms | p99 ms | req/s | non-200 |
| --- | --- | --- | --- | --- | --- |
| /healthz | 1,000 | 2.0 | 5.0 | 900 | 0 |
| product list | 2,000 | 5.0 | 20.0 | 300 | 0 |
| product history | 2,000 | 7.0 | 20.0 | 300 | 0 |
| SKU view (3 shops, each with its history) | 2,000 | 9.0 | 30.0 | 150 | 0 |
| SKU view, fast (3 shops, each with its history) | 2,000 | 9.0 | 20.0 | 300 | 0 |
"""
    rows = {row.measure.split(":")[0]: row for row in runner.parse_api_table(text)}
    assert rows["API product list"].met is True
    assert rows["API product history"].met is False  # p50 3.5× /healthz
    assert rows["API SKU view (3 shops, each with its history)"].met is False  # p99 and rate
    # The p50 goal is the list's and the history's: a SKU view at 4.5× /healthz meets its goal.
    assert rows["API SKU view, fast (3 shops, each with its history)"].met is True
    assert rows["API /healthz"].met is None
    table = rows_table(list(rows.values()))
    assert table.startswith("| # | figure | ours | baseline | ratio / goal | met? |")
    assert Row("1", "x", "y").verdict == "—"


def test_api_bench_catalog_links_ornaments_and_ends_its_history_at_each_product(engine):
    """Figure 6's generated catalog: ornaments at one to three shops, some no-box offers, and
    a year of history whose last rows are each product's current price and stock."""
    api_catalog.generate(engine, 600, 6)
    with engine.connect() as connection:
        shops = connection.execute(
            sa.text(
                "SELECT DISTINCT count(*) FROM products WHERE delisted_at IS NULL "
                "GROUP BY ornament_id"
            )
        ).scalars()
        assert set(shops) == {1, 2, 3}
        conditions = connection.execute(sa.text("SELECT DISTINCT condition FROM products"))
        assert {"boxed", "no_box"} <= set(conditions.scalars())
        span = connection.execute(
            sa.text("SELECT max(changed_at) - min(changed_at) FROM product_changes")
        ).scalar_one()
        assert span.days >= 365
        assert not connection.execute(
            sa.text("SELECT count(*) FROM product_changes WHERE old_value = new_value")
        ).scalar_one()
        differing = connection.execute(
            sa.text(
                """
                SELECT count(*) FROM products p
                 CROSS JOIN LATERAL (
                     SELECT (array_agg(new_value ORDER BY changed_at DESC)
                               FILTER (WHERE field = 'price'))[1] AS price,
                            (array_agg(new_value ORDER BY changed_at DESC)
                               FILTER (WHERE field = 'availability'))[1] AS availability
                       FROM product_changes c WHERE c.product_id = p.id) AS last
                 WHERE p.delisted_at IS NULL
                   AND (last.price IS DISTINCT FROM p.price::text
                        OR last.availability IS DISTINCT FROM p.availability)
                """
            )
        ).scalar_one()
        assert differing == 0
