"""Re-linking every product after a rule change: `python -m christmas_spiders.catalog relink`.

Every product is read afresh through the rules (its stored listing form may come from older
rules), then linked year by year with `link_all`, one transaction per ornament year holding
that year's lock (records.lock_years), so crawls storing meanwhile wait for the year at most
and never see it half done. A product whose ornament changes gets a `relinked` row in
product_changes (no crawl run; old and new ornament id). Ornaments no product is linked to
any more are deleted at the end, and the market views refreshed if anything changed
(storage.market). Idempotent: a second run finds nothing to change.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from christmas_spiders.catalog.records import (
    MEMBERS,
    Written,
    link_by_year,
    lock_years,
    parsed,
    write,
)
from christmas_spiders.storage import market
from christmas_spiders.storage.retries import transient_retrying
from christmas_spiders.storage.schema import ornaments, products

logger = logging.getLogger(__name__)

ATTEMPTS = 5  # a year's transaction may lose a deadlock to a crawl storing the same year
_FIRST_WAIT = 0.1  # seconds before the first retry, doubling
_READ_CHUNK = 2_000


def _in_transaction(engine: Engine, what: str, work: Callable[[Connection], Written]) -> Written:
    """`work` in a transaction of its own, tried again on a deadlock or a lost connection."""

    def attempt() -> Written:
        with engine.begin() as connection:
            return work(connection)

    return transient_retrying(what, ATTEMPTS, _FIRST_WAIT)(attempt)


def _years(engine: Engine) -> defaultdict[int | None, list[int]]:
    """Each product's ornament year under the current rules (None: the rules cannot read it)."""
    years: defaultdict[int | None, list[int]] = defaultdict(list)
    with engine.connect() as connection:
        rows = connection.execution_options(stream_results=True, yield_per=_READ_CHUNK)
        for row in rows.execute(MEMBERS.order_by(products.c.id)):
            member = parsed(row)
            years[member.listing.year if member.listing else None].append(row.id)
    return years


def _relink_year(connection: Connection, year: int, product_ids: list[int]) -> Written:
    """Link every product of `year`: those read so before, and those linked to its ornaments
    since (a crawl may have stored more meanwhile)."""
    lock_years(connection, [year])
    of_year = sa.select(ornaments.c.id).where(ornaments.c.year == year)
    query = MEMBERS.where(
        products.c.id.in_(product_ids) | products.c.ornament_id.in_(of_year.scalar_subquery())
    )
    members = [parsed(row) for row in connection.execute(query.order_by(products.c.id))]
    members = [member for member in members if member.listing and member.listing.year == year]
    return write(connection, members, link_by_year(members))


def _unlink(connection: Connection, product_ids: list[int]) -> Written:
    """Products the rules cannot read: no ornament (records.write keeps why in its form)."""
    old_years = sa.select(ornaments.c.year).join(products).where(products.c.id.in_(product_ids))
    lock_years(connection, connection.execute(old_years.distinct()).scalars())
    query = MEMBERS.where(products.c.id.in_(product_ids))
    members = [parsed(row) for row in connection.execute(query)]
    return write(connection, [member for member in members if member.listing is None], {})


def _delete_orphans(connection: Connection, year: int) -> Written:
    lock_years(connection, [year])
    unused = ~sa.exists().where(products.c.ornament_id == ornaments.c.id)
    deleted = connection.execute(
        sa.delete(ornaments).where(ornaments.c.year == year).where(unused)
    ).rowcount
    return Written(ornaments_deleted=deleted)


def relink(engine: Engine) -> Written:
    """Re-link every stored product (module doc); what changed."""
    years = _years(engine)
    total = Written()
    for year in sorted(year for year in years if year is not None):
        what = f"relink: year {year}"
        total += _in_transaction(engine, what, lambda c, y=year: _relink_year(c, y, years[y]))
        logger.debug("relink: year %d done (%d products)", year, len(years[year]))
    if years.get(None):
        unreadable = f"relink: {len(years[None])} product(s) the rules cannot read"
        total += _in_transaction(engine, unreadable, lambda c: _unlink(c, years[None]))
    with engine.connect() as connection:
        ornament_years = connection.execute(sa.select(ornaments.c.year).distinct()).scalars()
        ornament_years = sorted(ornament_years)
    for year in ornament_years:
        what = f"relink: the unused ornaments of {year}"
        total += _in_transaction(engine, what, lambda c, y=year: _delete_orphans(c, y))
    if total.products or total.ornaments_written or total.ornaments_deleted:
        market.refresh_quietly(engine, "after the relink")  # offers count for new ornaments
    return total
