"""A product's history as the API shows it: its prices and figures (storage.history) and its
availability over the same window."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection

from christmas_spiders.storage import history
from christmas_spiders.storage.schema import product_changes

_changes = product_changes.c
_is_availability_point = sa.or_(
    sa.and_(_changes.kind == "changed", _changes.field == "availability"),
    _changes.kind.in_(("listed", "relisted", "delisted")),
)
_point_availability = sa.case(
    (_changes.kind == "changed", _changes.new_value),
    (_changes.kind == "delisted", sa.null()),
    else_=sa.cast(_changes.new_value, JSONB)["availability"].astext,
)


def availability_series(
    connection: Connection,
    product_id: int,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    """Listing, stock changes and delisting, oldest first; with `since`, the first point is the
    state in effect then (the same window rule as `history.price_series`)."""
    points = sa.select(
        _changes.id.label("change_id"),
        _changes.changed_at.label("at"),
        _changes.kind,
        _point_availability.label("availability"),
    ).where(_changes.product_id == product_id, _is_availability_point)
    points = history.in_window(points, product_id, _is_availability_point, since, until)
    return [dict(row._mapping) for row in connection.execute(points.order_by(_changes.id))]


def product_history(
    connection: Connection,
    product_id: int,
    since: datetime | None = None,
    until: datetime | None = None,
    include_suspicious: bool = False,
) -> dict[str, Any]:
    return {
        "product_id": product_id,
        "since": since,
        "until": until,
        "figures": asdict(
            history.price_figures(connection, product_id, since, until, include_suspicious)
        ),
        "prices": [
            asdict(point) for point in history.price_series(connection, product_id, since, until)
        ],
        "availability": availability_series(connection, product_id, since, until),
    }


def last_changed(connection: Connection, product_ids: list[int]) -> datetime | None:
    """When the history of these products last grew (their Last-Modified)."""
    if not product_ids:
        return None
    return connection.execute(
        sa.select(sa.func.max(_changes.changed_at)).where(_changes.product_id.in_(product_ids))
    ).scalar()
