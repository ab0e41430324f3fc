"""What every benchmark script shares: services, scratch databases, the replica, measured crawls
and Markdown output.

* `Services` — the PostgreSQL server (DATABASE_URL, else TEST_DATABASE_URL, else the local server
  on 5432 that `make test` uses, else a throw-away embedded one) and Redis (REDIS_URL, else
  redis://127.0.0.1:6379/0). `scratch_database()` clones a migrated template into a fresh
  database, dropped when the services close.
* `Session.replica()` — `tests.replica` as a child process (seed 1); `replica_control()`
  calls its control API.
* `scrapy_crawl()` — one `scrapy crawl` run under `bench.procmon` (CPU seconds from the OS
  accounting of the whole process tree, browsers included; peak memory sampled), its Scrapy
  stats read back from the run's `crawl_runs` row.
* `Row`, `markdown()` — the one table format every figure reports in.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from christmas_spiders import config
from christmas_spiders.processes import crawl_command
from christmas_spiders.storage import database, embedded
from christmas_spiders.storage.schema import crawl_runs
from tests.replica.process import ReplicaProcess

PROJECT_ROOT = Path(__file__).resolve().parent.parent
HOOH, OS, HO = "hookedonhallmark_com", "ornament_shop_com", "hallmark_ornaments_com"
VENDORS = (HOOH, OS, HO)
SHORT = {HOOH: "HooH", OS: "OS", HO: "HO"}
LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS = "redis://127.0.0.1:6379/0"
MB = 1024 * 1024
# Politeness off: the crawler, not the delay, is what a figure measures (figures 1, 2, 8).
UNTHROTTLED = {
    "AUTOTHROTTLE_ENABLED": "0",
    "DOWNLOAD_DELAY": "0",
    "CONCURRENT_REQUESTS": "16",
    "CONCURRENT_REQUESTS_PER_DOMAIN": "16",
}


# --- output -------------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the results table."""

    figure: str  # "1", "2", …
    measure: str
    ours: str
    baseline: str = ""
    ratio_goal: str = ""
    met: bool | None = None  # None: informative, no goal of its own

    @property
    def verdict(self) -> str:
        return {True: "yes", False: "**no**", None: "—"}[self.met]

    def cells(self) -> list[str]:
        return [self.figure, self.measure, self.ours, self.baseline, self.ratio_goal, self.verdict]


TABLE_HEADERS = ["#", "figure", "ours", "baseline", "ratio / goal", "met?"]


def markdown(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(cell, headers)) + " |"]
    lines.append("| " + " | ".join("---" for _ in headers) + " |")
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in rows]
    return "\n".join(lines)


def rows_table(rows: Sequence[Row]) -> str:
    return markdown(TABLE_HEADERS, [row.cells() for row in rows])


def mb(value: float) -> str:
    return f"{value / MB:,.0f} MB"


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """While measuring, stdout is stderr: the project's log handler (installed on sys.stdout
    whenever its settings or the API are imported) must not mix log lines into the tables."""
    saved = sys.stdout
    sys.stdout = sys.stderr
    try:
        yield
    finally:
        sys.stdout = saved


