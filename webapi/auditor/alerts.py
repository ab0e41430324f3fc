"""Alert rules: which history changes collectors want to hear about, and how an alert reads.

Pure functions on `history.Change` rows. Price sanity: a price change that the history trigger
flagged `suspicious` (it moved by `suspicious_price_ratio` or more) never raises a price alert,
and neither does a change to or from "no price" (the pipeline stores $0.00 as no price).

A product rule with `ornament` (an id) or `sku` (any SKU form) watches that ornament, or the
ornaments of that SKU, at every shop (issue #15): it fires for a change of any of their offers,
boxed or not. What the catalog says about the changes (`Catalog`: each product's ornament, each
watched SKU's ornaments) is read by `webapi.auditor.watch`; a listing the catalog has not linked
is still watched by its own SKU (the same Hallmark item number, or exactly the same SKU).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from christmas_spiders.catalog.rules import item_number
from christmas_spiders.config import AlertRule
from christmas_spiders.domain import (
    HEALTH_KIND,
    IN_STOCK,
    PRICE_DROP,
    RESTOCK,
    price_event,
    price_of,
    stock_event,
)
from christmas_spiders.storage.history import Change
from webapi.auditor import health_events


@dataclass(frozen=True)
class Alert:
    rule: str
    title: str  # one line: what happened to which product
    text: str  # product, vendor, old and new value, link — one fact per line
    old_value: str | None
    new_value: str | None


@dataclass(frozen=True)
class Catalog:
    """What the catalog says about a page of changes, for the rules that watch an ornament."""

    ornament_of: Mapping[int, int] = field(default_factory=dict)  # product id → ornament id
    sku_ornaments: Mapping[str, frozenset[int]] = field(default_factory=dict)  # watched SKU → ids


NO_CATALOG = Catalog()


def watching(rule: AlertRule) -> bool:
    return rule.sku is not None or rule.ornament is not None


def _same_sku(watched: str, sku: str | None) -> bool:
    """One Hallmark item number in both (any form), or exactly the same SKU."""
    if not sku:
        return False
    number = item_number(watched)
    return number == item_number(sku) if number else watched == sku.strip().upper()


def watches(rule: AlertRule, change: Change, catalog: Catalog) -> bool:
    """Whether the rule is about this change's product (every product, unless it watches)."""
    if not watching(rule):
        return True
    ornament = catalog.ornament_of.get(change.product_id) if change.product_id else None
    if rule.ornament is not None:
        return ornament == rule.ornament
    assert rule.sku is not None
    if ornament is not None and ornament in catalog.sku_ornaments.get(rule.sku, ()):
        return True
    return _same_sku(rule.sku, change.sku)


def money(value: Decimal | None, currency: str) -> str:
    if value is None:
        return "no price"
    return f"${value:,.2f}" if currency == "USD" else f"{value:,.2f} {currency}"


def snapshot(change: Change) -> dict:
    """The audited fields recorded with a listed/delisted/relisted change."""
    if change.kind == "changed" or not change.new_value:
        return {}
    try:
        data = json.loads(change.new_value, parse_float=Decimal)
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _text(change: Change, *lines: str) -> str:
    sku = f" (SKU {change.sku})" if change.sku else ""
    return "\n".join((f"{change.name}{sku}", f"at {change.vendor_name}", *lines, change.link))


def _price_alerts(change: Change, rules: Sequence[AlertRule]) -> list[Alert]:
    if change.suspicious:
        return []
    if change.kind == "listed":
        old, new = None, price_of(str(snapshot(change).get("price") or ""))
    else:
        old, new = price_of(change.old_value), price_of(change.new_value)
    if new is None:
        return []
    shown = (
        money(old, change.currency) if old is not None else None,
        money(new, change.currency),
    )
    alerts = []
    for rule in rules:
        if rule.rule == "price_drop" and price_event(old, new, change.suspicious) == PRICE_DROP:
            percent = (old - new) / old * 100
            if rule.min_percent is None or percent >= rule.min_percent:
                alerts.append(
                    Alert(
                        rule.rule,
                        f"Price drop: {change.name} now {shown[1]} (was {shown[0]})",
                        _text(change, f"price {shown[0]} → {shown[1]} (−{percent:.0f}%)"),
                        *shown,
                    )
                )
        elif (
            rule.rule == "below_target"
            and rule.target is not None
            and new <= rule.target
            and (change.kind == "listed" or (old is not None and old > rule.target))
        ):
            was = f"was {shown[0]}" if old is not None else "new listing"
            alerts.append(
                Alert(
                    rule.rule,
                    f"Below target: {change.name} now {shown[1]}",
                    _text(
                        change,
                        f"price {shown[1]} ({was}), target {money(rule.target, change.currency)}",
                    ),
                    *shown,
                )
            )
    return alerts


def _stock_alert(change: Change) -> Alert | None:
    if change.kind == "changed" and change.field == "availability":
        old, new = change.old_value, change.new_value
        back = stock_event(old, new) == RESTOCK
    elif change.kind == "relisted":
        old, new = "delisted", snapshot(change).get("availability")
        back = new in IN_STOCK
    else:
        return None
    if not back:
        return None
    now = money(change.price, change.currency)
    return Alert(
        "back_in_stock",
        f"Back in stock: {change.name} ({new})",
        _text(change, f"availability {old} → {new}", f"price now {now}"),
        old,
        new,
    )


def alerts_for(
    change: Change, rules: Sequence[AlertRule], catalog: Catalog = NO_CATALOG
) -> list[Alert]:
    """The alerts this change raises under the given rules (usually none)."""
    rules = [rule for rule in rules if watches(rule, change, catalog)]
    wanted = {rule.rule for rule in rules}
    if change.kind == HEALTH_KIND:  # a crawl run's verdict (docs/health.md)
        if HEALTH_KIND not in wanted:
            return []
        title, text = health_events.title(change), health_events.text(change)
        return [
            Alert(
                HEALTH_KIND, title, text, change.old_value, health_events.verdict(change)["health"]
            )
        ]
    alerts: list[Alert] = []
    is_price = change.kind == "listed" or (change.kind == "changed" and change.field == "price")
    if is_price:
        alerts += _price_alerts(change, rules)
    if "back_in_stock" in wanted and (stock := _stock_alert(change)):
        alerts.append(stock)
    if "new_listing" in wanted and change.kind == "listed":
        recorded = snapshot(change)
        listed_price = money(price_of(str(recorded.get("price") or "")), change.currency)
        availability = recorded.get("availability", change.availability)
        alerts.append(
            Alert(
                "new_listing",
                f"New listing: {change.name} at {listed_price}",
                _text(change, f"listed at {listed_price}, {availability}"),
                None,
                listed_price,
            )
        )
    if "delisted" in wanted and change.kind == "delisted":
        recorded = snapshot(change)
        last_price = money(price_of(str(recorded.get("price") or "")), change.currency)
        alerts.append(
            Alert(
                "delisted",
                f"Delisted: {change.name}",
                _text(change, f"no longer listed (last price {last_price})"),
                last_price,
                None,
            )
        )
    return alerts
