"""The ``schedule`` option of the configuration: when each kind of job runs, and its limits.

``christmas_spiders.config`` imports this module for the option's default and parser, so it
imports nothing of the project but the vendor list (and APScheduler's cron parser, to reject a
bad expression at start). Every problem raises ``ConfigError`` with one sentence naming the key,
e.g. ``schedule.sync.cron '0 25 * * *' is not a cron expression: …``.

    "schedule": {
      "timezone": "America/New_York",
      "vendors": ["ornament_shop_com", "hookedonhallmark_com"],
      "sync":  {"cron": "0 1 * * *", "spread": "20h", "budget": "3h", "misfire_grace": "6h"},
      "years": {"cron": "0 5 * * sun"},
      "stale": {"interval": "6h", "budget": "10m"},
      "stale_after": "3d", "stale_batch": 50, "max_crawls": 2,
      "crawl_settings": {"LOG_LEVEL": "INFO"}
    }

Durations are seconds, or a string such as ``"90s"``, ``"15m"``, ``"6h"``, ``"1d"``, ``"1w"``,
``"1h30m"``. A job kind has exactly one of ``cron`` (five crontab fields, evaluated in
``timezone``) and ``interval``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

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
    """See README "Scheduler"; every duration is in seconds."""

    timezone: str = "UTC"
    vendors: tuple[str, ...] = tuple(VENDORS)
    # One job per vendor × listed year: `scrapy crawl <vendor> -a year=<year>`, daily.
    sync: JobKind = JobKind(cron="0 0 * * *", spread=DAY, budget=3 * HOUR, misfire_grace=6 * HOUR)
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


_KIND_KEYS = {
    "sync": ("cron", "interval", "spread", "budget", "misfire_grace"),
    "years": ("cron", "interval", "spread", "misfire_grace"),
    "stale": ("cron", "interval", "spread", "budget", "misfire_grace"),
}
_DURATIONS = {  # key: (minimum, maximum) seconds
    "stale_after": (MINUTE, 366 * DAY),
    "stop_grace": (0.0, 300.0),
    "control_poll": (0.2, 300.0),
    "interval": (1.0, 366 * DAY),
    "spread": (0.0, 7 * DAY),
    "budget": (1.0, 2 * DAY),
    "misfire_grace": (1.0, 30 * DAY),
}
_INTEGERS = {"stale_batch": (1, 10_000), "max_crawls": (1, 50)}


def _error(message: str) -> Exception:
    # Imported here: config imports this module while it is being built.
    from christmas_spiders.config import ConfigError

    return ConfigError(message)


def _known(key: str, value: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _error(f"{key} must be an object.")
    unknown = [name for name in value if name not in (*allowed, "$comment")]
    if unknown:
        raise _error(f"{key} has unknown key {unknown[0]!r}; known: {', '.join(allowed)}.")
    return value


def parse_duration(key: str, value: Any, minimum: float, maximum: float) -> float:
    """Seconds from a number or a string such as '90s', '15m', '6h', '1d', '1w', '1h30m'."""
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
        raise _error(
            f"{key} must be a duration such as 30, '90s', '15m', '6h' or '1d', not {value!r}."
        )
    if not minimum <= seconds <= maximum:
        raise _error(
            f"{key} must be between {format_duration(minimum)} and {format_duration(maximum)}, "
            f"not {value!r}."
        )
    return seconds


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


def _timezone(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _error(f"{key} must be an IANA time zone such as 'UTC' or 'America/New_York'.")
    try:
        ZoneInfo(value.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise _error(
            f"{key} must be an IANA time zone such as 'UTC' or 'America/New_York', not {value!r}."
        ) from None
    return value.strip()


def check_cron(key: str, expression: Any, timezone: str) -> str:
    """A five-field crontab expression APScheduler accepts; weekdays by name only."""
    if not isinstance(expression, str) or not expression.strip():
        raise _error(f"{key} must be a cron expression such as '0 3 * * *'.")
    expression = " ".join(expression.split())
    fields = expression.split(" ")
    if len(fields) == 5 and re.search(r"\d", fields[4]):
        # APScheduler 3 counts weekdays from 0 = Monday, crontab from 0 = Sunday: a number
        # would silently run the job a day off, so only names are accepted.
        raise _error(
            f"{key} {expression!r}: give the day of week by name (sun, mon-fri, sat,sun), "
            "not by number."
        )
    try:
        CronTrigger.from_crontab(expression, timezone=ZoneInfo(timezone))
    except ValueError as error:
        raise _error(
            f"{key} {expression!r} is not a cron expression (minute hour day month "
            f"day-of-week): {error}."
        ) from None
    return expression


def _kind(key: str, value: Any, default: JobKind, allowed: tuple[str, ...], tz: str) -> JobKind:
    options = _known(key, value, allowed)
    changes: dict[str, Any] = {}
    if "cron" in options and "interval" in options:
        raise _error(f"{key} needs exactly one of 'cron' and 'interval'.")
    if "cron" in options:
        changes.update(cron=check_cron(f"{key}.cron", options["cron"], tz), interval=None)
    elif "interval" in options:
        bounds = _DURATIONS["interval"]
        changes.update(
            interval=parse_duration(f"{key}.interval", options["interval"], *bounds), cron=None
        )
    for name in ("spread", "budget", "misfire_grace"):
        if name in options:
            changes[name] = parse_duration(f"{key}.{name}", options[name], *_DURATIONS[name])
    return replace(default, **changes)


def _vendors(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise _error(f"{key} must be a list of vendor ids from {', '.join(VENDORS)}.")
    unknown = [name for name in value if name not in VENDORS]
    if unknown:
        raise _error(f"{key} has unknown vendor {unknown[0]!r}; known: {', '.join(VENDORS)}.")
    return tuple(dict.fromkeys(value))


def _crawl_settings(key: str, value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise _error(f'{key} must be an object of Scrapy settings, e.g. {{"LOG_LEVEL": "INFO"}}.')
    result = []
    for name, setting in value.items():
        if not _SETTING_NAME.match(name):
            raise _error(f"{key} has {name!r}, which is not a Scrapy setting name.")
        if isinstance(setting, dict | list) or setting is None:
            raise _error(f"{key}.{name} must be a string, number or boolean.")
        text = str(setting).lower() if isinstance(setting, bool) else str(setting)
        result.append((name, text))
    return tuple(result)


def _integer(key: str, value: Any, minimum: int, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _error(f"{key} must be a whole number, not {value!r}.")
    try:
        number = int(value)
    except ValueError:
        raise _error(f"{key} must be a whole number, not {value!r}.") from None
    if not minimum <= number <= maximum:
        raise _error(f"{key} must be between {minimum} and {maximum}, not {value!r}.")
    return number


def parse_schedule(key: str, value: Any) -> Schedule:
    """The option's parser (config._option): an object, or its JSON from the environment.
    Keys left out keep their defaults (within a job kind too)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise _error(f"{key} is not valid JSON ({error.msg}).") from None
    default = Schedule()
    top = ("timezone", "vendors", *_KIND_KEYS, *_INTEGERS, "stale_after", "stop_grace",
           "control_poll", "crawl_settings")  # fmt: skip
    options = _known(key, value, top)
    timezone = _timezone(f"{key}.timezone", options.get("timezone", default.timezone))
    changes: dict[str, Any] = {"timezone": timezone}
    if "vendors" in options:
        changes["vendors"] = _vendors(f"{key}.vendors", options["vendors"])
    for kind, allowed in _KIND_KEYS.items():
        base: JobKind = getattr(default, kind)
        if kind in options:
            changes[kind] = _kind(f"{key}.{kind}", options[kind], base, allowed, timezone)
        elif base.cron:
            check_cron(f"{key}.{kind}.cron", base.cron, timezone)
    for name in ("stale_after", "stop_grace", "control_poll"):
        if name in options:
            changes[name] = parse_duration(f"{key}.{name}", options[name], *_DURATIONS[name])
    for name, bounds in _INTEGERS.items():
        if name in options:
            changes[name] = _integer(f"{key}.{name}", options[name], *bounds)
    if "crawl_settings" in options:
        changes["crawl_settings"] = _crawl_settings(
            f"{key}.crawl_settings", options["crawl_settings"]
        )
    return replace(default, **changes)
