"""The ``schedule`` option of the configuration: when each kind of job runs, and its limits.

It imports nothing of the project but the vendor list and the configuration's fields (and
APScheduler's cron parser, to reject a bad expression at start), so the scheduler imports it and
not the other way round. Every problem is one sentence naming the key, e.g.
``schedule.sync.cron '0 25 * * *' is not a cron expression: …``. See docs/scheduler.md.

    "schedule": {
      "timezone": "America/New_York",
      "vendors": ["ornament_shop_com", "hookedonhallmark_com"],
      "quick": {"interval": "1h", "spread": "1h", "budget": "45m"},
      "quick_by_vendor": {"ornament_shop_com": {"interval": "6h"}},
      "sync":  {"cron": "0 1 * * sun", "spread": "7d", "budget": "3h", "misfire_grace": "6h"},
      "years": {"cron": "0 5 * * sun"},
      "stale": {"interval": "6h", "budget": "10m"},
      "stale_after": "3d", "stale_batch": 50, "max_crawls": 2,
      "crawl_settings": {"LOG_LEVEL": "INFO"}
    }

Durations are seconds, or a string such as ``"90s"``, ``"15m"``, ``"6h"``, ``"1d"``, ``"1w"``,
``"1h30m"``. A job kind has exactly one of ``cron`` (five crontab fields, evaluated in
``timezone``) and ``interval``. Keys left out keep their defaults (within a job kind too).
``quick_by_vendor`` changes the ``quick`` kind for some shops (``Schedule.quick_for``); a shop's
entry replaces its default one, and ``{}`` gives the shop ``quick`` as it is.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from itertools import islice, takewhile
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import marshmallow as ma
from apscheduler.triggers.cron import CronTrigger
from marshmallow import ValidationError, fields

from christmas_spiders.config.fields import (
    Object,
    OwnSentences,
    Strict,
    from_json,
    integer,
    names,
    read_value,
)
from christmas_spiders.vendors import VENDORS

MINUTE, HOUR, DAY, WEEK = 60.0, 3600.0, 86400.0, 604800.0
_UNITS = {"s": 1.0, "m": MINUTE, "h": HOUR, "d": DAY, "w": WEEK}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_SETTING_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


@dataclass(frozen=True)
class JobKind:
    """When the jobs of one kind fire, and their limits (durations in seconds)."""

    cron: str | None = None  # crontab expression, in the schedule's timezone
    interval: float | None = None  # or every this many seconds
    spread: float = 0.0  # the jobs of the kind are staggered over this window
    budget: float | None = None  # a crawl longer than this is stopped and recorded failed
    misfire_grace: float = HOUR  # a run missed by more than this (scheduler down) is skipped


@dataclass(frozen=True)
class Schedule:
    """See docs/scheduler.md; every duration is in seconds."""

    timezone: str = "UTC"
    vendors: tuple[str, ...] = tuple(VENDORS)
    # One job per vendor: `scrapy crawl <vendor> -a mode=quick` (the listings first), hourly.
    quick: JobKind = JobKind(
        interval=HOUR, spread=HOUR, budget=45 * MINUTE, misfire_grace=30 * MINUTE
    )
    # Changes to `quick` for some shops, as (vendor, ((key, value), …)): ornament-shop.com's
    # listing pages hold 12 products, so reading them hourly costs more than a daily full sync;
    # every 6 hours there (docs/scheduler.md, bench figure 10).
    quick_by_vendor: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = (
        ("ornament_shop_com", (("cron", None), ("interval", 6 * HOUR))),
    )
    # One job per vendor × listed year: `scrapy crawl <vendor> -a year=<year>`, weekly.
    sync: JobKind = JobKind(
        cron="0 0 * * sun", spread=WEEK, budget=3 * HOUR, misfire_grace=6 * HOUR
    )
    # One job per vendor: re-read the year index, add jobs for new years, drop unlisted ones.
    years: JobKind = JobKind(cron="0 5 * * sun", spread=HOUR, misfire_grace=2 * DAY)
    # One job per vendor: `scrapy crawl <vendor> -a product_id=<id>` for each stale product.
    stale: JobKind = JobKind(cron="0 */6 * * *", spread=HOUR, budget=10 * MINUTE)
    stale_after: float = 3 * DAY  # a listed product not synced for this long is stale
    stale_batch: int = 50  # at most this many stale products per vendor and run
    max_crawls: int = 2  # crawls at once, all jobs together
    stop_grace: float = 20.0  # on SIGTERM or a budget: how long a crawl may take to stop
    control_poll: float = 5.0  # the job store is re-read at least this often
    crawl_settings: tuple[tuple[str, str], ...] = ()  # `-s NAME=VALUE` for every crawl

    def quick_for(self, vendor: str) -> JobKind:
        """The quick syncs of one shop: `quick`, with the shop's `quick_by_vendor` changes."""
        return replace(self.quick, **dict(dict(self.quick_by_vendor).get(vendor, ())))


