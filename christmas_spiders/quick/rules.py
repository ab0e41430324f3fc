"""The quick sync's rules, pure: which listed products need their page read, and why.

A tile is compared with the stored product it shows (matched by the shop's product id, else by
the link's path). The page is read when

* ``new`` — no stored product matches the tile (or the stored one was delisted);
* ``changed`` — a field the tile shows differs from the stored one: the price, the pre-sale
  price, the availability as far as the tile tells it, or the year of the listing;
* ``stale`` — the stored page is due for a refresh (``Refresh``);
* ``unreadable`` — the tile cannot be compared (the page is the source of truth).

Otherwise the product is ``unchanged``: marked synced without a request.

``Refresh``: each quick sync re-reads the oldest pages of the products its listings cover,
``quota`` = ⌈listed / (refresh_days × syncs_per_day)⌉ of them, and every page older than
``refresh_days`` besides, so a field no tile shows is never older than ``refresh_days`` when
quick syncs run as scheduled, and the re-reading is spread evenly over the syncs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from christmas_spiders.parsers.tiles import Tile

NEW, CHANGED, STALE, UNREADABLE, UNCHANGED = "new", "changed", "stale", "unreadable", "unchanged"
FETCH_REASONS = (NEW, CHANGED, STALE, UNREADABLE)
COMPARED = ("price", "regular_price", "availability")  # what a tile can show


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
        )


def refresh_quota(listed: int, refresh_days: float, syncs_per_day: float) -> int:
    """⌈listed / (refresh_days × syncs_per_day)⌉: every page re-read within refresh_days."""
    if listed <= 0:
        return 0
    return math.ceil(listed / max(refresh_days * syncs_per_day, 1.0))


def plan_refresh(
    stored: Iterable[Stored], now: datetime, refresh_days: float, syncs_per_day: float
) -> Refresh:
    """The oldest pages of the listed products: the quota, or every overdue one if more."""
    listed = sorted((s.page_read_at, s.id) for s in stored if not s.delisted)
    quota = refresh_quota(len(listed), refresh_days, syncs_per_day)
    overdue = sum(1 for read_at, _ in listed if read_at < now - timedelta(days=refresh_days))
    take = min(len(listed), max(quota, overdue))
    before, last_id = listed[take - 1] if take else (None, None)
    return Refresh(len(listed), quota, overdue, before, last_id, refresh_days, syncs_per_day)


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
