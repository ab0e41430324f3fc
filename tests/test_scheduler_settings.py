"""The `schedule` option and the triggers built from it: pure, no database."""

from __future__ import annotations

import itertools
import json
import pickle
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from christmas_spiders import config
from christmas_spiders.config.schedule import (
    DAY,
    HOUR,
    MINUTE,
    WEEK,
    JobKind,
    Schedule,
    parse_duration,
)
from christmas_spiders.scheduling import triggers
from christmas_spiders.vendors import VENDORS

OS = "ornament_shop_com"


def load(schedule: object) -> Schedule:
    return config.load({"ENV": "", "CHRISTMAS_SCHEDULE": json.dumps(schedule)}).schedule


def test_the_defaults_are_an_hourly_quick_sync_a_weekly_sync_year_list_and_a_stale_sweep() -> None:
    schedule = config.load({"ENV": ""}).schedule
    assert schedule == Schedule()
    assert schedule.vendors == tuple(VENDORS)
    assert schedule.quick == JobKind(
        interval=HOUR, spread=HOUR, budget=45 * MINUTE, misfire_grace=30 * MINUTE
    )
    assert schedule.sync == JobKind(
        cron="0 0 * * sun", spread=WEEK, budget=3 * HOUR, misfire_grace=6 * HOUR
    )
    assert schedule.years.cron == "0 5 * * sun"
    assert schedule.stale.cron == "0 */6 * * *"
    # ornament-shop.com's 12-card listing pages: its quick syncs every 6 hours.
    assert schedule.quick_for(OS) == replace(schedule.quick, interval=6 * HOUR)
    assert schedule.quick_for("hookedonhallmark_com") == schedule.quick


def test_a_shop_gets_its_own_quick_sync_changes_and_a_shop_named_replaces_its_default() -> None:
    schedule = load(
        {
            "quick": {"budget": "30m"},
            "quick_by_vendor": {"hallmark_ornaments_com": {"cron": "15 */2 * * *"}},
        }
    )
    assert schedule.quick_for("hallmark_ornaments_com") == JobKind(
        cron="15 */2 * * *", spread=HOUR, budget=30 * MINUTE, misfire_grace=30 * MINUTE
    )
    assert schedule.quick_for(OS).interval == 6 * HOUR  # its default entry stays
    assert schedule.quick_for(OS).budget == 30 * MINUTE
    assert load({"quick_by_vendor": {OS: {}}}).quick_for(OS) == Schedule().quick


def test_keys_left_out_keep_their_defaults_within_a_kind_too() -> None:
    schedule = load(
        {
            "timezone": "America/New_York",
            "sync": {"cron": "30 1 * * *", "budget": "90m"},
            "stale": {"interval": "6h"},
            "max_crawls": 3,
            "crawl_settings": {"AUTOTHROTTLE_ENABLED": False, "DOWNLOAD_DELAY": 0.5},
        }
    )
    assert schedule.timezone == "America/New_York"
    assert schedule.sync == JobKind(
        cron="30 1 * * *", spread=WEEK, budget=90 * 60, misfire_grace=6 * HOUR
    )
    assert schedule.stale.interval == 6 * HOUR and schedule.stale.cron is None
    assert schedule.stale.budget == Schedule().stale.budget
    assert schedule.max_crawls == 3
    assert schedule.crawl_settings == (("AUTOTHROTTLE_ENABLED", "false"), ("DOWNLOAD_DELAY", "0.5"))


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ({"sync": {"cron": "0 25 * * *"}}, "schedule.sync.cron '0 25 * * *' is not a cron"),
        ({"sync": {"cron": "0 1 * *"}}, "schedule.sync.cron '0 1 * *' is not a cron"),
        ({"years": {"cron": "0 5 * * 0"}}, "schedule.years.cron '0 5 * * 0': give the day"),
        ({"sync": {"cron": "0 1 * * *", "interval": 60}}, "schedule.sync needs exactly one"),
        ({"stale": {"interval": "0s"}}, "schedule.stale.interval must be between 1s and"),
        ({"stale_after": "3 days"}, "schedule.stale_after must be a duration"),
        ({"timezone": "Mars/Base"}, "schedule.timezone must be an IANA time zone"),
        ({"vendors": ["ebay_com"]}, "schedule.vendors has unknown vendor 'ebay_com'"),
        ({"years": {"budget": "1h"}}, "schedule.years has unknown key 'budget'"),
        ({"max_crawls": 0}, "schedule.max_crawls must be between 1 and 50"),
        ({"crawl_settings": {"lower": 1}}, "schedule.crawl_settings has 'lower', which is not"),
        ({"hourly": True}, "schedule has unknown key 'hourly'"),
        ({"quick_by_vendor": {"ebay_com": {}}}, "schedule.quick_by_vendor has unknown vendor"),
        (
            {"quick_by_vendor": {"ornament_shop_com": {"interval": "0s"}}},
            "schedule.quick_by_vendor.ornament_shop_com.interval must be between 1s and",
        ),
        ([], "schedule must be an object"),
    ],
)
def test_a_bad_schedule_stops_the_start_with_one_sentence_naming_the_key(
    schedule: object, message: str, tmp_path
) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"schedule": schedule}))
    with pytest.raises(config.ConfigError) as error:
        config.load({"CONFIG_PATH": str(path)})
    assert str(error.value).startswith(f"{path}: {message}"), error.value
    assert str(error.value).endswith(".")