def format_duration(seconds: float) -> str:
    """1800 → '30m', 90061 → '1d1h1m1s', 0.5 → '0.5s'."""
    if seconds < 1:
        return f"{seconds:g}s"
    whole, parts = int(seconds), []
    for unit, size in (("d", DAY), ("h", HOUR), ("m", MINUTE), ("s", 1.0)):
        count, whole = divmod(whole, int(size))
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


class Duration(OwnSentences, fields.Field):
    """Seconds, from a number or a string such as '90s', '15m', '6h', '1d', '1w', '1h30m'."""

    default_error_messages: ClassVar[dict[str, str]] = {
        "invalid": "must be a duration such as 30, '90s', '15m', '6h' or '1d', not {input!r}.",
        "range": "must be between {min} and {max}, not {input!r}.",
    }

    def __init__(self, minimum: float, maximum: float) -> None:
        super().__init__()
        self.minimum, self.maximum = minimum, maximum

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> float:
        seconds: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            seconds = float(value)
        elif isinstance(value, str):
            text = value.strip().lower()
            if re.fullmatch(r"\d+(?:\.\d+)?", text):
                seconds = float(text)
            elif text and re.fullmatch(rf"(?:{_DURATION_PART.pattern}\s*)+", text):
                seconds = sum(float(n) * _UNITS[unit] for n, unit in _DURATION_PART.findall(text))
        if seconds is None:
            raise self.make_error("invalid", input=value)
        if not self.minimum <= seconds <= self.maximum:
            low, high = format_duration(self.minimum), format_duration(self.maximum)
            raise self.make_error("range", min=low, max=high, input=value)
        return seconds


def parse_duration(key: str, value: Any, minimum: float, maximum: float) -> float:
    """Seconds from a number or a duration string; ConfigError naming `key` if it is not one."""
    return read_value(key, Duration(minimum, maximum), value)


class _TimeZone(OwnSentences, fields.Field):
    default_error_messages: ClassVar[dict[str, str]] = {
        "invalid": "must be an IANA time zone such as 'UTC' or 'America/New_York'.",
        "unknown": "must be an IANA time zone such as 'UTC' or 'America/New_York', not {input!r}.",
    }

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.make_error("invalid")
        try:
            ZoneInfo(value.strip())
        except (ZoneInfoNotFoundError, ValueError):
            raise self.make_error("unknown", input=value) from None
        return value.strip()


class _Cron(OwnSentences, fields.Field):
    """A five-field crontab expression APScheduler accepts; weekdays by name only."""

    default_error_messages: ClassVar[dict[str, str]] = {
        "invalid": "must be a cron expression such as '0 3 * * *'."
    }

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.make_error("invalid")
        expression = " ".join(value.split())
        parts = expression.split(" ")
        if len(parts) == 5 and re.search(r"\d", parts[4]):
            # APScheduler 3 counts weekdays from 0 = Monday, crontab from 0 = Sunday: a number
            # would silently run the job a day off, so only names are accepted.
            raise ValidationError(
                f"{expression!r}: give the day of week by name (sun, mon-fri, sat,sun), "
                "not by number."
            )
        try:  # the time zone changes when it fires, not whether the expression is valid
            CronTrigger.from_crontab(expression, timezone=ZoneInfo("UTC"))
        except ValueError as error:
            raise ValidationError(
                f"{expression!r} is not a cron expression (minute hour day month "
                f"day-of-week): {error}."
            ) from None
        return expression


class _CrawlSettings(OwnSentences, fields.Field):
    """Scrapy settings (`-s NAME=VALUE`) as (name, text) pairs."""

    default_error_messages: ClassVar[dict[str, str]] = {
        "invalid": 'must be an object of Scrapy settings, e.g. {{"LOG_LEVEL": "INFO"}}.'
    }

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> tuple:
        if not isinstance(value, dict):
            raise self.make_error("invalid")
        result = []
        for name, setting in value.items():
            if not _SETTING_NAME.match(name):
                raise ValidationError(f"has {name!r}, which is not a Scrapy setting name.")
            if isinstance(setting, dict | list) or setting is None:
                raise ValidationError({name: ["must be a string, number or boolean."]})
            result.append(
                (name, str(setting).lower() if isinstance(setting, bool) else str(setting))
            )
        return tuple(result)


