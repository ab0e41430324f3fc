"""The job store outlives a database that goes away (a private PostgreSQL, stopped and started),
and hands out no due job once the scheduler stops."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.triggers.interval import IntervalTrigger

from christmas_spiders.config import Config
from christmas_spiders.scheduling import jobs, store

from .conftest import PrivatePostgres


def wait_until(condition: Callable[[], object], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(0.05)


def test_writes_wait_for_the_database_and_no_job_is_due_once_stopping(
    private_postgres: PrivatePostgres, caplog: pytest.LogCaptureFixture
) -> None:
    stopping = threading.Event()
    job_store = store.job_store(Config(database_url=private_postgres.url), stopping, 1.0)
    apscheduler = store.OfflineAPScheduler(jobstores={"default": job_store}, timezone=UTC)
    apscheduler.start(paused=True)
    due = datetime.now(UTC) - timedelta(minutes=1)
    hourly = IntervalTrigger(hours=1)
    for job_id in ("kept", "removed"):
        apscheduler.add_job(jobs.resync_stale, hourly, id=job_id, kwargs={"vendor": "x"})
    apscheduler.modify_job("kept", next_run_time=due)
    kept = apscheduler.get_job("kept")  # as the loop holds it: due now
    apscheduler.modify_job("kept", next_run_time=due + timedelta(days=1))

    private_postgres.stop()
    before = datetime.now(UTC)
    wake_at = job_store.get_next_run_time()  # the loop looks again soon instead of dying
    assert wake_at is not None and before < wake_at <= datetime.now(UTC) + timedelta(seconds=1)
    writes = [
        threading.Thread(target=job_store.update_job, args=(kept,)),
        threading.Thread(target=job_store.remove_job, args=("removed",)),
    ]
    for write in writes:
        write.start()
    wait_until(lambda: caplog.text.count("could not save") >= 2, "both writes failed once")
    assert all(write.is_alive() for write in writes)  # still trying
    private_postgres.start()
    for write in writes:
        write.join(60)
    assert not any(write.is_alive() for write in writes)

    assert job_store.lookup_job("removed") is None
    assert job_store.get_due_jobs(datetime.now(UTC)) == [kept]  # its write went through
    stopping.set()
    assert job_store.get_due_jobs(datetime.now(UTC)) == []
    apscheduler.shutdown(wait=False)
