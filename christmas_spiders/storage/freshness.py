"""What a quick sync reads and writes of the stored products (christmas_spiders.quick).

* ``stored_products`` — a vendor's products (of some years), loaded once as the sync starts.
* ``refresh_plan`` — which stored pages the run re-reads (``quick.rules.Refresh``), recorded in
  the run's stats by the first process of the run, so every worker of a distributed run re-reads
  the same pages however late it joins.
* ``mark_synced`` — the products a listing showed unchanged (and, for crawl health, those whose
  page a run read but could not store): ``last_synced_at`` only, in one batched UPDATE. No
  audited field changes, so the history trigger writes nothing; the rows are locked in key order
  first (``storage.products.lock_products``), so this never deadlocks with a store batch.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from christmas_spiders.storage import runs
from christmas_spiders.storage.products import lock_products
from christmas_spiders.storage.schema import crawl_runs, products

REFRESH_STAT = "quick/refresh"  # crawl_runs.stats key of the run's refresh plan

_COLUMNS = (
    "id",
    "vendor_product_id",
    "link",
    "name",
    "sku",
    "price",
    "regular_price",
    "availability",
    "availability_text",
    "release_year",
    "image_url",
    "series",
    "page_read_at",
    "delisted_at",
)


def stored_products(
    connection: Connection, vendor: str, years: Collection[int] | None = None
) -> list[Row[Any]]:
    """The vendor's products (of `years`, or all), delisted ones included."""
    query = sa.select(*(products.c[name] for name in _COLUMNS)).where(products.c.vendor == vendor)
    if years is not None:
        query = query.where(products.c.release_year.in_(list(years)))
    return list(connection.execute(query))


def refresh_plan(
    connection: Connection, run_id: int, plan: Callable[[], Mapping[str, Any]]
) -> Mapping[str, Any]:
    """The run's refresh plan: the one recorded in its stats, else `plan()`, recorded now. The
    run's row is locked meanwhile, so two processes of one run never record two plans."""
    runs.lock_run(connection, run_id)
    recorded = connection.execute(
        sa.select(crawl_runs.c.stats[REFRESH_STAT]).where(crawl_runs.c.id == run_id)
    ).scalar()
    if recorded is not None:
        return recorded
    planned = dict(plan())
    runs.add_stats(connection, run_id, {REFRESH_STAT: planned})
    return planned


def mark_synced(connection: Connection, ids: Iterable[int]) -> int:
    """Set `last_synced_at` of these listed products (never back in time); how many."""
    wanted = sorted(set(ids))
    if not wanted:
        return 0
    locked = lock_products(connection, products.c.id.in_(wanted), products.c.delisted_at.is_(None))
    now = sa.func.now()
    return connection.execute(
        sa.update(products)
        .where(products.c.id.in_(locked))
        .values(last_synced_at=sa.func.greatest(products.c.last_synced_at, now))
    ).rowcount
