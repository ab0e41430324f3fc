"""What a subscriber receives for a crawl_health row: a vendor's crawl run is suspect, or the
vendor is healthy again (christmas_spiders.health, docs/health.md).

The row belongs to no product; its `new_value` is the verdict as JSON
(``{"vendor", "run_id", "health", "reasons"}``) and its `old_value` the vendor's previous
verdict. Pure functions on `history.Change`.
"""

from __future__ import annotations

import json
from typing import Any

from christmas_spiders.storage.history import Change


def verdict(change: Change) -> dict[str, Any]:
    try:
        data = json.loads(change.new_value or "{}")
    except json.JSONDecodeError:
        data = {}
    data = data if isinstance(data, dict) else {}
    reasons = data.get("reasons")
    return {
        "vendor": change.vendor,
        "vendor_name": change.vendor_name,
        "run_id": change.crawl_run_id,
        "health": data.get("health"),
        "previous": change.old_value,
        "reasons": [str(reason) for reason in reasons] if isinstance(reasons, list) else [],
    }


def title(change: Change) -> str:
    found = verdict(change)
    state = "SUSPECT" if found["health"] == "suspect" else "healthy again"
    return f"Crawl health: {found['vendor_name']} is {state} (crawl run {found['run_id']})"


def text(change: Change) -> str:
    found = verdict(change)
    if found["health"] == "suspect":
        lines = [
            f"Crawl run {found['run_id']} of {found['vendor_name']} is suspect: nothing was "
            "delisted, and stored values whose field collapsed were kept.",
            *(f"- {reason}" for reason in found["reasons"]),
        ]
    else:
        lines = [f"Crawl run {found['run_id']} of {found['vendor_name']} is healthy again."]
        lines += [f"- {reason}" for reason in found["reasons"]]
    return "\n".join(lines)


def as_json(change: Change) -> dict[str, Any]:
    """The webhook event: the change's own fields, no product, and the verdict."""
    return {
        "change_id": change.id,
        "table": "crawl_runs",
        "product_id": None,
        "kind": change.kind,
        "field": None,
        "old_value": change.old_value,
        "new_value": change.new_value,
        "flags": list(change.flags),
        "changed_at": change.changed_at.isoformat(),
        "crawl_run_id": change.crawl_run_id,
        "product": None,
        "crawl_health": verdict(change),
    }
