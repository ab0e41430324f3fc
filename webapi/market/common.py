"""What the market resources share: the ornament's fields of a row, the `condition` and `days`
parameters, their keyset pages, and when the precomputed figures were refreshed (`as_of`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import marshmallow as ma
import sqlalchemy as sa
from marshmallow import fields, validate
from sqlalchemy.engine import Connection, Row

from christmas_spiders.catalog.rules import BOXED, CONDITIONS
from christmas_spiders.storage.schema import market_refreshes
from webapi import db, pagination, v1
from webapi.pagination import SortKey


def condition_field(description: str) -> fields.String:
    """The `condition` parameter (default boxed): only offers in it count."""
    return fields.String(
        load_default=BOXED,
        validate=validate.OneOf(CONDITIONS),
        metadata={"description": description},
    )


def days_field(least: int, description: str) -> fields.Integer:
    """The `days` parameter: from `least` to 365, 90 by default."""
    return fields.Integer(
        load_default=90,
        validate=validate.Range(least, 365, error=f"must be from {least} to 365."),
        metadata={"description": description},
    )


class OrnamentRow(ma.Schema):
    """The ornament a market row is about (its `id` is the ornament's)."""

    ornament_id = fields.Integer(attribute="id")
    year = fields.Integer()
    name = fields.String()
    series = fields.String(allow_none=True)
    series_number = fields.Integer(allow_none=True)
    item_number = fields.String(allow_none=True)


def as_of_field() -> fields.DateTime:
    """`as_of` of an answer: when its figures were computed."""
    return fields.DateTime(
        metadata={"description": "When these figures were computed (the market views' refresh)."}
    )


def as_of(connection: Connection, view: str) -> datetime | None:
    """When the market view `view` was last refreshed (storage.market)."""
    return connection.execute(
        sa.select(market_refreshes.c.refreshed_at).where(market_refreshes.c.name == view)
    ).scalar()


def keyset_page(
    table: sa.Subquery, sorts: dict[str, SortKey], args: dict[str, Any], by_index: bool
) -> tuple[list[Row], str | None]:
    """One page of `table` in the `sort` of `args` after its `cursor` (pagination.keyset_page),
    and the cursor of the next."""
    sort = args["sort"]
    key = sorts[sort.lstrip("-")]
    return pagination.keyset_page(
        db.reader(),
        sa.select(table),
        key,
        sort,
        args.get("cursor"),
        args["limit"],
        value_of=lambda row: row._mapping[key.column.key],
        by_index=by_index,
    )


def page_answer(
    items: list[Any], next_cursor: str | None, args: dict[str, Any], view: str
) -> dict[str, Any]:
    """A page's answer, `as_of` the last refresh of `view` (also its Last-Modified)."""
    moment = as_of(db.reader(), view)
    v1.set_last_modified(moment)
    return {"items": items, "limit": args["limit"], "next_cursor": next_cursor, "as_of": moment}
