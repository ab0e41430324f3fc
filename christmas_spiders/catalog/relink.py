"""Re-linking every product after a rule change: `python -m christmas_spiders.catalog relink`.

Every product is read afresh through the rules (its stored listing form may come from older
rules), then linked year by year with `link_all`, one transaction per ornament year holding
that year's lock (records.lock_years), so crawls storing meanwhile wait for the year at most
and never see it half done. A product whose ornament changes gets a `relinked` row in
product_changes (no crawl run; old and new ornament id). Ornaments no product is linked to
any more are deleted at the end. Idempotent: a second run finds nothing to change.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from christmas_spiders.catalog.linker import Link, link_all
from christmas_spiders.catalog.records import (
    MEMBER_COLUMNS,
    SOURCE,
    STATE_COLUMNS,
    Member,
    Written,
    lock_years,
    parsed,
    write,
)
from christmas_spiders.storage.schema import ornaments, products

logger = logging.getLogger(__name__)

ATTEMPTS = 5  # a year's transaction may lose a deadlock to a crawl storing the same year
_RETRIED_PGCODES = {"40P01", "40001"}  # deadlock, serialization failure
_READ_CHUNK = 2_000


def _in_transaction(engine: Engine, work: Callable[[Connection], Written]) -> Written:
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with engine.begin() as connection:
                return work(connection)
        except DBAPIError as error:
            if getattr(error.orig, "pgcode", None) not in _RETRIED_PGCODES or attempt == ATTEMPTS:
                raise
            logger.warning("relink: %s; retrying (attempt %d)", error.orig, attempt + 1)
    raise AssertionError("unreachable")


def _years(engine: Engine) -> defaultdict[int | None, list[int]]:
    """Each product's ornament year under the current rules (None: the rules cannot read it)."""
    years: defaultdict[int | None, list[int]] = defaultdict(list)
    query = sa.select(*MEMBER_COLUMNS, *STATE_COLUMNS).select_from(SOURCE).order_by(products.c.id)
    with engine.connect() as connection:
        rows = connection.execution_options(stream_results=True, yield_per=_READ_CHUNK)
        for row in rows.execute(query):
            member = parsed(row)
            years[member.listing.year if member.listing else None].append(row.id)
    return years


def _relink_year(connection: Connection, year: int, product_ids: list[int]) -> Written:
    """Link every product of `year`: those read so before, and those linked to its ornaments
    since (a crawl may have stored more meanwhile)."""
    lock_years(connection, [year])
    of_year = sa.select(ornaments.c.id).where(ornaments.c.year == year)
    query = (
        sa.select(*MEMBER_COLUMNS, *STATE_COLUMNS)
        .select_from(SOURCE)
        .where(
            products.c.id.in_(product_ids) | products.c.ornament_id.in_(of_year.scalar_subquery())
        )
    )
    members = [parsed(row) for row in connection.execute(query.order_by(products.c.id))]
    members = [member for member in members if member.listing and member.listing.year == year]
    made = link_all([member.listing for member in members if member.listing])
    links: dict[int, Link] = {m.product_id: link for m, link in zip(members, made, strict=True)}
    return write(connection, members, links)


def _unlink(connection: Connection, product_ids: list[int]) -> Written:
    """Products the rules cannot read: no ornament (records.write keeps why in its form)."""
    old_years = sa.select(ornaments.c.year).join(products).where(products.c.id.in_(product_ids))
    lock_years(connection, connection.execute(old_years.distinct()).scalars())
    query = (
        sa.select(*MEMBER_COLUMNS, *STATE_COLUMNS)
        .select_from(SOURCE)
        .where(products.c.id.in_(product_ids))
    )
    members: list[Member] = [parsed(row) for row in connection.execute(query)]
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
        total += _in_transaction(engine, lambda c, year=year: _relink_year(c, year, years[year]))
        logger.debug("relink: year %d done (%d products)", year, len(years[year]))
    if years.get(None):
        total += _in_transaction(engine, lambda c: _unlink(c, years[None]))
    with engine.connect() as connection:
        ornament_years = connection.execute(sa.select(ornaments.c.year).distinct()).scalars()
        ornament_years = sorted(ornament_years)
    for year in ornament_years:
        total += _in_transaction(engine, lambda c, year=year: _delete_orphans(c, year))
    return total
