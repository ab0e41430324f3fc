"""The job set: generated from vendors × the years each replica shop lists, written to the job
store in PostgreSQL only when missing or changed. In-process, on the CLI's handle on the store
(a scheduler that never runs a job)."""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from christmas_spiders.config import Config
from christmas_spiders.distributed import yearlinks
from christmas_spiders.scheduling import jobs, store, years
from christmas_spiders.scheduling.runner import CrawlRunner
from christmas_spiders.scheduling.runtime import Runtime
from christmas_spiders.scheduling.service import JobScheduler
from christmas_spiders.scheduling.triggers import Shifted
from christmas_spiders.storage import get_engine
from christmas_spiders.vendors import VENDORS

from .replica.client import Replica

OS, HOOH = "ornament_shop_com", "hookedonhallmark_com"
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
EVERY = {"day": "*", "month": "*", "day_of_week": "*"}
SCHEDULE = {
    "timezone": "America/New_York",
    "sync": {"cron": "30 1 * * *", "spread": "12h", "misfire_grace": "3h"},
    "years": {"cron": "0 5 * * sun", "spread": "1h"},
    "stale": {"interval": "6h", "spread": 0},
}


@pytest.fixture
def configure(tmp_path: Path, replica: Replica, make_config) -> Callable[..., Config]:
    """Config on this test's database, with every shop on the replica and this schedule."""

    def build(schedule: dict[str, Any], base_urls: dict[str, str] | None = None, **env: str):
        path = tmp_path / f"config-{uuid.uuid4().hex[:6]}.json"
        origins = {**replica.base_urls, **(base_urls or {})}
        vendors = {vendor: {"base_url": origins[vendor]} for vendor in VENDORS}
        path.write_text(json.dumps({"vendors": vendors, "schedule": schedule}))
        return make_config(CONFIG_PATH=str(path), **env)

    return build


@contextmanager
def job_store(config: Config) -> Iterator[tuple[BaseScheduler, threading.Lock]]:
    """The job store as its one writer (no scheduler runs), and a lock for job-set changes."""
    with store.job_store_writer(config) as writer, store.offline_apscheduler(config) as scheduler:
        assert writer
        yield scheduler, threading.Lock()


def set_up(config: Config) -> dict[str, Any]:
    """What the scheduler does at start; the job store's {id: next run time} afterwards."""
    with job_store(config) as (scheduler, lock):
        JobScheduler(config).set_up_jobs(scheduler, lock)
        return {job.id: job.next_run_time for job in scheduler.get_jobs()}


def listed_years(replica: Replica, vendor: str) -> set[int]:
    return {category.year for category in replica.shop(vendor).year_categories()}


def fields(trigger: CronTrigger) -> dict[str, str]:
    """The crontab fields of a cron trigger."""
    names = ("minute", "hour", "day", "month", "day_of_week")
    return {field.name: str(field) for field in trigger.fields if field.name in names}


def test_jobs_are_created_for_exactly_vendors_times_listed_years_with_the_configured_triggers(
    configure, replica: Replica
) -> None:
    config = configure(SCHEDULE)
    set_up(config)
    with job_store(config) as (scheduler, _):
        found = {job.id: job for job in scheduler.get_jobs()}
    expected = {
        jobs.sync_id(vendor, year) for vendor in VENDORS for year in listed_years(replica, vendor)
    }
    expected |= {jobs.years_id(vendor) for vendor in VENDORS}
    expected |= {jobs.stale_id(vendor) for vendor in VENDORS}
    expected |= {jobs.quick_id(vendor) for vendor in VENDORS}
    assert set(found) == expected | {jobs.MARKET_ID}
    market = found[jobs.MARKET_ID]
    assert (market.func, market.executor) == (jobs.refresh_market, jobs.INDEX_EXECUTOR)

    new_york = ZoneInfo("America/New_York")
    for vendor in VENDORS:
        offsets = set()
        for year in listed_years(replica, vendor):
            job = found[jobs.sync_id(vendor, year)]
            assert job.func is jobs.sync_year and job.kwargs == {"vendor": vendor, "year": year}
            assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, 3 * 3600)
            assert isinstance(job.trigger, Shifted)
            base = job.trigger.trigger
            assert isinstance(base, CronTrigger) and base.timezone == new_york
            assert fields(base) == {**EVERY, "minute": "30", "hour": "1"}
            assert timedelta(0) < job.trigger.offset < timedelta(hours=12)
            offsets.add(job.trigger.offset)
        assert len(offsets) == len(listed_years(replica, vendor))  # never two at once

        refresh = found[jobs.years_id(vendor)]
        assert refresh.func is jobs.refresh_years and refresh.executor == jobs.INDEX_EXECUTOR
        index = list(VENDORS).index(vendor)
        cron = refresh.trigger.trigger if index else refresh.trigger
        assert fields(cron) == {**EVERY, "minute": "0", "hour": "5", "day_of_week": "sun"}
        if index:
            assert refresh.trigger.offset == timedelta(minutes=20 * index)

        stale = found[jobs.stale_id(vendor)]
        assert stale.func is jobs.resync_stale and stale.kwargs == {"vendor": vendor}
        assert isinstance(stale.trigger, IntervalTrigger)
        assert stale.trigger.interval == timedelta(hours=6)

        # Not configured here: the default, hourly (ornament-shop.com every 6 hours), the shops
        # 20 minutes apart.
        quick = found[jobs.quick_id(vendor)]
        assert quick.func is jobs.quick_sync and quick.kwargs == {"vendor": vendor}
        interval = quick.trigger.trigger if index else quick.trigger
        assert isinstance(interval, IntervalTrigger)
        assert interval.interval == timedelta(hours=6 if vendor == OS else 1)
        if index:
            assert quick.trigger.offset == timedelta(minutes=20 * index)


