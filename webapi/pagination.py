"""Keyset ("cursor") pagination: stable under inserts and as fast on page 1,000 as on page 1.

A page is the rows after the last one of the previous page in the chosen order, the row id
breaking ties: ``WHERE (sort_column, id) > (:value, :id) ORDER BY sort_column, id LIMIT n``,
which a ``(sort_column, id)`` index answers directly. A nullable column (price) is paged in
two stretches, its values first and then its NULLs, so NULLs come last in both directions.

The cursor is opaque to clients: URL-safe base64 of ``{"s": sort, "v": value, "i": id}``. It
is checked like any other parameter; a malformed or foreign one is a 400 naming ``cursor``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import marshmallow as ma
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from webapi.schemas import BIGINT_MAX, PRICE_MAX

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
_MAX_CURSOR_LENGTH = 1000


def _as_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= BIGINT_MAX:
        raise ValueError(value)
    return value


def _as_text(value: Any) -> str:
    if not isinstance(value, str) or "\x00" in value or len(value) > 2000:
        raise ValueError(value)
    return value


def _as_price(value: Any) -> Decimal:
    if not isinstance(value, str):
        raise ValueError(value)
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ValueError(value) from None
    if not number.is_finite() or not 0 <= number <= PRICE_MAX:
        raise ValueError(value)
    return number


def _as_time(value: Any) -> datetime:
    moment = datetime.fromisoformat(_as_text(value))
    if moment.tzinfo is None:
        raise ValueError(value)
    return moment


def _dump(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


@dataclass(frozen=True)
class SortKey:
    """One sort order a list offers: `name` (``-name`` for descending) → a column."""

    column: sa.ColumnElement
    id_column: sa.ColumnElement
    parse: Callable[[Any], Any]  # cursor JSON value → bound value; ValueError when bad
    nullable: bool = False

    @property
    def is_id(self) -> bool:
        return self.column is self.id_column


SORT_PARSERS = {"int": _as_int, "text": _as_text, "price": _as_price, "time": _as_time}


@dataclass(frozen=True)
class Cursor:
    sort: str  # as given, e.g. "-price"
    value: Any  # None: inside the NULL stretch of a nullable column
    id: int


def encode_cursor(sort: str, value: Any, row_id: int) -> str:
    data = json.dumps({"s": sort, "v": _dump(value), "i": row_id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(data.encode()).decode().rstrip("=")


def limit_field() -> ma.fields.Integer:
    """The `limit` parameter of every keyset list: DEFAULT_LIMIT a page, at most MAX_LIMIT."""
    return ma.fields.Integer(
        load_default=DEFAULT_LIMIT,
        validate=ma.validate.Range(1, MAX_LIMIT, error=f"must be from 1 to {MAX_LIMIT}."),
    )


def keyset_args(sorts: dict[str, SortKey], default_sort: str) -> type[ma.Schema]:
    """A base for a keyset list's query schema: its `limit` and `cursor`, the cursor checked
    against the `sort` it was made for (`default_sort` when none is given)."""

    class KeysetArgs(ma.Schema):
        limit = limit_field()
        cursor = CursorField(sorts)

        @ma.validates_schema
        def _check_cursor(self, data: dict[str, Any], **_kwargs) -> None:
            check_cursor(data.get("cursor"), data.get("sort", default_sort))

    return KeysetArgs


class CursorField(ma.fields.String):
    """The `cursor` query parameter: decoded and checked against the sort orders offered."""

    def __init__(self, sorts: dict[str, SortKey], **kwargs) -> None:
        kwargs.setdefault(
            "metadata",
            {"description": "`next_cursor` of the previous page (same `sort`)."},
        )
        super().__init__(**kwargs)
        self._sorts = sorts

    def _deserialize(self, value, attr, data, **kwargs) -> Cursor:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            if len(text) > _MAX_CURSOR_LENGTH:
                raise ValueError("too long")
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            decoded = json.loads(raw)
            if not isinstance(decoded, dict) or set(decoded) != {"s", "v", "i"}:
                raise ValueError("shape")
            sort = decoded["s"]
            key = self._sorts.get(sort.lstrip("-")) if isinstance(sort, str) else None
            if key is None:
                raise ValueError("sort")
            row_id = _as_int(decoded["i"])
            raw_value = decoded["v"]
            if raw_value is None and not key.nullable:
                raise ValueError("null")
            parsed = None if raw_value is None else key.parse(raw_value)
        except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
            raise ma.ValidationError(
                "malformed cursor: pass the next_cursor of a previous page unchanged."
            ) from None
        return Cursor(sort, parsed, row_id)


def check_cursor(cursor: Cursor | None, sort: str) -> None:
    if cursor is not None and cursor.sort != sort:
        raise ma.ValidationError(
            f"this cursor belongs to sort={cursor.sort}, not sort={sort}.", field_name="cursor"
        )


def _later(descending: bool, left, right):
    return left < right if descending else left > right


def _ordered(query: sa.Select, columns, descending: bool, by_index: bool = True) -> sa.Select:
    if not by_index:
        # coalesce(x, x) sorts like x but matches no index: PostgreSQL then finds the rows
        # through the filters' indexes and sorts the few it found, instead of walking the sort
        # order's index past thousands of rows the filters reject.
        columns = [sa.func.coalesce(column, column) for column in columns]
    return query.order_by(*(column.desc() if descending else column.asc() for column in columns))


def keyset_page(
    connection: Connection,
    query: sa.Select,
    key: SortKey,
    sort: str,
    cursor: Cursor | None,
    limit: int,
    value_of: Callable[[Row], Any],
    by_index: bool = True,
) -> tuple[list[Row], str | None]:
    """One page of `query` in `sort` order after `cursor`, and the cursor of the next page.

    `by_index=False` when the filters are selective (see `_ordered`)."""
    descending = sort.startswith("-")
    column, ident = key.column, key.id_column
    rows: list[Row] = []
    in_nulls = cursor is not None and cursor.value is None
    if not in_nulls:
        page = query
        if key.nullable:
            page = page.where(column.is_not(None))
        if cursor is not None:
            if key.is_id:
                page = page.where(_later(descending, ident, cursor.id))
            else:
                bound = sa.tuple_(sa.literal(cursor.value, column.type), sa.literal(cursor.id))
                page = page.where(_later(descending, sa.tuple_(column, ident), bound))
        columns = (ident,) if key.is_id else (column, ident)
        ordered = _ordered(page, columns, descending, by_index)
        rows = list(connection.execute(ordered.limit(limit + 1)))
    if key.nullable and len(rows) <= limit:
        tail = query.where(column.is_(None))
        if in_nulls:
            tail = tail.where(_later(descending, ident, cursor.id))
        tail = _ordered(tail, (ident,), descending, by_index).limit(limit + 1 - len(rows))
        rows += list(connection.execute(tail))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    return rows, encode_cursor(sort, value_of(last), last.id)


def ordered_all(query: sa.Select, key: SortKey, sort: str) -> sa.Select:
    """The whole query in `sort` order (NULLs last), for exports."""
    descending = sort.startswith("-")
    if key.is_id:
        return _ordered(query, (key.id_column,), descending)
    order = key.column.desc() if descending else key.column.asc()
    ident = key.id_column.desc() if descending else key.id_column.asc()
    return query.order_by(order.nulls_last(), ident)
