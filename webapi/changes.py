"""/v1/changes: the change feed (price drops, restocks, listings…), from a change id or a time.

Read from the primary, never a replica: the feed stops at the *settled* horizon
(`storage.history.settled_change_id`), the id below which no open transaction can still commit
a change, and only the primary knows its open transactions. Paging with `next_after_id`
therefore never skips a change that commits late with a lower id.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
import sqlalchemy as sa
from marshmallow import fields, validate
from sqlalchemy.engine import Connection

from christmas_spiders.domain import (
    AUDITABLE_FIELDS,
    CHANGE_KINDS,
    EVENTS,
    PRICE_DROP,
    PRICE_RISE,
    RESTOCK,
    SOLD_OUT,
)
from christmas_spiders.storage import history
from christmas_spiders.storage.schema import product_changes
from webapi import db, schemas, v1

blueprint = v1.Blueprint("changes", __name__, description="The feed of price and stock changes.")

# How long a request waits for transactions that are writing history right now.
SETTLE_TIMEOUT_SECONDS = 1.0


class ChangeArgs(schemas.Query):
    after_id = schemas.record_id(
        metadata={"description": "Changes after this id (`next_after_id` of the last page)."}
    )
    since = schemas.moment(
        metadata={"description": "Start at the first change at or after this time."}
    )
    vendor = schemas.vendor_ids()
    kind = schemas.choices(CHANGE_KINDS)
    field = schemas.choices(
        AUDITABLE_FIELDS,
        metadata={"description": "Audited fields of `changed` rows (other kinds pass)."},
    )
    event = schemas.choices(
        EVENTS,
        metadata={
            "description": "Only these events: price_drop, price_rise, restock "
            "(unavailable → available/pre-order), sold_out. Flagged-suspicious prices are "
            "never price_drop or price_rise."
        },
    )
    product_id = schemas.record_id()
    limit = fields.Integer(
        load_default=100, validate=validate.Range(1, 500, error="must be from 1 to 500.")
    )

    @ma.validates_schema
    def _one_start(self, data: dict[str, Any], **_kwargs) -> None:
        if "after_id" in data and "since" in data:
            raise ma.ValidationError("give after_id or since, not both.", "since")


def _start_after(connection: Connection, args: dict[str, Any]) -> int:
    if "after_id" in args:
        return args["after_id"]
    if "since" not in args:
        return 0
    first = connection.execute(
        sa.select(product_changes.c.id)
        .where(product_changes.c.changed_at >= args["since"])
        .order_by(product_changes.c.changed_at, product_changes.c.id)
        .limit(1)
    ).scalar()
    if first is None:  # nothing since then: start after the newest change
        newest = connection.execute(sa.select(sa.func.max(product_changes.c.id))).scalar()
        return newest or 0
    return first - 1


def _as_json(change: history.Change) -> dict[str, Any]:
    return {
        "id": change.id,
        "product_id": change.product_id,
        "kind": change.kind,
        "field": change.field,
        "old_value": change.old_value,
        "new_value": change.new_value,
        "changed_at": change.changed_at,
        "crawl_run_id": change.crawl_run_id,
        "flags": list(change.flags),
        "event": change.event,
        "product": change.product,
    }


@blueprint.route("/changes")
@blueprint.arguments(ChangeArgs(), location="query")
@blueprint.response(200, schemas.ChangePage)
def list_changes(args: dict[str, Any]):
    """Changes oldest first, from `after_id` or `since` (default: the beginning).

    Continue with `after_id=next_after_id` while `has_more`. A page may hold fewer changes than
    `limit` (even none) although more follow: filters are applied to a bounded window of ids.
    """
    connection = db.primary()
    after_id = _start_after(connection, args)
    settled = history.settled_change_id(connection, timeout=SETTLE_TIMEOUT_SECONDS)
    if settled is None:
        return {"changes": [], "next_after_id": after_id, "settled_up_to": None, "has_more": True}
    events = args.get("event")
    kinds, fields_ = args.get("kind"), args.get("field")
    if events:
        kinds = [kind for kind in (kinds or ["changed"]) if kind == "changed"]
        wanted = set()
        if set(events) & {PRICE_DROP, PRICE_RISE}:
            wanted.add("price")
        if set(events) & {RESTOCK, SOLD_OUT}:
            wanted.add("availability")
        fields_ = [field for field in (fields_ or sorted(wanted)) if field in wanted]
    if kinds == [] or fields_ == []:  # the filters exclude everything
        return {
            "changes": [],
            "next_after_id": settled,
            "settled_up_to": settled,
            "has_more": False,
        }
    page = history.change_feed(
        connection,
        after_id,
        settled,
        limit=args["limit"],
        vendors=args.get("vendor"),
        kinds=kinds,
        fields=fields_,
        product_id=args.get("product_id"),
    )
    changes = [_as_json(change) for change in page.changes]
    if events:
        changes = [change for change in changes if change["event"] in events]
    return {
        "changes": changes,
        "next_after_id": page.next_after_id,
        "settled_up_to": settled,
        "has_more": page.next_after_id < settled,
    }
