"""The quick sync's rules, pure: which listed products need their page read, and why.

A tile is compared with the stored product it shows (matched by the shop's product id, else by
the link's path). The page is read when

* ``new`` — no stored product matches the tile (or the stored one was delisted);
* ``changed`` — a field the tile shows differs from the stored one: the price, the pre-sale
  price, the availability as far as the tile tells it, or the year of the listing;
* ``stale`` — the stored page is due for a refresh (``Refresh``);
* ``unreadable`` — the tile cannot be compared (the page is the source of truth).

Otherwise the product is ``unchanged``: marked synced without a request.

``Refresh``, by one of two rules (``refresh_rule``):

* ``overdue`` — the schedule fully syncs the shop at least every ``refresh_days``, and a full
  sync reads every page: a quick sync re-reads only the pages older than ``refresh_days`` (those
  no full sync reached, e.g. a failed one), the oldest first, at most ``quota`` of them;
* ``spread`` — no such full sync (or ``-a refresh=spread``): each quick sync re-reads the oldest
  pages of the products its listings cover, ``quota`` = ⌈listed / (refresh_days ×
  syncs_per_day)⌉ of them, and every page older than ``refresh_days`` besides, so a field no
  tile shows is never older than ``refresh_days`` when quick syncs run as scheduled, and the
  re-reading is spread evenly over the syncs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from christmas_spiders.config.schedule import DAY, HOUR, Schedule, longest_gap
from christmas_spiders.parsers.tiles import Tile

NEW, CHANGED, STALE, UNREADABLE, UNCHANGED = "new", "changed", "stale", "unreadable", "unchanged"
FETCH_REASONS = (NEW, CHANGED, STALE, UNREADABLE)
COMPARED = ("price", "regular_price", "availability")  # what a tile can show
SPREAD, OVERDUE = "spread", "overdue"
REFRESH_RULES = (SPREAD, OVERDUE)


@dataclass(frozen=True)
class Stored:
    """A stored product as the quick sync compares it; `fields` as crawl health counts them."""

    id: int
    vendor_product_id: str | None
    path: str  # of its link, origin left out (a replica's port may change)
    release_year: int
    price: Decimal | None
    regular_price: Decimal | None
    availability: str
    page_read_at: datetime
    delisted: bool = False
    fields: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Refresh:
    """The pages a quick sync re-reads: those read at or before (`before`, `last_id`)."""

    listed: int = 0
    quota: int = 0
    overdue: int = 0
    before: datetime | None = None
    last_id: int | None = None
    refresh_days: float = 7.0
    syncs_per_day: float = 24.0
    rule: str = SPREAD

    @property
    def taken(self) -> int:
        """How many pages the plan re-reads."""
        if self.rule == OVERDUE:
            return min(self.quota, self.overdue)
        return min(self.listed, max(self.quota, self.overdue))

    def is_due(self, stored: Stored) -> bool:
        if self.before is None or self.last_id is None:
            return False
        return (stored.page_read_at, stored.id) <= (self.before, self.last_id)

    def as_json(self) -> dict[str, Any]:
        return {
            "listed": self.listed,
            "quota": self.quota,
            "overdue": self.overdue,
            "before": self.before.isoformat() if self.before else None,
            "last_id": self.last_id,
            "refresh_days": self.refresh_days,
            "syncs_per_day": self.syncs_per_day,
            "rule": self.rule,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Refresh:
        before = data.get("before")
        return cls(
            listed=int(data["listed"]),
            quota=int(data["quota"]),
            overdue=int(data["overdue"]),
            before=datetime.fromisoformat(before) if before else None,
            last_id=data.get("last_id"),
            refresh_days=float(data["refresh_days"]),
            syncs_per_day=float(data["syncs_per_day"]),
            rule=data.get("rule", SPREAD),  # plans recorded before the rule was
        )


def refresh_quota(listed: int, refresh_days: float, syncs_per_day: float) -> int:
    """⌈listed / (refresh_days × syncs_per_day)⌉: every page re-read within refresh_days."""
    if listed <= 0:
        return 0
    return math.ceil(listed / max(refresh_days * syncs_per_day, 1.0))


def refresh_rule(schedule: Schedule, vendor: str, refresh_days: float) -> str:
    """OVERDUE when the schedule fully syncs every year of `vendor` at least every
    `refresh_days` (an hour's slack: a weekly cron runs 7 days and 1 h apart when daylight saving
    time ends), else SPREAD."""
    if vendor not in schedule.vendors:
        return SPREAD
    covered = longest_gap(schedule.sync, schedule.timezone) <= refresh_days * DAY + HOUR
    return OVERDUE if covered else SPREAD


def plan_refresh(
    stored: Iterable[Stored],
    now: datetime,
    refresh_days: float,
    syncs_per_day: float,
    rule: str = SPREAD,
) -> Refresh:
    """The oldest pages of the listed products: SPREAD, the quota or every overdue one if more;
    OVERDUE, the overdue ones up to the quota."""
    listed = sorted((s.page_read_at, s.id) for s in stored if not s.delisted)
    quota = refresh_quota(len(listed), refresh_days, syncs_per_day)
    overdue = sum(1 for read_at, _ in listed if read_at < now - timedelta(days=refresh_days))
    plan = Refresh(len(listed), quota, overdue, None, None, refresh_days, syncs_per_day, rule)
    if not plan.taken:
        return plan
    before, last_id = listed[plan.taken - 1]
    return replace(plan, before=before, last_id=last_id)


def _pre_sale(price: Decimal | None, regular: Decimal | None) -> Decimal | None:
    return regular if regular is not None and price is not None and regular > price else None


def differences(tile: Tile, stored: Stored, year: int | None) -> list[str]:
    """The fields the tile shows otherwise than the stored product."""
    changed = []
    if tile.price != stored.price:
        changed.append("price")
    if tile.regular_price != _pre_sale(stored.price, stored.regular_price):
        changed.append("regular_price")
    if tile.availability is not None and tile.availability != stored.availability:
        changed.append("availability")
    if year is not None and year != stored.release_year:
        changed.append("release_year")
    return changed


def decide(
    tile: Tile | None, stored: Stored | None, year: int | None, refresh: Refresh
) -> tuple[str, list[str]]:
    """(reason, fields that changed): UNCHANGED, or why the product page is read."""
    if tile is not None and tile.unreadable:
        return UNREADABLE, []
    if stored is None or stored.delisted:
        return NEW, []
    if tile is None:
        return UNREADABLE, []
    changed = differences(tile, stored, year)
    if changed:
        return CHANGED, changed
    if refresh.is_due(stored):
        return STALE, []
    return UNCHANGED, []


def shown(tile: Tile) -> dict[str, str | None]:
    """What the tile showed, for the request's meta (JSON: a distributed queue carries it)."""
    values = {"price": tile.price, "regular_price": tile.regular_price}
    result = {name: None if value is None else str(value) for name, value in values.items()}
    if tile.availability is not None:
        result["availability"] = tile.availability
    return result


def page_disagrees(tile_shown: Mapping[str, str | None], page: Mapping[str, Any]) -> list[str]:
    """The fields the product page shows otherwise than its tile did (the page's are stored)."""
    price = page.get("price")
    regular = _pre_sale(price, page.get("regular_price"))
    values = {"price": price, "regular_price": regular, "availability": page.get("availability")}
    found = []
    for name in COMPARED:
        if name not in tile_shown:
            continue
        told = tile_shown[name]
        told_value = Decimal(told) if told is not None and name != "availability" else told
        if told_value != values[name]:
            found.append(name)
    return found