class _JobKind(Strict):
    cron = _Cron()
    interval = Duration(1.0, 366 * DAY)
    spread = Duration(0.0, 7 * DAY)
    budget = Duration(1.0, 2 * DAY)
    misfire_grace = Duration(1.0, 30 * DAY)

    def check(self, data: dict[str, Any]) -> None:
        if "cron" in data and "interval" in data:
            raise ValidationError("needs exactly one of 'cron' and 'interval'.")

    @ma.post_load
    def trigger(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        # The changes to the kind's default: the trigger given replaces the default's.
        if "cron" in data:
            data["interval"] = None
        elif "interval" in data:
            data["cron"] = None
        return data


class _KindByVendor(OwnSentences, fields.Field):
    """{vendor: changes to a job kind} as (vendor, ((key, value), …)) pairs."""

    default_error_messages: ClassVar[dict[str, str]] = {
        "invalid": 'must be an object of vendor ids, e.g. {{"ornament_shop_com": '
        '{{"interval": "6h"}}}}.'
    }

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> tuple:
        if not isinstance(value, dict):
            raise self.make_error("invalid")
        result = []
        for vendor, kind in value.items():
            if vendor not in VENDORS:
                raise ValidationError(
                    f"has unknown vendor {vendor!r}; known: {', '.join(VENDORS)}."
                )
            try:
                changes = Object(_JobKind).deserialize(kind)
            except ValidationError as error:
                raise ValidationError({vendor: error.messages}) from None
            result.append((vendor, tuple(sorted(changes.items()))))
        return tuple(result)


_WHOLE = {"invalid": "must be a whole number, not {input!r}."}


class _Schedule(Strict):
    timezone = _TimeZone()
    vendors = names(
        VENDORS,
        invalid=f"must be a list of vendor ids from {', '.join(VENDORS)}.",
        unknown="has unknown vendor {first!r}; known: {choices}.",
        allow_empty=True,
    )
    quick = Object(_JobKind)
    quick_by_vendor = _KindByVendor()
    sync = Object(_JobKind)
    years = Object(_JobKind, exclude=("budget",))
    stale = Object(_JobKind)
    stale_batch = integer(1, 10_000, error_messages=_WHOLE)
    max_crawls = integer(1, 50, error_messages=_WHOLE)
    stale_after = Duration(MINUTE, 366 * DAY)
    stop_grace = Duration(0.0, 300.0)
    control_poll = Duration(0.2, 300.0)
    crawl_settings = _CrawlSettings()

    @ma.post_load
    def build(self, data: dict[str, Any], **kwargs: Any) -> Schedule:
        default = Schedule()
        for kind in ("quick", "sync", "years", "stale"):
            if kind in data:
                data[kind] = replace(getattr(default, kind), **data[kind])
        if "quick_by_vendor" in data:  # a shop given replaces its default entry
            given = dict(data["quick_by_vendor"])
            kept = [(v, c) for v, c in default.quick_by_vendor if v not in given]
            data["quick_by_vendor"] = (*kept, *given.items())
        return replace(default, **data)


def _cron_fires(kind: JobKind, timezone: str) -> Iterator[datetime]:
    """A cron kind's fire times, in UTC, from a fixed moment (2024-01-01 in `timezone`: the
    same answer always) on, until the expression has no more."""
    assert kind.cron, "a job kind has a cron expression or an interval"
    trigger = CronTrigger.from_crontab(kind.cron, timezone=ZoneInfo(timezone))
    previous, moment = None, _FIXED_START.replace(tzinfo=ZoneInfo(timezone))
    while (moment := trigger.get_next_fire_time(previous, moment)) is not None:
        yield moment.astimezone(UTC)  # in UTC: the same zone's datetimes subtract as wall clocks
        previous, moment = moment, moment + timedelta(seconds=1)


_FIXED_START = datetime(2024, 1, 1)


def runs_per_day(kind: JobKind, timezone: str = "UTC") -> float:
    """How often a job of this kind runs a day: DAY / interval, or a cron expression's fire
    times over a week, divided by 7."""
    if kind.interval:
        return DAY / kind.interval
    end = _FIXED_START.replace(tzinfo=ZoneInfo(timezone)) + timedelta(days=7)
    return sum(1 for _ in takewhile(lambda moment: moment < end, _cron_fires(kind, timezone))) / 7


def longest_gap(kind: JobKind, timezone: str = "UTC") -> float:
    """The longest time between two runs of a job of this kind, in seconds: the interval, or
    the longest gap between a cron expression's fire times over a year (DST included)."""
    if kind.interval:
        return kind.interval
    end = _FIXED_START.replace(tzinfo=ZoneInfo(timezone)) + timedelta(days=366)
    longest, previous, fires = 0.0, None, 0
    # Fire by fire, up to a year or 10,000 fires (a job firing that often has no long gaps).
    for moment in islice(_cron_fires(kind, timezone), 10_000):
        fires += 1
        if previous is not None:
            longest = max(longest, (moment - previous).total_seconds())
        if moment >= end:
            return longest
        previous = moment
    return longest if fires == 10_000 else math.inf  # else the expression stopped firing


def schedule_field() -> Object:
    """The `schedule` key: an object, or its JSON from the environment."""
    return Object(_Schedule, pre_load=from_json)
