"""The scheduler process: `python scheduler.py` and its CLI as child processes, on this test's
database, crawling the replica.

Unless a test says otherwise, every trigger fires 12 hours from now at the earliest, so
nothing runs on its own during a test: what runs is what the test makes run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest
import sqlalchemy as sa
from apscheduler.schedulers.base import BaseScheduler
from sqlalchemy.engine import Engine

from christmas_spiders import config as config_module
from christmas_spiders.config import Config
from christmas_spiders.scheduling import jobs, store
from christmas_spiders.scheduling.service import JobScheduler
from christmas_spiders.storage.schema import (
    crawl_run_processes,
    crawl_runs,
    products,
    scheduler_commands,
)
from christmas_spiders.vendors import VENDORS

from .conftest import PROJECT_ROOT
from .replica.client import Replica

OS = "ornament_shop_com"
FAST = {"AUTOTHROTTLE_ENABLED": "0", "RETRY_BACKOFF_BASE": "0.05", "RETRY_BACKOFF_MAX": "1"}
READY = "scheduler ready"


def quiet_schedule(**changes: Any) -> dict[str, Any]:
    """Every trigger 12 hours or more away; the ornament shop only; fast crawls."""
    at = datetime.now(UTC) + timedelta(hours=12)
    weekday = (at + timedelta(days=3)).strftime("%a").lower()
    daily = f"{at.minute} {at.hour} * * *"
    return {
        "timezone": "UTC",
        "vendors": [OS],
        "quick": {"cron": daily},
        "quick_by_vendor": {OS: {}},  # the shop's own default (every 6 h) left out
        "sync": {"cron": daily, "spread": "1h"},
        "years": {"cron": f"{at.minute} {at.hour} * * {weekday}"},
        "stale": {"cron": daily},
        "crawl_settings": FAST,
        "stop_grace": "3s",
        "control_poll": "1s",
        **changes,
    }


class SchedulerProcess:
    """`python scheduler.py`, its output in a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> SchedulerProcess:
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                [sys.executable, "scheduler.py"],
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(re.findall(pattern, self.log)) < count:
            assert self.popen is not None and self.popen.poll() is None, (
                f"the scheduler exited ({self.popen.returncode if self.popen else '?'}):\n"
                + self.log[-4000:]
            )
            assert time.monotonic() < deadline, f"no {pattern!r} in time:\n{self.log[-4000:]}"
            time.sleep(0.1)

    def stop(self, timeout: float = 60) -> int:
        assert self.popen is not None
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(timeout)

    def kill(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


@pytest.fixture
def environment(tmp_path: Path, database_url: str, replica: Replica) -> Callable[..., dict]:
    """The scheduler's environment: this test's database, every shop on the replica, and this
    schedule in the configuration file."""

    def build(schedule: dict[str, Any]) -> dict[str, str]:
        path = tmp_path / "config.json"
        vendors = {vendor: {"base_url": replica.base_urls[vendor]} for vendor in VENDORS}
        path.write_text(json.dumps({"vendors": vendors, "schedule": schedule}))
        env = {
            name: value
            for name, value in os.environ.items()
            if name not in ("DATABASE_URL", "REDIS_URL", "ENV", "CHRISTMAS_SCHEDULE")
        }
        env.update(
            DATABASE_URL=database_url,
            CONFIG_PATH=str(path),
            CHRISTMAS_DATA_DIR=str(tmp_path / "data"),
            PYTHONUNBUFFERED="1",
        )
        return env

    return build


@pytest.fixture
def scheduler(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], SchedulerProcess]]:
    """Start schedulers; any still running at the end is killed."""
    started: list[SchedulerProcess] = []

    def start(env: dict[str, str]) -> SchedulerProcess:
        process = SchedulerProcess(env, tmp_path / f"scheduler-{len(started)}.log").start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


def cli(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "scheduler.py", *arguments],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def config_of(env: dict[str, str]) -> Config:
    return config_module.load(env)


@contextmanager
def offline_store(config: Config) -> Iterator[BaseScheduler]:
    """The job store, written as the CLI does when no scheduler runs (as its one writer)."""
    with store.job_store_writer(config) as writer, store.offline_apscheduler(config) as control:
        assert writer, "a scheduler is running"
        yield control


