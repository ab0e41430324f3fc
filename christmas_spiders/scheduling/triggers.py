"""Triggers for the scheduler's jobs, built from the ``schedule`` configuration.

Every job of a kind shares the kind's cron expression or interval, shifted by an offset of its
own within the kind's ``spread`` window, so the shops are not hit all at once:

* a sync job's offset comes from its vendor and year along a golden-ratio sequence: the years
  of one shop land evenly over the window whatever their number, and a new year never moves the
  others (so adding one reschedules nothing else);
* the per-vendor jobs (year lists, stale products, quick syncs) sit at 0, ⅓ and ⅔ of the
  window: quick syncs over an hour of spread at :00, :20 and :40 (hourly, ornament-shop.com's
  every 6 hours).

Offsets and triggers depend on the configuration only, never on the time of the start, so the
same configuration builds the same triggers and a restart finds every job unchanged.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from christmas_spiders.config.schedule import JobKind, format_duration
from christmas_spiders.vendors import VENDORS

# Interval triggers count from here (a fixed origin: a restart builds the same trigger).
INTERVAL_ORIGIN = (2024, 1, 1)
_GOLDEN = (math.sqrt(5) - 1) / 2  # 0.618…: consecutive years spread evenly over the window


class Shifted(BaseTrigger):
    """The fire times of ``trigger``, each ``offset`` later (absolute time, so DST-safe)."""

    def __init__(self, trigger: BaseTrigger, offset: timedelta) -> None:
        self.trigger = trigger
        self.offset = offset

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        previous = None if previous_fire_time is None else self._move(previous_fire_time, -1)
        fire_time = self.trigger.get_next_fire_time(previous, self._move(now, -1))
        return None if fire_time is None else self._move(fire_time, 1)

    def _move(self, moment: datetime, sign: int) -> datetime:
        return (moment.astimezone(UTC) + sign * self.offset).astimezone(moment.tzinfo)

    def __getstate__(self) -> dict[str, Any]:
        return {"version": 1, "trigger": self.trigger, "offset": self.offset}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state.get("version", 1) > 1:
            raise ValueError(f"got version {state['version']} of Shifted; this code knows 1")
        self.trigger = state["trigger"]
        self.offset = state["offset"]

    def __str__(self) -> str:
        return f"{describe(self.trigger)} +{clock(self.offset)}"

    def __repr__(self) -> str:
        return f"<Shifted ({self.trigger!r}, offset={self.offset!r})>"


def clock(offset: timedelta) -> str:
    """timedelta(hours=5, minutes=3) → '05:03:00'; a day or more → '1d 02:00:00'."""
    seconds = int(offset.total_seconds())
    days, seconds = divmod(seconds, 86400)
    text = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return f"{days}d {text}" if days else text


def base_trigger(kind: JobKind, tz: str) -> BaseTrigger:
    """The kind's cron or interval trigger, before any offset."""
    zone = ZoneInfo(tz)
    if kind.cron:
        return CronTrigger.from_crontab(kind.cron, timezone=zone)
    assert kind.interval is not None, "a job kind has a cron expression or an interval"
    return IntervalTrigger(
        seconds=kind.interval, start_date=datetime(*INTERVAL_ORIGIN, tzinfo=zone), timezone=zone
    )


def spread_trigger(kind: JobKind, tz: str, fraction: float) -> BaseTrigger:
    """The kind's trigger shifted by `fraction` of its spread window (whole seconds)."""
    offset = timedelta(seconds=round(kind.spread * (fraction % 1.0)))
    trigger = base_trigger(kind, tz)
    return Shifted(trigger, offset) if offset else trigger


def sync_fraction(vendor: str, year: int) -> float:
    """Where in the window the sync of `vendor` `year` falls, in [0, 1)."""
    return (year * _GOLDEN + vendor_fraction(vendor)) % 1.0


def vendor_fraction(vendor: str) -> float:
    """0, ⅓, ⅔ for the three shops, in the order of christmas_spiders.vendors."""
    return list(VENDORS).index(vendor) / len(VENDORS)


def once(moment: datetime) -> DateTrigger:
    return DateTrigger(run_date=moment)


def describe(trigger: BaseTrigger) -> str:
    """How `python scheduler.py list` shows a trigger: 'cron 0 0 * * * +05:03:00', 'every 2s'…"""
    if isinstance(trigger, Shifted):
        return str(trigger)
    if isinstance(trigger, CronTrigger):
        fields = {field.name: str(field) for field in trigger.fields}
        names = ("minute", "hour", "day", "month", "day_of_week")
        return "cron " + " ".join(fields[name] for name in names)
    if isinstance(trigger, IntervalTrigger):
        return f"every {format_duration(trigger.interval.total_seconds())}"
    if isinstance(trigger, DateTrigger):
        return f"once at {trigger.run_date:%Y-%m-%d %H:%M:%S %Z}"
    return str(trigger)


def signature(trigger: BaseTrigger) -> str:
    """What tells two triggers apart (APScheduler's triggers have no equality of their own)."""
    return repr(trigger)
