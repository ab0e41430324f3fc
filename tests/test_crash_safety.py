"""Crash safety (issue #17): the main job runs end to end on a fresh embedded database, first
crawls on fresh data folders are clean, and an error in any part of a crawl fails its run, is
recorded in `crawl_runs` and in the summary, and makes `scrapy crawl` exit non-zero.

Faults are injected with test-only Scrapy add-ons (tests/faulty_components.py) into real crawls
of the replica; the embedded server's thread safety is tested in tests/test_embedded.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from christmas_spiders.processes import crawl_command
from christmas_spiders.storage.schema import crawl_runs
from christmas_spiders.vendors import VENDORS
from demo.shops import DAY, FIELD

from .conftest import PROJECT_ROOT, PrivatePostgres
from .crawl import scrapy_crawl
from .faulty_components import INJECTED
from .replica.client import Replica

HOOH, OS = "hookedonhallmark_com", "ornament_shop_com"
FAST = {"AUTOTHROTTLE_ENABLED": "0", "RETRY_BACKOFF_BASE": "0.05", "RETRY_BACKOFF_MAX": "1"}
SUMMARY = re.compile(r"crawl run (\d+|\(not recorded\)) of (\w+) .*: (\w+) \((\w+)\)")
ERROR_LINE = re.compile(r"^\S+ \S+ ERROR ", re.MULTILINE)


def _output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def test_demo_tells_a_day_at_the_shops_on_a_fresh_embedded_database(
    embedded_data_dir: Path,
) -> None:
    """`make demo`, as on a fresh machine (no DATABASE_URL, an empty data folder): two syncs of
    every shop, a day apart, and the second records exactly what the shops changed."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["CHRISTMAS_DATA_DIR"] = str(embedded_data_dir)
    result = subprocess.run(
        [sys.executable, "-m", "demo"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = _output(result)
    assert result.returncode == 0, output[-6000:]
    assert "Traceback" not in output
    runs = SUMMARY.findall(output)
    assert sorted(vendor for _, vendor, _, _ in runs) == sorted([*VENDORS] * 2), output[-6000:]
    assert {(status, reason) for _, _, status, reason in runs} == {("finished", "finished")}
    assert output.count(" 0 errors logged") == 2 * len(VENDORS)
    # What the day at the shops must show in day 2's crawl summaries, field by field.
    day = Counter(FIELD[kind] for kind, count in DAY.items() for _ in range(count))
    planned = ", ".join(f"{count} {name}" for name, count in sorted(day.items()))
    assert output.count(f"to be recorded: {planned}\n") == len(VENDORS), output[-6000:]
    changes = re.findall(r"crawl run \d+ of (\w+) .*\n    items .*\n    changes   (.*)", output)
    assert changes[len(VENDORS) :] and sorted(changes[len(VENDORS) :]) == sorted(
        (vendor, planned) for vendor in VENDORS
    ), output[-6000:]
    drops = DAY["price drop"] + DAY["sale"]
    recorded = (
        f"price drops {drops}, price rises {DAY['price rise']}, sold out {DAY['sold out']}, "
        f"back in stock {DAY['back in stock']}, listed {DAY['new']}, delisted {DAY['gone']}"
    )
    for vendor in VENDORS:
        assert f"{VENDORS[vendor].display_name:<22} {recorded}\n" in output, output[-3000:]
    assert "KEY=$(flask --app webapi keys create me | tail -n 1)" in output
    # Day 1 is dated a day back: the history spans a day, and day 2 is now.
    server = PrivatePostgres(embedded_data_dir)
    try:
        engine = sa.create_engine(server.url.replace("postgresql://", "postgresql+psycopg2://"))
        with engine.connect() as connection:
            first, last = connection.execute(
                sa.text("SELECT min(changed_at), max(changed_at) FROM product_changes")
            ).one()
            delisted = connection.execute(
                sa.text("SELECT count(*) FROM products WHERE delisted_at IS NOT NULL")
            ).scalar()
            # The year index saw both days: day 2's steps match ornaments priced on day 1.
            matched_on_day_2 = connection.execute(
                sa.text("SELECT sum(matched) FROM market_year_steps WHERE day = current_date")
            ).scalar()
        engine.dispose()
    finally:
        server.close()
    assert timedelta(days=1) <= last - first < timedelta(days=1, hours=1)
    assert delisted == DAY["gone"] * len(VENDORS)
    assert matched_on_day_2 and matched_on_day_2 > 0


def test_first_crawls_on_fresh_embedded_databases_log_no_error(replica: Replica) -> None:
    """Ten first crawls (of one year), two at a time, each on a data folder of its own: the
    crawl's threads all open the embedded server as the spider opens, while it is initialised
    (issue #17: 2 of 8 first crawls logged a traceback)."""
    vendors = [HOOH, OS] * 5
    folders = [Path(tempfile.mkdtemp(prefix="christmas-test-data-")) for _ in vendors]
    crawls = list(zip(vendors, folders, strict=True))
    try:
        for pair in (crawls[i : i + 2] for i in range(0, len(crawls), 2)):
            running = [(vendor, _start_crawl(vendor, replica, folder)) for vendor, folder in pair]
            for vendor, crawl in running:
                output, _ = crawl.communicate(timeout=300)
                assert crawl.returncode == 0, output[-6000:]
                assert "Traceback" not in output, output[-6000:]
                assert not ERROR_LINE.search(output), output[-6000:]
                assert "heartbeat not" not in output, output[-6000:]  # it waits for the schema
                (summary,) = SUMMARY.findall(output)
                assert summary[1:] == (vendor, "finished", "finished")
                assert " 0 errors logged" in output
    finally:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


def _start_crawl(vendor: str, replica: Replica, data_dir: Path) -> subprocess.Popen[str]:
    command = crawl_command(vendor, {"base_url": replica.base_urls[vendor], "year": 1998}, FAST)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["CHRISTMAS_DATA_DIR"] = str(data_dir)
    return subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


# -- errors are never silent -----------------------------------------------------------------------


def _faulty_crawl(
    addon: str, replica: Replica, database_url: str, tmp_path: Path
) -> tuple[subprocess.CompletedProcess[str], str]:
    result = scrapy_crawl(
        OS,
        env={"DATABASE_URL": database_url, "CHRISTMAS_DATA_DIR": str(tmp_path / "data")},
        arguments={"base_url": replica.base_urls[OS], "year": "1998"},
        settings={**FAST, "ADDONS": json.dumps({f"tests.faulty_components.{addon}": 1})},
    )
    return result, _output(result)


def _only_run(engine: Engine) -> dict[str, Any]:
    with engine.connect() as connection:
        (run,) = connection.execute(sa.select(crawl_runs)).mappings().all()
    return dict(run)


def _summary(output: str) -> str:
    """The end-of-crawl summary: its first line and the indented ones after it."""
    start = SUMMARY.search(output)
    assert start, output[-6000:]
    block = output[start.start() :]
    lines = block.splitlines()
    end = next((i for i, line in enumerate(lines[1:], 1) if not line.startswith("    ")), None)
    return "\n".join(lines[:end])


@pytest.mark.parametrize(
    ("addon", "close_reason", "failure", "items"),
    [
        # The crawl goes on and stores what it finds; its run fails.
        ("SpiderOpenedFails", "finished", "Error caught on signal handler: <bound method", 5),
        # Raised after Scrapy stopped counting log lines (its log_count/ERROR misses it).
        ("SpiderClosedFails", "finished", "Error caught on signal handler: <bound method", 5),
        # Its task's exception, logged when it happened (and not raised again at close).
        ("HeartbeatFails", "finished", "the crawl's heartbeat stopped: " + INJECTED, 5),
        # Scrapy stops before spider_opened: the run is opened at close to record the failure.
        ("PipelineOpenFails", "shutdown", "the crawl stopped before its spider opened", 0),
    ],
)
def test_an_error_in_any_part_of_the_crawl_fails_its_run(
    addon: str,
    close_reason: str,
    failure: str,
    items: int,
    replica: Replica,
    database_url: str,
    engine: Engine,
    tmp_path: Path,
) -> None:
    result, output = _faulty_crawl(addon, replica, database_url, tmp_path)
    assert result.returncode == 1, output[-6000:]
    assert INJECTED in output  # the error itself, with its traceback, is in the log
    run = _only_run(engine)
    assert (run["status"], run["close_reason"]) == ("failed", close_reason), output[-6000:]
    assert run["items_created"] == items
    summary = _summary(output)
    assert summary.splitlines()[0].endswith(f": failed ({close_reason})")
    # Every error line logged before the summary is counted, in the run and the summary.
    log = output[: output.index(summary)]
    logged = len(ERROR_LINE.findall(log))
    assert logged >= 1
    assert run["errors"] == run["stats"]["errors/logged"] == logged
    assert f", {logged} errors logged" in summary
    assert any(failure in text for text in run["stats"]["errors/failures"]), run["stats"]
    assert f"\n    failure   {run['stats']['errors/failures'][0]}" in summary
    if addon == "HeartbeatFails":
        assert log.count("the crawl's heartbeat stopped") == 1
        assert "Error caught on signal handler" not in log


def test_without_a_database_the_crawl_stops_before_its_first_request(replica: Replica) -> None:
    """The embedded server cannot start (its data folder is a file): one sentence per part that
    needs it, no traceback, no request, exit 1."""
    with tempfile.NamedTemporaryFile(prefix="christmas-test-data-") as not_a_folder:
        result = scrapy_crawl(
            OS,
            env={"CHRISTMAS_DATA_DIR": not_a_folder.name},
            arguments={"base_url": replica.base_urls[OS], "year": "1998"},
            settings=FAST,
        )
    output = _output(result)
    assert result.returncode == 1, output[-6000:]
    assert "Traceback" not in output
    cause = "the embedded PostgreSQL in " + not_a_folder.name
    assert f"ERROR christmas_spiders.pipelines: cannot store items: {cause}" in output
    assert f"ERROR christmas_spiders.extensions: cannot start the crawl: {cause}" in output
    summary = _summary(output)
    assert re.match(r"crawl run \(not recorded\) of .*: failed \(storage_unavailable\)", summary)
    assert "\n    requests  0, " in summary