def log(message: str) -> None:
    """Progress on stderr (stdout carries the tables)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- services -----------------------------------------------------------------------------------


def _reachable(url: str) -> bool:
    engine = sa.create_engine(
        make_url(url).set(drivername="postgresql+psycopg2"),
        poolclass=sa.pool.NullPool,
        connect_args={"connect_timeout": 3},
    )
    try:
        with engine.connect():
            return True
    except sa.exc.OperationalError:
        return False
    finally:
        engine.dispose()


class Services:
    """PostgreSQL (scratch databases) and Redis for one benchmark session."""

    def __init__(self) -> None:
        settings = config.load()
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        candidates = [settings.database_url, os.environ.get("TEST_DATABASE_URL"), LOCAL_POSTGRES]
        url = next((c for c in candidates if c and _reachable(c)), None)
        if url is None:  # no server around: a private embedded one (slower to start)
            self._folder = tempfile.TemporaryDirectory(prefix="christmas-bench-")
            url = embedded.start(Path(self._folder.name))
            self.server_kind = "embedded PostgreSQL (temporary)"
        else:
            self.server_kind = "PostgreSQL at " + make_url(url).render_as_string(hide_password=True)
        self.server_url = url
        self.redis_url = settings.redis_url or LOCAL_REDIS
        self._admin = sa.create_engine(
            make_url(url).set(drivername="postgresql+psycopg2"),
            isolation_level="AUTOCOMMIT",
            poolclass=sa.pool.NullPool,
        )
        self._databases: list[str] = []
        self._template: str | None = None

    def url_for(self, name: str) -> str:
        return make_url(self.server_url).set(database=name).render_as_string(hide_password=False)

    def _create(self, template: str | None = None) -> str:
        name = f"christmas_bench_{uuid.uuid4().hex[:10]}"
        clause = f' TEMPLATE "{template}"' if template else ""
        with self._admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"{clause}'))
        self._databases.append(name)
        return name

    def scratch_database(self) -> str:
        """A fresh, migrated database (a clone of a template migrated once); its URL."""
        if self._template is None:
            self._template = self._create()
            url = self.url_for(self._template)
            scratch = config.Config(database_url=url)
            engine = sa.create_engine(database.database_url(scratch), poolclass=sa.pool.NullPool)
            database.upgrade(engine, scratch)
            engine.dispose()
        return self.url_for(self._create(self._template))

    def drop(self, url: str) -> None:
        name = make_url(url).database
        with self._admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if name in self._databases:
            self._databases.remove(name)

    def count_products(self, url: str, vendor: str) -> int:
        found = query(url, "SELECT count(*) FROM products WHERE vendor = :vendor", vendor=vendor)
        return found[0][0]

    def versions(self) -> dict[str, str]:
        found = {}
        with self._admin.connect() as connection:
            found["PostgreSQL"] = connection.execute(sa.text("SHOW server_version")).scalar()
        try:
            import redis

            client = redis.Redis.from_url(self.redis_url, socket_timeout=3)
            found["Redis"] = client.info("server")["redis_version"]
            client.close()
        except Exception as error:  # informative only
            found["Redis"] = f"unreachable ({type(error).__name__})"
        return found

    def close(self) -> None:
        for name in reversed(self._databases):
            with self._admin.connect() as connection:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self._databases.clear()
        self._admin.dispose()
        if self._folder is not None:
            embedded.server_for(Path(self._folder.name)).cleanup()
            self._folder.cleanup()

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def scratch_engine(url: str) -> sa.Engine:
    """An engine on a (scratch) database: psycopg2, no pool; dispose of it after."""
    return sa.create_engine(
        make_url(url).set(drivername="postgresql+psycopg2"), poolclass=sa.pool.NullPool
    )


def query(url: str, sql: str, **params: Any) -> list[Any]:
    """The rows of one SQL statement on that database (its own connection, closed after)."""
    engine = scratch_engine(url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(sa.text(sql), params).all())
    finally:
        engine.dispose()


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child process: ours without the service URLs, plus `extra`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL") and not key.startswith("CHRISTMAS_")
    }
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("LOG_LEVEL", "INFO")
    env.update(extra)
    return env


# --- the replica --------------------------------------------------------------------------------


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


# --- machine ------------------------------------------------------------------------------------


def _command_version(*command: str) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "not found"


def machine() -> dict[str, str]:
    memory = psutil.virtual_memory()
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    one, five, fifteen = os.getloadavg()
    return {
        "cores": f"{os.cpu_count()} ({model})",
        "memory": f"{memory.total / MB / 1024:.1f} GB ({memory.available / MB / 1024:.1f} GB free)",
        "load": f"{one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min)",
        "kernel": os.uname().release,
    }


def versions() -> dict[str, str]:
    import importlib.metadata as metadata

    found = {"Python": sys.version.split()[0]}
    for package in ("Scrapy", "scrapy-redis", "selenium", "SQLAlchemy", "psycopg2-binary"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    chromium = _command_version("/usr/bin/chromium", "--version")
    driver = _command_version("/usr/bin/chromedriver", "--version")
    found["Chromium"] = chromium.removeprefix("Chromium ").split(" built on")[0]
    found["chromedriver"] = driver.removeprefix("ChromeDriver ").split(" (")[0]
    return found


# --- one benchmark session ----------------------------------------------------------------------

FULL_SIZE = 20_000  # products per shop: the "large" replica
QUICK_SIZE = 60  # --quick: the replica's `small` catalog (every edge case still there)


@dataclass
class Detail:
    """A detail table or note printed under the main table, headed by its figure."""

    figure: str
    title: str
    text: str


class Session:
    """Services, the shared replica and measured runs of one `python -m bench` (or one script)."""

    def __init__(self, quick: bool = False, work: Path | None = None) -> None:
        self.quick = quick
        self.services = Services()
        self._work = None if work else tempfile.TemporaryDirectory(prefix="christmas-bench-")
        self.work = work or Path(self._work.name)
        self.work.mkdir(parents=True, exist_ok=True)
        self.details: list[Detail] = []
        self.cache: dict[Any, Any] = {}
        self._replicas: dict[tuple[int, int], ReplicaProcess] = {}

    @property
    def size(self) -> int:
        return QUICK_SIZE if self.quick else FULL_SIZE

    def scaled(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def replica(self, size: int | None = None, latency_ms: int = 0) -> ReplicaProcess:
        """A replica of `size` products per shop, started once per session."""
        key = (size or self.size, latency_ms)
        if key not in self._replicas:
            log(f"starting the replica: {key[0]:,} products per shop, latency {latency_ms} ms")
            self._replicas[key] = ReplicaProcess.start(
                seed=1, size=key[0], latency_ms=latency_ms, timeout=120
            )
        return self._replicas[key]

    def stop_replica(self, size: int | None = None, latency_ms: int = 0) -> None:
        process = self._replicas.pop((size or self.size, latency_ms), None)
        if process is not None:
            process.stop()

    def detail(self, figure: str, title: str, text: str) -> None:
        self.details.append(Detail(figure, title, text))

    def close(self) -> None:
        for process in self._replicas.values():
            process.stop()
        self._replicas.clear()
        self.services.close()
        if self._work is not None:
            self._work.cleanup()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def render_details(details: Sequence[Detail]) -> str:
    return "\n\n".join(f"### {d.figure}. {d.title}\n\n{d.text.strip()}" for d in details)


def standalone(measure: Any, description: str, argv: Sequence[str] | None = None) -> None:
    """`python -m bench.<script> [--quick]`: one figure's rows and details, as Markdown."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes (keeps the script working)"
    )
    args = parser.parse_args(argv)
    with Session(quick=args.quick) as session:
        with stdout_to_stderr():
            rows = measure(session)
        print(rows_table(rows))
        if session.details:
            print()
            print(render_details(session.details))