def stored_jobs(engine: Engine) -> dict[str, float | None]:
    """The job store's rows: job id → next run time (a UTC timestamp, None when paused)."""
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT id, next_run_time FROM apscheduler_jobs"))
        return dict(rows.all())


def runs(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(sa.select(crawl_runs).order_by(crawl_runs.c.id)).all()
    return [dict(row._mapping) for row in rows]


def crawling(engine: Engine) -> list[int]:
    """The runs a crawl has joined and not ended: the scheduler opens a run before its crawl
    starts, and the crawl records itself in the run once it is up."""
    with engine.connect() as connection:
        return list(
            connection.execute(
                sa.select(crawl_runs.c.id)
                .join(crawl_run_processes, crawl_run_processes.c.run_id == crawl_runs.c.id)
                .where(crawl_runs.c.status == "running")
            ).scalars()
        )


def wait_until(condition: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "the condition did not come true in time"
        time.sleep(0.1)
    return value


def listed_years(replica: Replica, vendor: str) -> set[int]:
    return {category.year for category in replica.shop(vendor).year_categories()}


def test_a_restart_finds_the_same_jobs_with_the_same_next_run_times(
    environment, scheduler, replica: Replica, engine: Engine
) -> None:
    env = environment(quiet_schedule())
    first = scheduler(env)
    first.wait_for(READY)
    before = stored_jobs(engine)
    years = listed_years(replica, OS)
    assert set(before) == {jobs.sync_id(OS, year) for year in years} | {
        jobs.years_id(OS),
        jobs.stale_id(OS),
        jobs.quick_id(OS),
        jobs.MARKET_ID,
    }
    assert first.stop() == 0

    second = scheduler(env)
    second.wait_for(READY)
    shop_jobs = len(before) - 1  # the market job is reconciled apart
    assert f"0 job(s) added, 0 rescheduled, 0 changed, 0 removed, {shop_jobs} unchanged" in (
        second.log
    )
    assert stored_jobs(engine) == before
    assert second.stop() == 0


def test_a_second_scheduler_refuses_to_start(environment, scheduler) -> None:
    env = environment(quiet_schedule())
    first = scheduler(env)
    first.wait_for(READY)
    second = cli(env)
    assert second.returncode == 1
    assert "another scheduler is running on this database" in second.stdout
    assert "refusing to start" in second.stdout
    assert first.popen is not None and first.popen.poll() is None
    assert first.stop() == 0


def test_an_interval_job_fires_and_its_crawl_stores_the_products(
    environment, scheduler, replica: Replica, engine: Engine
) -> None:
    schedule = quiet_schedule(sync={"interval": "2s", "spread": 0}, max_crawls=1)
    process = scheduler(environment(schedule))
    wait_until(lambda: [run for run in runs(engine) if run["status"] == "finished"])
    assert process.stop() == 0
    assert [run for run in runs(engine) if run["status"] == "running"] == []
    run = next(run for run in runs(engine) if run["status"] == "finished")
    year = int(run["arguments"]["year"])
    assert run["stats"]["scheduler/job_id"] == jobs.sync_id(OS, year)
    with engine.connect() as connection:
        stored = set(
            connection.execute(
                sa.select(products.c.vendor_product_id).where(products.c.release_year == year)
            ).scalars()
        )
    assert stored == {item.vendor_product_id for item in replica.expected_items(OS, {year})}


def test_run_now_fires_a_one_off_date_trigger_once_and_leaves_the_schedule(
    environment, scheduler, engine: Engine
) -> None:
    # control_poll is long: only the CLI's NOTIFY can wake the scheduler in time.
    env = environment(quiet_schedule(control_poll="5m"))
    process = scheduler(env)
    process.wait_for(READY)
    job_id = jobs.sync_id(OS, 2019)
    before = stored_jobs(engine)

    answer = cli(env, "run", job_id)
    assert answer.returncode == 0, answer.stdout + answer.stderr
    assert f"{job_id} runs now ({jobs.RUN_PREFIX}{job_id})" in answer.stdout  # its answer
    process.wait_for(rf"{job_id}: crawl run \d+ finished")
    after = stored_jobs(engine)
    assert jobs.RUN_PREFIX + job_id not in after  # a date trigger fires once, then is gone
    assert after == before
    assert [(run["arguments"], run["status"]) for run in runs(engine)] == [
        ({"year": "2019"}, "finished")
    ]
    assert process.stop() == 0


def test_pause_and_resume_take_effect_in_the_running_scheduler(
    environment, scheduler, engine: Engine
) -> None:
    # The year-index job runs every second too, unpaused: the clock the paused job is read by.
    every_second = {"interval": "1s", "spread": 0}
    env = environment(quiet_schedule(stale=every_second, years=every_second, control_poll="5m"))
    process = scheduler(env)
    ran = rf"{jobs.stale_id(OS)}: 0 product\(s\) not synced"
    ticked = rf"{jobs.years_id(OS)}: {OS} lists "
    process.wait_for(ran, count=2)

    assert cli(env, "pause", jobs.stale_id(OS)).returncode == 0
    listing = cli(env, "list").stdout
    assert f"| {jobs.stale_id(OS)} | every 1s | paused |" in listing
    paused_at = len(re.findall(ran, process.log))
    # Four more runs of the other every-second job: the paused one was due three times or more.
    process.wait_for(ticked, count=len(re.findall(ticked, process.log)) + 4)
    assert len(re.findall(ran, process.log)) <= paused_at + 1  # at most one in flight
    assert stored_jobs(engine)[jobs.stale_id(OS)] is None  # the loop never wrote it back

    assert cli(env, "resume", jobs.stale_id(OS)).returncode == 0
    process.wait_for(ran, count=paused_at + 3)
    assert process.stop() == 0


def test_missed_runs_after_downtime_are_coalesced_into_one(
    environment, scheduler, engine: Engine
) -> None:
    daily = quiet_schedule()["sync"]["cron"]
    env = environment(quiet_schedule(sync={"cron": daily, "spread": "1h", "misfire_grace": "4d"}))
    first = scheduler(env)
    first.wait_for(READY)
    assert first.stop() == 0

    # Three days of downtime: the job's next run time goes back three daily runs. The other
    # jobs are paused, so nothing else can run.
    job_id = jobs.sync_id(OS, 2019)
    config = config_of(env)
    with offline_store(config) as control:
        for job in control.get_jobs():
            if job.id != job_id:
                control.pause_job(job.id)
        due = control.get_job(job_id).next_run_time
        control.modify_job(job_id, next_run_time=due - timedelta(days=3))

    second = scheduler(env)
    second.wait_for(rf"{job_id}: crawl run \d+ finished")
    assert second.stop() == 0
    assert [(run["arguments"], run["status"]) for run in runs(engine)] == [
        ({"year": "2019"}, "finished")
    ]
    assert stored_jobs(engine)[job_id] == due.timestamp()  # back on its schedule


def _crawl_child(scheduler_pid: int) -> psutil.Process:
    children = psutil.Process(scheduler_pid).children(recursive=True)
    return next(child for child in children if "crawl" in child.cmdline())


def test_a_failing_crawl_is_recorded_failed_and_the_scheduler_carries_on(
    environment, scheduler, replica_reset: Replica, engine: Engine
) -> None:
    env = environment(quiet_schedule())
    process = scheduler(env)
    process.wait_for(READY)
    replica_reset.set_latency(1500, OS)
    assert cli(env, "run", jobs.sync_id(OS, 2019)).returncode == 0
    wait_until(lambda: crawling(engine))
    _crawl_child(process.pid).kill()  # e.g. out of memory: no chance to record its end

    process.wait_for(rf"{jobs.sync_id(OS, 2019)}: crawl run \d+ FAILED")
    [failed] = runs(engine)
    assert failed["status"] == "failed"
    assert failed["close_reason"] == "ended without recording its end (killed by SIGKILL)"
    assert failed["finished_at"] is not None
    assert failed["stats"]["scheduler/exit_status"] == -signal.SIGKILL

    replica_reset.set_latency(0, OS)
    assert cli(env, "run", jobs.sync_id(OS, 2018)).returncode == 0
    process.wait_for(rf"{jobs.sync_id(OS, 2018)}: crawl run \d+ finished")
    assert process.stop() == 0


def test_sigterm_stops_the_running_crawl_and_records_it(
    environment, scheduler, replica_reset: Replica, engine: Engine
) -> None:
    env = environment(quiet_schedule())
    process = scheduler(env)
    process.wait_for(READY)
    replica_reset.set_latency(1500, OS)
    assert cli(env, "run", jobs.sync_id(OS, 2019)).returncode == 0
    wait_until(lambda: crawling(engine))

    assert process.stop() == 0
    assert "scheduler stopped" in process.log
    [run] = runs(engine)
    assert (run["status"], run["close_reason"]) == ("failed", "scheduler_stopped")
    assert run["finished_at"] is not None
    crawls = [
        child for child in psutil.Process().children(recursive=True) if "crawl" in child.cmdline()
    ]
    assert crawls == []  # the crawl, and anything it started, are gone


def test_list_shows_every_job_its_trigger_and_next_run_time(environment, engine: Engine) -> None:
    env = environment({"crawl_settings": FAST})  # the default schedule, every shop
    config = config_of(env)
    with offline_store(config) as control:
        JobScheduler(config).set_up_jobs(control, threading.Lock())
        control.pause_job(jobs.stale_id(OS))

    answer = cli(env, "list")
    assert answer.returncode == 0, answer.stderr
    lines = answer.stdout.splitlines()
    assert lines[:3] == [
        f"scheduler: not running; {len(stored_jobs(engine))} job(s); times in UTC",
        "| job | trigger | next run |",
        "| --- | --- | --- |",
    ]
    rows = {line.split(" | ")[0].removeprefix("| "): line for line in lines[3:]}
    assert set(rows) == set(stored_jobs(engine))
    for job_id, next_run in stored_jobs(engine).items():
        shown = (
            "paused"
            if next_run is None
            else f"{datetime.fromtimestamp(next_run, UTC):%Y-%m-%d %H:%M:%S}"
        )
        assert rows[job_id].endswith(f" | {shown} |")
    sync = jobs.sync_id(OS, 2019)  # weekly, the years spread over the week
    assert re.match(rf"\| {sync} \| cron 0 0 \* \* sun \+(\dd )?\d\d:\d\d:\d\d \| ", rows[sync])
    # Its 12-card listing pages: the shop's quick syncs every 6 hours, not hourly.
    assert rows[jobs.quick_id(OS)].startswith(f"| {jobs.quick_id(OS)} | every 6h +00:20:00 |")
    assert rows[jobs.years_id(OS)].startswith(
        f"| {jobs.years_id(OS)} | cron 0 5 * * sun +00:20:00 |"
    )
    print(answer.stdout)  # the listing, for the record (pytest -s)


def test_with_no_scheduler_running_the_cli_applies_its_command_itself(
    environment, scheduler, engine: Engine
) -> None:
    env = environment(quiet_schedule())
    config = config_of(env)
    with offline_store(config) as control:
        JobScheduler(config).set_up_jobs(control, threading.Lock())
    job_id = jobs.stale_id(OS)

    paused = cli(env, "pause", job_id)
    assert paused.returncode == 0, paused.stdout + paused.stderr
    assert f"{job_id} is paused" in paused.stdout
    assert stored_jobs(engine)[job_id] is None
    unknown = cli(env, "resume", "sync:nowhere:1999")
    assert unknown.returncode == 1
    assert "there is no job 'sync:nowhere:1999'" in unknown.stdout
    with engine.connect() as connection:
        answered = connection.execute(
            sa.select(scheduler_commands.c.action, scheduler_commands.c.ok).order_by(
                scheduler_commands.c.id
            )
        ).all()
    assert [tuple(row) for row in answered] == [("pause", True), ("resume", False)]

    process = scheduler(env)  # the pause holds in the scheduler started afterwards
    process.wait_for(READY)
    assert stored_jobs(engine)[job_id] is None
    assert process.stop() == 0
