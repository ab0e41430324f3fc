"""Crawl health in the database: a run's counts, the values it kept, its verdict and event.

Used by ``christmas_spiders.health``. SQLAlchemy Core, bound parameters only. Rows of
``products`` are always locked in key order (``storage.products.lock_products``), as the store's
batches and delisting lock them, so none of these writes can deadlock with a run storing
products.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.engine import Connection

from christmas_spiders.domain import HEALTH_KIND
from christmas_spiders.storage.freshness import mark_synced
from christmas_spiders.storage.products import PROTECTED, lock_products, set_crawl_run
from christmas_spiders.storage.schema import (
    crawl_run_counts,
    crawl_run_vanishes,
    crawl_runs,
    product_changes,
    products,
)

Counts = dict[int, dict[str, int]]  # release year (0: the whole run) → counter → count
# How far back a year's last healthy run is looked for.
_BASELINE_RUNS = 200


def add_counts(
    connection: Connection, run_id: int, counts: Mapping[int, Mapping[str, int]]
) -> None:
    """Add this process's counts to the run's (several workers add theirs)."""
    rows = [
        {"run_id": run_id, "year": year, "counter": counter, "count": count}
        for year, counters in sorted(counts.items())
        for counter, count in sorted(counters.items())
        if count
    ]
    if not rows:
        return
    statement = insert(crawl_run_counts).values(rows)
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=list(crawl_run_counts.primary_key.columns),
            set_={"count": crawl_run_counts.c.count + statement.excluded.count},
        )
    )


def run_counts(connection: Connection, run_id: int) -> Counts:
    c = crawl_run_counts.c
    counts: Counts = {}
    for year, counter, count in connection.execute(
        sa.select(c.year, c.counter, c.count).where(c.run_id == run_id)
    ):
        counts.setdefault(year, {})[counter] = count
    return counts


def _listing_run() -> sa.ColumnElement[bool]:
    """A run that crawled year listings (not one URL or one product)."""
    return sa.not_(
        sa.or_(crawl_runs.c.arguments.has_key("url"), crawl_runs.c.arguments.has_key("product_id"))
    )


def _healthy_runs(vendor: str, before_run: int) -> sa.Select:
    return (
        sa.select(crawl_runs.c.id)
        .where(
            crawl_runs.c.spider == vendor,
            crawl_runs.c.id < before_run,
            crawl_runs.c.health == "ok",
            crawl_runs.c.status == "finished",
            _listing_run(),
        )
        .order_by(crawl_runs.c.id.desc())
        .limit(_BASELINE_RUNS)
    )


def baseline_counts(
    connection: Connection, vendor: str, run_id: int, years: Iterable[int]
) -> tuple[Counts, dict[int, int]]:
    """Per year, the counts of the latest earlier healthy listing run that read products of it,
    and under year 0 the whole-run counts of the latest healthy listing run; and which run
    each year's counts come from."""
    c = crawl_run_counts.c
    recent = _healthy_runs(vendor, run_id).subquery()
    years = sorted(set(years) - {0})
    latest = (
        sa.select(c.year, c.run_id)
        .distinct(c.year)
        .where(c.run_id.in_(sa.select(recent.c.id)), c.counter == "pages", c.count > 0)
        .where(c.year.in_(years))
        .order_by(c.year, c.run_id.desc())
    )
    sources = {year: run for year, run in connection.execute(latest)}
    whole = connection.execute(
        sa.select(sa.func.max(c.run_id)).where(
            c.run_id.in_(sa.select(recent.c.id)), c.year == 0, c.counter == "requests"
        )
    ).scalar()
    if whole is not None:
        sources[0] = whole
    counts: Counts = {}
    if sources:
        pairs = sa.tuple_(c.year, c.run_id).in_(list(sources.items()))
        for year, counter, count in connection.execute(
            sa.select(c.year, c.counter, c.count).where(pairs)
        ):
            counts.setdefault(year, {})[counter] = count
    return counts, sources


# -- values that vanished ----------------------------------------------------------------------


def _group_values(field: str) -> sa.ColumnElement[Any]:
    """The product's values of a protected group, as a JSON object."""
    pairs = [part for column in PROTECTED[field] for part in (column, products.c[column])]
    return sa.func.jsonb_build_object(*pairs)


