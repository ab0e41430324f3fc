"""Delisting: products a complete crawl no longer found are marked `delisted_at`.

The history trigger turns the mark into a `delisted` change (and the next upsert of the product
into `relisted`). A crawl that looks incomplete — far fewer products for a year than the last
complete crawl of that vendor × year found — delists nothing for that year.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from christmas_spiders.storage.products import lock_products, set_crawl_run
from christmas_spiders.storage.schema import crawl_runs, products

SEEN_STAT = "seen_per_year"  # crawl_runs.stats key: {"2019": 57, …} of a complete crawl


def seen_per_year(
    connection: Connection, vendor: str, years: Iterable[int], since: datetime
) -> dict[int, int]:
    """How many products of each year were synced since `since` (by this run)."""
    year = products.c.release_year
    rows = connection.execute(
        sa.select(year, sa.func.count())
        .where(
            products.c.vendor == vendor,
            year.in_(list(years)),
            products.c.last_synced_at >= since,
        )
        .group_by(year)
    )
    return {year: count for year, count in rows}


def previous_counts(connection: Connection, vendor: str, before_run: int) -> dict[int, int]:
    """Per year, the number of products the latest earlier complete crawl found."""
    counts: dict[int, int] = {}
    recent = connection.execute(
        sa.select(crawl_runs.c.stats[SEEN_STAT])
        .where(
            crawl_runs.c.spider == vendor,
            crawl_runs.c.status == "finished",
            crawl_runs.c.id < before_run,
            crawl_runs.c.stats.has_key(SEEN_STAT),
        )
        .order_by(crawl_runs.c.id.desc())
        .limit(100)
    ).scalars()
    for seen in recent:
        for year, count in seen.items():
            counts.setdefault(int(year), count)
    return counts


def delist_unseen(
    connection: Connection,
    vendor: str,
    years: Iterable[int],
    since: datetime,
    run_id: int,
    keep_links: Collection[str] = (),
) -> int:
    """Mark listed products of these years not synced since `since` as delisted, except those
    whose page the crawl found but could not read (`keep_links`).

    The rows are locked first (storage.products.lock_products), so a run delisting while
    another one stores the same vendor's products never deadlocks with it; a product that run
    stores meanwhile is not delisted.
    """
    unseen = (
        products.c.vendor == vendor,
        products.c.release_year.in_(list(years)),
        products.c.last_synced_at < since,
        products.c.delisted_at.is_(None),
        products.c.link.not_in(list(keep_links)),
    )
    ids = lock_products(connection, *unseen)
    set_crawl_run(connection, run_id)
    return connection.execute(
        sa.update(products).where(products.c.id.in_(ids), *unseen).values(delisted_at=sa.func.now())
    ).rowcount


def delist_product(
    connection: Connection,
    vendor: str,
    run_id: int,
    *,
    link: str | None = None,
    product_id: int | None = None,
) -> int:
    """Mark one product whose page is gone (404, soft 404) as delisted, by id or link."""
    set_crawl_run(connection, run_id)
    which = products.c.id == product_id if product_id is not None else products.c.link == link
    return connection.execute(
        sa.update(products)
        .where(products.c.vendor == vendor, which, products.c.delisted_at.is_(None))
        .values(delisted_at=sa.func.now())
    ).rowcount
