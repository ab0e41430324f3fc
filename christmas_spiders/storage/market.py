"""Refreshing the market's precomputed figures (issue #21, docs/market.md "Method").

The price gaps and rarity are materialized views (migration 0011); `refresh_market` recomputes
them, step by step in dependency order, each `REFRESH MATERIALIZED VIEW CONCURRENTLY` (readers
keep reading the previous rows until the transaction commits), under a transaction-level
advisory lock so that two refreshes never interleave: the second waits, then refreshes again
from what the first could not see; nor while a schema upgrade runs (storage.locks).
`market_refreshes` gets each step's duration and the refresh's moment: its transaction's
start, the `now()` rarity counts to, and the `as_of` of the market answers (their figures are
at least that fresh).

It runs when a crawl run that stored any change ends (extensions.CrawlRunRecorder), after a
relink (catalog.relink), daily from the scheduler (rarity's shares move with the clock), and by
hand: `python -m christmas_spiders.storage refresh-market`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import sqlalchemy as sa
from psycopg2 import sql
from sqlalchemy import BigInteger, Column, Integer, MetaData, Numeric, Table, Text
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from christmas_spiders.errors import one_line
from christmas_spiders.storage import locks
from christmas_spiders.storage.market_index import refresh_year_index
from christmas_spiders.storage.schema import market_refreshes

logger = logging.getLogger(__name__)

# The refresh's queries sort every offer and every stock event: in memory, and without JIT
# compilation (at the benchmark's size it took longer than the queries: 5.6 of 10 s).
_SETTINGS = {"work_mem": "64MB", "jit": "off"}
# A refresh started where nobody waits for it (a crawl's end, the scheduler) gives up after this
# long, lock wait included, rather than hang its caller.
TIMEOUT_SECONDS = 600


class Step(NamedTuple):
    """One refresh step: `name` (its row in market_refreshes) and what it runs."""

    name: str
    run: Callable[[Connection], None]


def refresh_view(name: str) -> Step:
    """The step refreshing the materialized view `name` concurrently, then its statistics
    (the planner picks the sort's index only if it knows how many rows there are)."""

    def run(connection: Connection) -> None:
        dbapi_connection = connection.connection.dbapi_connection
        for command in ("REFRESH MATERIALIZED VIEW CONCURRENTLY {}", "ANALYZE {}"):
            statement = sql.SQL(command).format(sql.Identifier(name))
            connection.exec_driver_sql(statement.as_string(dbapi_connection))

    return Step(name, run)


# The views as the API reads them (storage/sql/0011_market_views.sql defines them). Not in
# schema.metadata: Alembic does not manage views.
views = MetaData()


def _ornament_columns() -> list[Column]:
    return [
        Column("year", Integer),
        Column("name", Text),
        Column("series", Text),
        Column("series_number", Integer),
        Column("item_number", Text),
    ]


market_offers = Table(
    "market_offers",
    views,
    Column("ornament_id", BigInteger),
    Column("condition", Text),
    Column("vendor", Text),
    Column("product_id", BigInteger),
    Column("price", Numeric(12, 2)),
    Column("link", Text),
)
market_gaps = Table(
    "market_gaps",
    views,
    Column("shop_set", ARRAY(Text)),  # the shops that count, ids sorted
    Column("ornament_id", BigInteger),
    Column("condition", Text),
    *_ornament_columns(),
    Column("shops", BigInteger),
    *(
        Column(f"{end}_{name}", kind)
        for end in ("cheapest", "dearest")
        for name, kind in (("id", BigInteger), ("vendor", Text), ("link", Text))
    ),
    Column("cheapest_price", Numeric(12, 2)),
    Column("dearest_price", Numeric(12, 2)),
    Column("gap", Numeric(12, 2)),
    Column("gap_percent", Numeric),
)
market_rarity = Table(
    "market_rarity",
    views,
    Column("ornament_id", BigInteger),
    *_ornament_columns(),
    Column("shops", Integer),
    Column("in_stock_percent_90", Numeric),
    Column("in_stock_percent_365", Numeric),
    Column("trend_percent", Numeric),
    Column("trend_offers", Integer),
)
# The API's reader reads them (storage.database grants it).
VIEWS = tuple(views.tables)

# In dependency order: market_gaps reads market_offers.
STEPS: list[Step] = [
    refresh_view(market_offers.name),
    refresh_view(market_gaps.name),
    refresh_view(market_rarity.name),
    Step("market_year_index", refresh_year_index),  # the year index's steps (market_index)
]


@dataclass
class Refresh:
    """What a refresh took: seconds per step, and in all (lock wait included)."""

    seconds: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)

    def __str__(self) -> str:
        parts = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in self.steps.items())
        return f"{self.seconds:.2f} s ({parts})"


def refresh_market(connection: Connection, timeout: float | None = None) -> Refresh:
    """Run every step of STEPS in `connection`'s transaction (the caller commits), under the
    refresh lock; `timeout` (seconds) bounds each statement, the lock wait included."""
    started = time.monotonic()
    settings = dict(_SETTINGS)
    if timeout is not None:
        settings["statement_timeout"] = f"{int(timeout * 1000)}"
    for name, value in settings.items():  # for this transaction only
        connection.execute(sa.select(sa.func.set_config(name, value, True)))
    connection.execute(sa.select(sa.func.pg_advisory_xact_lock_shared(locks.SCHEMA)))
    connection.execute(sa.select(sa.func.pg_advisory_xact_lock(locks.MARKET_REFRESH)))
    done = Refresh()
    for step in STEPS:
        step_started = time.monotonic()
        step.run(connection)
        done.steps[step.name] = time.monotonic() - step_started
    statement = insert(market_refreshes).values(
        [
            {"name": name, "refreshed_at": sa.func.now(), "seconds": seconds}
            for name, seconds in done.steps.items()
        ]
    )
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=[market_refreshes.c.name],
            set_={
                "refreshed_at": statement.excluded.refreshed_at,
                "seconds": statement.excluded.seconds,
            },
        )
    )
    done.seconds = time.monotonic() - started
    logger.info("market views refreshed in %s", done)
    return done


def refresh_quietly(engine: Engine, why: str) -> Refresh | None:
    """Refresh in a transaction of its own, bounded by TIMEOUT_SECONDS; a failure is one
    WARNING line (the market answers stay as they were) and None."""
    try:
        with engine.begin() as connection:
            return refresh_market(connection, TIMEOUT_SECONDS)
    except SQLAlchemyError as error:
        logger.warning(
            "the market views were not refreshed %s (%s); they keep their previous figures "
            "until the next refresh (python -m christmas_spiders.storage refresh-market)",
            why,
            one_line(error),
        )
        return None
