"""Crawl runs: one `crawl_runs` row per crawl, joined by every process that works it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection

from christmas_spiders.storage.schema import crawl_runs, product_changes, vendors

COUNTERS = (
    "requests",
    "items_created",
    "items_updated",
    "items_unchanged",
    "items_dropped",
    "items_dead_lettered",
    "errors",
    "browser_renders",
)


TAG_STAT = "crawl_run/tag"


class UnknownRun(LookupError):
    """A process was asked to join a crawl run that does not exist for its spider."""


def start_run(
    connection: Connection, spider: str, arguments: Mapping[str, Any], tag: str | None = None
) -> int:
    """Open a run. `tag` (Scrapy setting CRAWL_RUN_TAG) lets whoever started the crawl process
    find its row: it is kept in the run's stats as `crawl_run/tag`."""
    return connection.execute(
        sa.insert(crawl_runs)
        .values(
            spider=spider,
            arguments=dict(arguments),
            stats={TAG_STAT: tag} if tag else {},
        )
        .returning(crawl_runs.c.id)
    ).scalar_one()


def join_run(connection: Connection, spider: str, run_id: int) -> int:
    found = connection.execute(
        sa.select(crawl_runs.c.id).where(crawl_runs.c.id == run_id, crawl_runs.c.spider == spider)
    ).scalar()
    if found is None:
        raise UnknownRun(f"crawl run {run_id} does not exist for spider {spider}.")
    return found


def started_at(connection: Connection, run_id: int) -> datetime:
    return connection.execute(
        sa.select(crawl_runs.c.started_at).where(crawl_runs.c.id == run_id)
    ).scalar_one()


def finish_run(
    connection: Connection,
    run_id: int,
    *,
    status: str,
    close_reason: str,
    counters: Mapping[str, int],
    stats: Mapping[str, Any],
) -> None:
    """Add this process's counters to the run and close it (several workers may add theirs)."""
    increments = {name: crawl_runs.c[name] + int(counters.get(name, 0)) for name in COUNTERS}
    connection.execute(
        sa.update(crawl_runs)
        .where(crawl_runs.c.id == run_id)
        .values(
            **increments,
            finished_at=sa.func.now(),
            # A run that failed in any worker stays failed.
            status=sa.case((crawl_runs.c.status == "failed", "failed"), else_=status),
            close_reason=close_reason,
            stats=crawl_runs.c.stats.op("||")(sa.literal(dict(stats), type_=JSONB)),
        )
    )
    spider = sa.select(crawl_runs.c.spider).where(crawl_runs.c.id == run_id).scalar_subquery()
    if status == "finished":
        connection.execute(
            sa.update(vendors).where(vendors.c.id == spider).values(last_synced_at=sa.func.now())
        )


def count_changes(connection: Connection, run_id: int) -> dict[str, int]:
    """Changes the run caused, by field (`price`, `availability`…) or kind (`listed`…)."""
    label = sa.func.coalesce(product_changes.c.field, product_changes.c.kind)
    rows = connection.execute(
        sa.select(label, sa.func.count())
        .where(product_changes.c.crawl_run_id == run_id)
        .group_by(label)
    )
    return {label: count for label, count in rows}
