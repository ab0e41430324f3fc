"""How the pages write prices, times, stock and changes (registered as template filters)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from christmas_spiders.storage import history

_SYMBOLS = {"USD": "$", "CAD": "CA$", "AUD": "A$", "EUR": "€", "GBP": "£"}
STOCK = {"available": "in stock", "preorder": "pre-order", "unavailable": "out of stock"}
CONDITIONS = {
    "boxed": "boxed",
    "no_box": "no box",
    "no_tag": "no tag",
    "damaged_box": "damaged box",
}


def money(price: Decimal | str | None, currency: str = "USD") -> str:
    """`$1,299.00`; another currency by its symbol or code; "no price" for none."""
    if price is None:
        return "no price"
    try:
        amount = f"{Decimal(price):,.2f}"
    except InvalidOperation:
        return str(price)
    symbol = _SYMBOLS.get(currency)
    return f"{symbol}{amount}" if symbol else f"{amount} {currency}"


def utc(moment: datetime | None, precision: str = "minute") -> str:
    """`2026-11-28 10:00 UTC` (`day`: `2026-11-28`)."""
    if moment is None:
        return "—"
    moment = moment.astimezone(UTC)
    if precision == "day":
        return f"{moment:%Y-%m-%d}"
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def iso(moment: datetime) -> str:
    """For `<time datetime=…>`."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def stock(availability: str | None) -> str:
    return "delisted" if availability is None else STOCK.get(availability, availability)


def condition_text(condition: str | None) -> str:
    """An offer's condition in words ("no box"); a listing not linked counts as boxed."""
    return CONDITIONS.get(condition or "boxed", condition or "boxed")


def numbers(found: list[int]) -> str:
    """Series numbers as a collector writes them: "#3, #7"."""
    return ", ".join(f"#{number}" for number in found)


def _percent(old: str | None, new: str | None) -> str:
    """The change in percent, e.g. " (−15 %)"; nothing when either is not a price."""
    try:
        before, after = Decimal(old), Decimal(new)
    except (InvalidOperation, TypeError):
        return ""
    if not before.is_finite() or not after.is_finite() or before == 0:
        return ""
    change = (after - before) / before * 100
    return f" ({'−' if change < 0 else '+'}{abs(change):.0f} %)"


def change_text(change: history.Change) -> str:
    """One line saying what happened: "price $20.00 → $17.00 (−15 %)", "out of stock → in
    stock", "listed at $20.00, in stock", "delisted"."""
    if change.kind == "listed":
        try:
            snapshot = json.loads(change.new_value or "{}")
        except json.JSONDecodeError:
            snapshot = {}
        if not isinstance(snapshot, dict):
            snapshot = {}
        details = []
        if "price" in snapshot:
            details.append(f"at {money(snapshot['price'], change.currency)}")
        if snapshot.get("availability"):
            details.append(stock(snapshot["availability"]))
        return "listed " + ", ".join(details) if details else "listed"
    if change.kind in ("delisted", "relisted"):
        return change.kind
    if change.field == "price":
        old, new = change.old_value, change.new_value
        text = f"price {money(old, change.currency)} → {money(new, change.currency)}"
        text += _percent(old, new)
        return text + (" (flagged suspicious)" if change.suspicious else "")
    if change.field == "availability":
        return f"{stock(change.old_value)} → {stock(change.new_value)}"
    return f"{change.field}: {change.old_value or '—'} → {change.new_value or '—'}"


def run_target(arguments: dict | None) -> str:
    """What a crawl run was asked to crawl: "year 2019", "years 2015-2019", "every year"…"""
    arguments = arguments if isinstance(arguments, dict) else {}
    if arguments.get("url"):
        return f"one page: {arguments['url']}"
    if arguments.get("product_id"):
        return f"product {arguments['product_id']}"
    year = arguments.get("year")
    if year:
        return f"year {year}" if str(year).isdigit() else f"years {year}"
    return "every year"
