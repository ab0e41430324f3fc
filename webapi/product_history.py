"""A product's history as the API shows it: its prices, their figures and its availability over
one window (storage.history), read for one product or for several in one query, and a list of
offers each with its own (the ornament and SKU views)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from christmas_spiders.storage import history
from christmas_spiders.storage.schema import product_changes


def last_changed(product_id: sa.ColumnElement[int]) -> sa.ScalarSelect:
    """When a product's history last grew, as a column of the query that reads the product (its
    Last-Modified then needs no query of its own)."""
    return (
        sa.select(sa.func.max(product_changes.c.changed_at))
        .where(product_changes.c.product_id == product_id)
        .scalar_subquery()
    )


def product_histories(
    connection: Connection,
    product_ids: Sequence[int],
    since: datetime | None = None,
    until: datetime | None = None,
    include_suspicious: bool = False,
) -> dict[int, dict[str, Any]]:
    found = history.product_histories(connection, product_ids, since, until)
    return {
        product_id: {
            "product_id": product_id,
            "since": since,
            "until": until,
            # Dataclasses: the response schema reads their attributes (no copying to dicts).
            "figures": one.figures(include_suspicious),
            "prices": one.prices,
            "availability": one.availability,
        }
        for product_id, one in found.items()
    }


def product_history(
    connection: Connection,
    product_id: int,
    since: datetime | None = None,
    until: datetime | None = None,
    include_suspicious: bool = False,
) -> dict[str, Any]:
    histories = product_histories(connection, [product_id], since, until, include_suspicious)
    return histories[product_id]


def offers(
    connection: Connection, rows: Sequence[Any], window: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Offer rows (product_queries.product_rows), each with its history over the `window` of
    `schemas.HistoryArgs`, as `schemas.Offer` shows them."""
    histories = product_histories(
        connection,
        [row.id for row in rows],
        window.get("since"),
        window.get("until"),
        window["include_suspicious"],
    )
    return [{**row._mapping, "history": histories[row.id]} for row in rows]
