"""Writing products: batched upserts keyed by vendor + the shop's own product id.

A product's identity is (vendor, vendor_key), where vendor_key is the shop's product id, or the
canonical link when the page shows no id. Renames therefore update the row. An unchanged product
only gets a new ``last_synced_at``; the history trigger compares audited fields, so it records
nothing for it.

**Values never vanish mid-run.** In a crawl run, a protected field (``PROTECTED``) that the
product has and the page no longer shows is not written over: the product keeps that field's
group of values (its price and regular price, say) and only its other columns are updated.
Whether the value really went is decided when the run ends, once its health is known
(``christmas_spiders.health``): the run records such vanishes and applies them if the field's
coverage was healthy. Writes outside a crawl run store what they are given.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.engine import Connection

from christmas_spiders.catalog.records import INPUT_COLUMNS
from christmas_spiders.catalog.store import link_products
from christmas_spiders.storage.schema import products

# The columns an item sets. Their change marks the product updated.
ITEM_COLUMNS = (
    "vendor_product_id",
    "sku",
    "name",
    "price",
    "regular_price",
    "currency",
    "availability",
    "availability_text",
    "release_year",
    "brand",
    "link",
    "image_url",
    "series",
    "series_number",
    "artist",
)


@dataclass
class UpsertResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def __iadd__(self, other: UpsertResult) -> UpsertResult:
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged
        return self


# Key field → the columns kept with it when a page no longer shows it (christmas_spiders.health).
# `name` and `availability` are never missing from a stored item (validation drops such items).
PROTECTED: dict[str, tuple[str, ...]] = {
    "price": ("price", "regular_price"),
    "availability_text": ("availability", "availability_text"),
    "sku": ("sku",),
    "image_url": ("image_url",),
    "series": ("series", "series_number"),
}
_KEY_OF = {column: key for key, group in PROTECTED.items() for column in group}


def vendor_key(item: Mapping[str, Any]) -> str:
    return str(item.get("vendor_product_id") or item["link"])


def _rows(items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per product identity (the last item wins), sorted so that concurrent writers
    lock rows in the same order and cannot deadlock each other."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for item in items:
        row = {column: item.get(column) for column in ITEM_COLUMNS}
        row["vendor"] = item["vendor"]
        row["vendor_key"] = vendor_key(item)
        rows[row["vendor"], row["vendor_key"]] = row
    return [rows[key] for key in sorted(rows)]


def _upsert_statement(protect: bool) -> sa.Executable:
    """INSERT … SELECT FROM jsonb_to_recordset(:rows) … ON CONFLICT DO UPDATE … RETURNING.

    The rows travel as one JSON parameter, so the statement is compiled once and cached,
    whatever the batch size (a VALUES list would be recompiled with every batch).
    """
    columns = ("vendor", "vendor_key", *ITEM_COLUMNS)
    recordset = (
        sa.func.jsonb_to_recordset(sa.cast(sa.bindparam("rows", type_=sa.Text), JSONB))
        .table_valued(*(sa.column(name, products.c[name].type) for name in columns))
        .render_derived(with_types=True)
    )
    statement = insert(products).from_select(
        columns, sa.select(*(recordset.c[name] for name in columns))
    )
    new = statement.excluded
    values = {
        column: _kept_or_new(column, new) if protect else new[column] for column in ITEM_COLUMNS
    }
    changed = sa.tuple_(*(products.c[column] for column in ITEM_COLUMNS)).is_distinct_from(
        sa.tuple_(*values.values())
    )
    # Linked again only when what its listing is read from changed (catalog.store).
    inputs = [column for column in ITEM_COLUMNS if column in INPUT_COLUMNS]
    relink = sa.tuple_(*(products.c[column] for column in inputs)).is_distinct_from(
        sa.tuple_(*(values[column] for column in inputs))
    )
    now = sa.func.now()
    return statement.on_conflict_do_update(
        index_elements=[products.c.vendor, products.c.vendor_key],
        set_={
            **values,
            # Never back in time: a batch that began before another run's write but lands after
            # it must not make the product look unseen to that run (storage.delisting).
            "last_synced_at": sa.func.greatest(products.c.last_synced_at, now),
            "page_read_at": sa.func.greatest(products.c.page_read_at, now),  # an item is a page
            "delisted_at": None,
            "updated_at": sa.case((changed, now), else_=products.c.updated_at),
            "link_pending": sa.or_(products.c.link_pending, relink),
        },
    ).returning(
        sa.literal_column("xmax = 0").label("created"),
        (products.c.updated_at == now).label("touched"),
        products.c.id,
        products.c.link_pending,
    )


def _kept_or_new(column: str, new: Any) -> Any:
    """The value an update writes: the page's, unless the column belongs to a protected group
    whose key the product has and the page lacks (then the stored one, see the module doc)."""
    key = _KEY_OF.get(column)
    if key is None:
        return new[column]
    vanished = sa.and_(new[key].is_(None), products.c[key].is_not(None))
    return sa.case((vanished, products.c[column]), else_=new[column])


# A crawl run's writes keep vanished values for the run's end to judge; writes outside a run
# (a dead-letter replay, a script) have no such judge and store what they are given.
_UPSERT_IN_RUN = _upsert_statement(protect=True)
_UPSERT = _upsert_statement(protect=False)


def lock_products(connection: Connection, *where: sa.ColumnElement[bool]) -> list[int]:
    """Lock the products matching `where`, in key order (vendor, vendor_key): the order the
    upserts' batches lock theirs in (`_rows`), so that no two writers of products deadlock.
    Returns their ids."""
    return list(
        connection.execute(
            sa.select(products.c.id)
            .where(*where)
            .order_by(products.c.vendor, products.c.vendor_key)
            .with_for_update(of=products)
        ).scalars()
    )


def set_crawl_run(connection: Connection, crawl_run_id: int | None) -> None:
    """Tag this transaction's history rows with the crawl run (read by the trigger)."""
    connection.execute(
        sa.select(sa.func.set_config("christmas.crawl_run_id", str(crawl_run_id or ""), True))
    )


def upsert_products(
    connection: Connection,
    items: Iterable[Mapping[str, Any]],
    crawl_run_id: int | None = None,
    *,
    link: bool = True,
) -> UpsertResult:
    """Insert or update normalized items in one statement, inside the caller's transaction,
    and link the new and renamed ones to their ornaments (christmas_spiders.catalog.store;
    `link=False` leaves them for later, as the benchmark's baseline does)."""
    rows = _rows(items)
    result = UpsertResult()
    if not rows:
        return result
    set_crawl_run(connection, crawl_run_id)
    statement = _UPSERT if crawl_run_id is None else _UPSERT_IN_RUN
    to_link = []
    written = connection.execute(statement, {"rows": json.dumps(rows, default=str)})
    for created, touched, product_id, link_pending in written:
        if link_pending:
            to_link.append(product_id)
        if created:
            result.created += 1
        elif touched:
            result.updated += 1
        else:
            result.unchanged += 1
    if link:
        link_products(connection, to_link)
    return result