def test_a_second_start_keeps_every_job_and_its_next_run_time(configure) -> None:
    config = configure(SCHEDULE)
    first = set_up(config)
    assert set_up(config) == first


def test_a_changed_trigger_reschedules_the_jobs_and_a_paused_one_stays_paused(
    configure, replica: Replica
) -> None:
    set_up(configure(SCHEDULE))
    with job_store(configure(SCHEDULE)) as (scheduler, lock), lock:
        scheduler.pause_job(jobs.sync_id(OS, 2019))
    changed = configure({**SCHEDULE, "sync": {"cron": "15 2 * * *", "spread": "12h"}})
    after = set_up(changed)
    assert after[jobs.sync_id(OS, 2019)] is None
    with job_store(changed) as (scheduler, _):
        for job in scheduler.get_jobs():
            if job.id.startswith("sync:"):
                assert fields(job.trigger.trigger) == {**EVERY, "minute": "15", "hour": "2"}
                # the new misfire grace (the default, 6 h) came with it
                assert job.misfire_grace_time == 6 * 3600


def test_a_shop_dropped_from_the_schedule_loses_its_jobs(configure) -> None:
    set_up(configure(SCHEDULE))
    after = set_up(configure({**SCHEDULE, "vendors": [OS]}))
    assert {jobs.owner(job_id) for job_id in after} == {OS, None}  # None: the market job


def test_an_unreadable_year_index_keeps_the_jobs_and_is_read_again_later(configure) -> None:
    before = set_up(configure(SCHEDULE))
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{closed.getsockname()[1]}"
    after = set_up(configure(SCHEDULE, base_urls={OS: nowhere}))
    retry = after.pop(jobs.RUN_PREFIX + jobs.years_id(OS))
    assert after == before
    assert retry is not None


def test_the_weekly_job_adds_a_job_for_a_new_year_and_drops_an_unlisted_one(
    configure, replica: Replica
) -> None:
    config = configure(SCHEDULE)
    before = set_up(config)
    with job_store(config) as (scheduler, lock):
        with lock:  # as if the shop had not listed 2019 before, and had listed 1999
            scheduler.remove_job(jobs.sync_id(OS, 2019))
            spec = jobs.vendor_specs(config.schedule, OS, [1999])[0]
            scheduler.add_job(id=spec.id, trigger=spec.trigger, **spec.options())
        stopping = threading.Event()
        engine = get_engine(config)
        runner = CrawlRunner(config, engine, stopping)
        Runtime(config, engine, scheduler, runner, stopping, lock).refresh_years(OS)
        after = {job.id: job.next_run_time for job in scheduler.get_jobs()}
    assert set(after) == set(before)
    unchanged = set(before) - {jobs.sync_id(OS, 2019)}
    assert {job_id: after[job_id] for job_id in unchanged} == {
        job_id: before[job_id] for job_id in unchanged
    }


def test_with_redis_the_year_link_cache_answers_and_an_index_read_refreshes_it(
    configure, replica_reset: Replica
) -> None:
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    config = configure(SCHEDULE, REDIS_URL=REDIS_URL, CHRISTMAS_REDIS_KEY_PREFIX=prefix)
    server = redis.Redis.from_url(REDIS_URL)
    try:
        cache = yearlinks.for_config(config)
        cache.put(OS, {2019: [replica_reset.url(OS, "/2019-ornaments/")]})
        index_reads = replica_reset.stats(OS)["by_kind"].get("index", 0)
        cached = years.listed_years(config, OS, prefer_cache=True)
        assert (cached.years, cached.source, cached.authoritative) == ((2019,), "cache", False)
        assert replica_reset.stats(OS)["by_kind"].get("index", 0) == index_reads

        fresh = years.listed_years(config, OS, prefer_cache=False)
        assert fresh.source == "index" and set(fresh.years) == listed_years(replica_reset, OS)
        assert set(cache.get(OS, fresh.years)) == set(fresh.years)
    finally:
        for key in server.scan_iter(match=f"{prefix}:*", count=1000):
            server.delete(key)
        server.close()
