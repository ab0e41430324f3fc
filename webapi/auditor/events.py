"""What a subscriber receives for one change: a JSON event (webhooks) or a title and text.

Every event carries `change_id`, the id of the product_changes row: deliveries are at least
once, so a receiver drops an event whose change_id it has already processed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from christmas_spiders.domain import HEALTH_KIND, price_of
from christmas_spiders.storage.history import Change
from webapi.auditor import health_events
from webapi.auditor.alerts import Alert, money, snapshot


@dataclass(frozen=True)
class Event:
    change: Change
    alerts: Sequence[Alert] = field(default_factory=tuple)

    def as_json(self) -> dict[str, Any]:
        change = self.change
        if change.kind == HEALTH_KIND:  # a crawl run's verdict: no product
            data = health_events.as_json(change)
            if self.alerts:
                data["alerts"] = [_alert_json(alert) for alert in self.alerts]
            return data
        data = {
            "change_id": change.id,
            "table": "products",
            "product_id": change.product_id,
            "kind": change.kind,
            "field": change.field,
            "old_value": change.old_value,
            "new_value": change.new_value,
            "flags": list(change.flags),
            "changed_at": change.changed_at.isoformat(),
            "crawl_run_id": change.crawl_run_id,
            "product": {
                **change.product,
                "price": None if change.price is None else str(change.price),
            },
        }
        if self.alerts:
            data["alerts"] = [
                {
                    "rule": alert.rule,
                    "title": alert.title,
                    "text": alert.text,
                    "old_value": alert.old_value,
                    "new_value": alert.new_value,
                }
                for alert in self.alerts
            ]
        return data

    @property
    def title(self) -> str:
        if self.alerts:
            return self.alerts[0].title
        if self.change.kind == HEALTH_KIND:
            return health_events.title(self.change)
        return f"{self.change.name}: {describe(self.change)}"

    @property
    def text(self) -> str:
        if self.alerts:
            return "\n\n".join(alert.text for alert in self.alerts)
        change = self.change
        if change.kind == HEALTH_KIND:
            return health_events.text(change)
        return "\n".join((change.name, f"at {change.vendor_name}", describe(change), change.link))


def describe(change: Change) -> str:
    """One line: what changed, from what to what."""
    flagged = " (suspicious)" if change.suspicious else ""
    if change.kind == "changed":
        old, new = change.old_value, change.new_value
        if change.field in ("price", "regular_price"):
            old, new = money(price_of(old), change.currency), money(price_of(new), change.currency)
        return f"{change.field} {old} → {new}{flagged}"
    recorded = ", ".join(f"{name} {value}" for name, value in snapshot(change).items())
    return f"{change.kind} ({recorded})" if recorded else change.kind


def _alert_json(alert: Alert) -> dict[str, Any]:
    return {
        "rule": alert.rule,
        "title": alert.title,
        "text": alert.text,
        "old_value": alert.old_value,
        "new_value": alert.new_value,
    }