def record_vanishes(
    connection: Connection,
    vendor: str,
    run_id: int,
    field: str,
    pages: Mapping[str, Mapping[str, Any]],
) -> int:
    """Of the products whose page lacked `field` (vendor_key → the group's values the page
    gave), record those that have it stored: the store kept their values. Returns how many."""
    if not pages:
        return 0
    recordset = (
        sa.func.jsonb_to_recordset(sa.cast(sa.bindparam("pages", type_=sa.Text), JSONB))
        .table_valued(sa.column("vendor_key", sa.Text), sa.column("new", JSONB))
        .render_derived(name="page", with_types=True)
    )
    found = (
        sa.select(
            sa.literal(run_id),
            sa.literal(field),
            products.c.id,
            _group_values(field),
            recordset.c.new,
        )
        .join_from(
            products,
            recordset,
            sa.and_(products.c.vendor == vendor, products.c.vendor_key == recordset.c.vendor_key),
        )
        .where(products.c[field].is_not(None))
        .order_by(products.c.vendor, products.c.vendor_key)
    )
    statement = insert(crawl_run_vanishes).from_select(
        ["run_id", "field", "product_id", "kept", "new"], found
    )
    rows = [{"vendor_key": key, "new": dict(new)} for key, new in sorted(pages.items())]
    return connection.execute(
        statement.on_conflict_do_update(
            index_elements=list(crawl_run_vanishes.primary_key.columns),
            set_={"new": statement.excluded.new},
        ),
        {"pages": json.dumps(rows, default=str)},
    ).rowcount


def vanish_counts(connection: Connection, run_id: int) -> dict[str, int]:
    v = crawl_run_vanishes.c
    rows = connection.execute(
        sa.select(v.field, sa.func.count()).where(v.run_id == run_id).group_by(v.field)
    )
    return {field: count for field, count in rows}


def apply_vanishes(connection: Connection, vendor: str, run_id: int, field: str) -> int:
    """Write the values the run's pages gave for `field` where the product still holds the
    values the store kept (nothing wrote it since); the history trigger records the change,
    attributed to the run. The run's records of `field` are then done with."""
    v = crawl_run_vanishes.c
    mine = sa.and_(v.run_id == run_id, v.field == field)
    unchanged = sa.and_(mine, v.product_id == products.c.id, _group_values(field) == v.kept)
    ids = lock_products(connection, products.c.vendor == vendor, sa.exists().where(unchanged))
    applied = 0
    if ids:
        set_crawl_run(connection, run_id)
        values = {
            column: sa.cast(v.new[column].astext, products.c[column].type)
            for column in PROTECTED[field]
        }
        applied = connection.execute(
            sa.update(products)
            .where(products.c.id.in_(ids), unchanged)
            .values(**values, updated_at=sa.func.now())
        ).rowcount
    connection.execute(sa.delete(crawl_run_vanishes).where(mine))
    return applied


def forget_vanishes(connection: Connection, vendor: str, before_run: int) -> int:
    """Drop the unapplied vanishes of this vendor's earlier runs that have ended: a healthy run
    has read those products since."""
    ended = sa.select(crawl_runs.c.id).where(
        crawl_runs.c.spider == vendor,
        crawl_runs.c.id < before_run,
        crawl_runs.c.status != "running",
    )
    return connection.execute(
        sa.delete(crawl_run_vanishes).where(crawl_run_vanishes.c.run_id.in_(ended))
    ).rowcount


# -- product pages the run read but could not store --------------------------------------------


def touch(
    connection: Connection, vendor: str, keys: Collection[str], links: Collection[str]
) -> int:
    """Mark listed products whose page the run read but could not store (no name, no
    availability…) as synced, and nothing else: they were seen, their stored values stand."""
    if not keys and not links:
        return 0
    which = sa.or_(products.c.vendor_key.in_(list(keys)), products.c.link.in_(list(links)))
    ids = connection.execute(sa.select(products.c.id).where(products.c.vendor == vendor, which))
    return mark_synced(connection, ids.scalars())


# -- the verdict -------------------------------------------------------------------------------


def previous_health(connection: Connection, vendor: str, run_id: int) -> str | None:
    """The health of the vendor's latest earlier run that was judged."""
    return connection.execute(
        sa.select(crawl_runs.c.health)
        .where(
            crawl_runs.c.spider == vendor,
            crawl_runs.c.id < run_id,
            crawl_runs.c.health.is_not(None),
        )
        .order_by(crawl_runs.c.id.desc())
        .limit(1)
    ).scalar()


def record_event(
    connection: Connection,
    run_id: int,
    vendor: str,
    health: str,
    reasons: list[str],
    previous: str | None,
) -> int:
    """A crawl_health row in the history, announced like every change (docs/health.md)."""
    event = {"vendor": vendor, "run_id": run_id, "health": health, "reasons": reasons}
    change_id = connection.execute(
        sa.insert(product_changes)
        .values(
            product_id=None,
            kind=HEALTH_KIND,
            old_value=previous,
            new_value=json.dumps(event),
            crawl_run_id=run_id,
        )
        .returning(product_changes.c.id)
    ).scalar_one()
    notice = {"id": change_id, "product_id": None, "kind": HEALTH_KIND, "vendor": vendor}
    connection.execute(sa.select(sa.func.pg_notify("product_changes", json.dumps(notice))))
    return change_id