def test_the_environment_variable_holds_the_schedule_as_json() -> None:
    with pytest.raises(config.ConfigError, match=r"^CHRISTMAS_SCHEDULE is not valid JSON"):
        config.load({"ENV": "", "CHRISTMAS_SCHEDULE": "{sync"})
    assert load({"stop_grace": "25s"}).stop_grace == 25.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(30, 30.0), ("90", 90.0), ("90s", 90.0), ("15m", 900.0), ("6h", 21600.0), ("1d", 86400.0),
     ("1w", 604800.0), ("1h30m", 5400.0), ("0.5s", 0.5)],
)  # fmt: skip
def test_durations_are_seconds_or_a_number_with_a_unit(text: object, seconds: float) -> None:
    assert parse_duration("key", text, 0, 10 * DAY) == seconds


def test_a_shifted_cron_fires_at_the_offset_every_day() -> None:
    base = CronTrigger.from_crontab("0 0 * * *", timezone=ZoneInfo("UTC"))
    shifted = triggers.Shifted(base, timedelta(hours=5, minutes=3))
    now = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    first = shifted.get_next_fire_time(None, now)
    assert first == datetime(2026, 11, 29, 5, 3, tzinfo=UTC)
    assert shifted.get_next_fire_time(first, first) == datetime(2026, 11, 30, 5, 3, tzinfo=UTC)
    early = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)
    assert shifted.get_next_fire_time(None, early) == datetime(2026, 11, 28, 5, 3, tzinfo=UTC)
    assert str(shifted) == "cron 0 0 * * * +05:03:00"
    copy = pickle.loads(pickle.dumps(shifted))
    assert triggers.signature(copy) == triggers.signature(shifted)


def test_sync_jobs_of_one_shop_spread_over_the_window_and_a_new_year_moves_none() -> None:
    kind = JobKind(cron="0 0 * * *", spread=DAY)
    vendor = "ornament_shop_com"
    offsets = {
        year: triggers.spread_trigger(kind, "UTC", triggers.sync_fraction(vendor, year)).offset
        for year in range(1973, 2027)
    }
    assert all(timedelta(0) < offset < timedelta(days=1) for offset in offsets.values())
    gaps = sorted(offsets.values())
    # 54 years over a day: evenly spread, none closer than 15 minutes to the next.
    assert min(b - a for a, b in itertools.pairwise(gaps)) > timedelta(minutes=15)
    again = triggers.spread_trigger(kind, "UTC", triggers.sync_fraction(vendor, 2019))
    assert again.offset == offsets[2019]  # depends on the vendor and year only


def test_interval_triggers_count_from_a_fixed_origin() -> None:
    kind = JobKind(interval=6 * HOUR)
    first = triggers.base_trigger(kind, "Europe/Berlin")
    second = triggers.base_trigger(kind, "Europe/Berlin")
    assert isinstance(first, IntervalTrigger)
    assert first.start_date == datetime(2024, 1, 1, tzinfo=ZoneInfo("Europe/Berlin"))
    assert triggers.signature(first) == triggers.signature(second)
    assert triggers.describe(first) == "every 6h"
