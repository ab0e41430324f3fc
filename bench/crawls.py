"""Measured crawls: a command run under `bench.procmon` (CPU seconds from the OS accounting of
the whole process tree, browsers included; peak memory sampled), and `scrapy_crawl()`, one
`scrapy crawl` run so measured with its Scrapy stats read back from the run's `crawl_runs` row
(`Crawl`). Also the replica's control API (`replica_control`) that figures use to change a shop
between two crawls, and the CPU seconds of a live process (`process_cpu_seconds`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import sqlalchemy as sa

from bench.constants import PROJECT_ROOT
from bench.services import child_env, scratch_engine
from christmas_spiders.processes import crawl_command
from christmas_spiders.storage.schema import crawl_runs


def replica_control(origin: str, endpoint: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{origin}/__replica__/{endpoint}",
        data=data,
        method="GET" if body is None else "POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.load(answer)


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (threads included)."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


# --- measured crawls ----------------------------------------------------------------------------


@dataclass
class Measured:
    """A command run under bench.procmon."""

    report: dict[str, Any]
    log_path: Path

    @property
    def cpu_seconds(self) -> float:
        return self.report["cpu_seconds"]

    @property
    def wall_seconds(self) -> float:
        return self.report["wall_seconds"]

    @property
    def peak_rss(self) -> int:
        return self.report["peak_rss_bytes"]

    @property
    def peak_pss(self) -> int:
        return self.report["peak_pss_bytes"]

    def log_tail(self, characters: int = 3000) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-characters:]


def run_measured(
    command: Sequence[str], env: Mapping[str, str], log_path: Path, timeout: float = 3600
) -> Measured:
    """Run `command` under bench.procmon; stdout and stderr go to `log_path`."""
    report_path = log_path.with_suffix(".procmon.json")
    with open(log_path, "wb") as log_file:
        subprocess.run(
            [sys.executable, "-m", "bench.procmon", str(report_path), "--", *command],
            cwd=PROJECT_ROOT,
            env=dict(env),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    return Measured(json.loads(report_path.read_text()), log_path)


@dataclass
class Crawl(Measured):
    """A measured `scrapy crawl` and what its crawl run recorded."""

    vendor: str = ""
    run_id: int | None = None
    status: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    stored_products: int = 0  # counted in the database (the run's counters can lag, see README)
    shop_stats: dict[str, Any] = field(default_factory=dict)  # the replica's own request counts

    def stat(self, name: str) -> int:
        value = self.stats.get(name, 0)
        return value if isinstance(value, int) else 0

    @property
    def stored(self) -> int:
        return (
            self.stat("store/created") + self.stat("store/updated") + self.stat("store/unchanged")
        )

    @property
    def requests(self) -> int:
        """Requests the crawler sent, robots.txt excluded (browser renders included)."""
        return self.stat("downloader/request_count") - self.stat("robotstxt/request_count")

    @property
    def renders(self) -> int:
        return self.stat("selenium/renders")

    @property
    def elapsed(self) -> float:
        """The crawl's own duration (engine start to close), start-up of Python excluded."""
        return float(self.stats.get("elapsed_time_seconds") or self.wall_seconds)


def scrapy_command(
    vendor: str,
    arguments: Mapping[str, str] | None = None,
    settings: Mapping[str, str] | None = None,
) -> list[str]:
    return crawl_command(vendor, arguments, settings)


def read_run(database_url: str, vendor: str, run_id: int | None = None) -> dict[str, Any] | None:
    """The latest crawl run of `vendor` in that database (or run `run_id`)."""
    engine = scratch_engine(database_url)
    select = sa.select(crawl_runs).where(crawl_runs.c.spider == vendor)
    if run_id is not None:
        select = select.where(crawl_runs.c.id == run_id)
    try:
        with engine.connect() as connection:
            row = connection.execute(select.order_by(crawl_runs.c.id.desc()).limit(1)).first()
    finally:
        engine.dispose()
    return None if row is None else dict(row._mapping)


def scrapy_crawl(
    vendor: str,
    database_url: str,
    log_dir: Path,
    *,
    origin: str | None = None,
    arguments: Mapping[str, str] | None = None,
    settings: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    label: str = "",
    check: bool = True,
) -> Crawl:
    """`scrapy crawl vendor` under bench.procmon, writing to `database_url`."""
    arguments = {**({"base_url": origin} if origin else {}), **(arguments or {})}
    command = scrapy_command(vendor, arguments, settings)
    environment = child_env(DATABASE_URL=database_url, **(env or {}))
    log_path = log_dir / f"{vendor}{'-' + label if label else ''}-{uuid.uuid4().hex[:6]}.log"
    measured = run_measured(command, environment, log_path)
    run = read_run(database_url, vendor)
    crawl = Crawl(
        measured.report,
        measured.log_path,
        vendor=vendor,
        run_id=run["id"] if run else None,
        status=run["status"] if run else None,
        stats=dict(run["stats"] or {}) if run else {},
    )
    if check and (measured.report["exit_status"] != 0 or crawl.status != "finished"):
        raise RuntimeError(
            f"crawl of {vendor} ({label or 'bench'}) failed: exit status "
            f"{measured.report['exit_status']}, run status {crawl.status}; its log ends:\n"
            + crawl.log_tail()
        )
    return crawl
