"""Refreshing the market views (storage.market): at the end of a crawl run that changed
anything (a real crawl of the replica), two refreshes at once, a failed refresh, the command."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from christmas_spiders.storage import locks, market
from christmas_spiders.storage.products import upsert_products
from christmas_spiders.storage.schema import market_refreshes

from .conftest import PROJECT_ROOT
from .crawl import scrapy_crawl
from .replica.client import Replica
from .test_api_ornaments import HO, HOH, _item

HOOH = "hookedonhallmark_com"
# A gap: the same ornament boxed in stock at two shops.
ITEMS = [
    _item(HOH, "bell-h", "2016 Refresh Bell", "QX7001", "12.00"),
    _item(HO, "bell-m", "2016 Refresh Bell", "QX7001", "15.00"),
]


def refreshed(engine: Engine) -> dict[str, object]:
    with engine.connect() as connection:
        rows = connection.execute(sa.select(market_refreshes.c.name, market_refreshes.c.seconds))
        return dict(rows.all())


def views(engine: Engine) -> tuple[int, int]:
    """Rows of market_offers and market_gaps."""
    with engine.connect() as connection:
        return tuple(
            connection.execute(sa.select(sa.func.count()).select_from(view)).scalar()
            for view in (market.market_offers, market.market_gaps)
        )


def in_stock_offers(engine: Engine) -> int:
    """Each shop's ornaments in stock, per condition, as market_offers should count them."""
    query = """SELECT count(DISTINCT (ornament_id, condition, vendor)) FROM products
                WHERE delisted_at IS NULL AND availability IN ('available', 'preorder')
                  AND price IS NOT NULL AND ornament_id IS NOT NULL"""
    with engine.connect() as connection:
        return connection.execute(sa.text(query)).scalar()


def test_a_crawl_that_changed_anything_refreshes_the_market_views(
    database_url: str, engine: Engine, replica: Replica, tmp_path
) -> None:
    assert set(refreshed(engine).values()) == {None}  # built by the migration, never refreshed
    env = {
        "ENV": "",
        "CONFIG_PATH": str(PROJECT_ROOT / "config" / "default.json"),
        "DATABASE_URL": database_url,
        "CHRISTMAS_DATA_DIR": str(tmp_path / "data"),
    }
    year = min(category.year for category in replica.shop(HOOH).year_categories())
    arguments = {"base_url": replica.base_urls[HOOH], "year": str(year)}

    first = scrapy_crawl(HOOH, env=env, arguments=arguments, settings={"LOG_LEVEL": "INFO"})
    assert first.returncode == 0, first.stdout[-3000:]
    assert "market views refreshed in" in first.stdout
    after_first = refreshed(engine)
    assert None not in after_first.values()
    assert views(engine)[0] == in_stock_offers(engine) > 0

    second = scrapy_crawl(HOOH, env=env, arguments=arguments, settings={"LOG_LEVEL": "INFO"})
    assert second.returncode == 0, second.stdout[-3000:]
    assert "market views refreshed" not in second.stdout  # nothing changed: nothing to refresh
    assert refreshed(engine) == after_first


def test_two_refreshes_at_once_both_succeed(engine: Engine) -> None:
    with engine.begin() as connection:
        upsert_products(connection, ITEMS)
    holder = engine.connect()
    transaction = holder.begin()
    market.refresh_market(holder)  # holds the refresh lock until it commits

    def waiting() -> int:
        with engine.connect() as connection:
            return connection.execute(
                sa.text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                    "AND objid = :key"
                ),
                {"key": locks.MARKET_REFRESH},
            ).scalar()

    def second_refresh() -> market.Refresh:
        with engine.begin() as connection:
            return market.refresh_market(connection)

    with ThreadPoolExecutor(1) as pool:
        second = pool.submit(second_refresh)
        deadline = time.monotonic() + 30
        while waiting() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert waiting() == 1 and not second.done()  # it waits for the lock
        transaction.commit()
        holder.close()
        done = second.result(timeout=60)
    assert list(done.steps) == [step.name for step in market.STEPS]
    assert views(engine) == (2, 2)  # two offers; the gap for both shops and for all three


def test_a_failed_refresh_is_one_warning_and_changes_nothing(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text("DROP MATERIALIZED VIEW market_rarity"))
    with caplog.at_level(logging.WARNING, logger=market.__name__):
        assert market.refresh_quietly(engine, "after crawl run 7") is None
    [record] = caplog.records
    assert record.getMessage().startswith(
        'the market views were not refreshed after crawl run 7 (relation "market_rarity" does '
        "not exist); they keep their previous figures"
    )
    assert "\n" not in record.getMessage()
    assert set(refreshed(engine).values()) == {None}  # rolled back: no step counts as done


def test_the_refresh_market_command(database_url: str, engine: Engine, tmp_path) -> None:
    with engine.begin() as connection:
        upsert_products(connection, ITEMS)
    assert views(engine) == (0, 0)  # stored, not yet in the views
    env = {"DATABASE_URL": database_url, "CHRISTMAS_DATA_DIR": str(tmp_path), "PATH": "/usr/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "christmas_spiders.storage", "refresh-market"],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "market views refreshed in" in result.stdout
    assert views(engine) == (2, 2)


def test_two_shops_at_one_price_are_the_two_ends_of_a_gap_of_nothing(engine: Engine) -> None:
    """A tie is still a gap between two shops: the cheapest end is one shop, the dearest the
    other (the dearest end once picked the same shop as the cheapest)."""
    tie = [
        _item(HOH, "tie-h", "2017 Tie Bell", "QX7002", "15.00"),
        _item(HO, "tie-m", "2017 Tie Bell", "QX7002", "15.00"),
    ]
    with engine.begin() as connection:
        upsert_products(connection, tie)
        market.refresh_market(connection)
    with engine.connect() as connection:
        ends = connection.execute(
            sa.select(
                market.market_gaps.c.cheapest_vendor,
                market.market_gaps.c.dearest_vendor,
                market.market_gaps.c.gap,
            )
        ).all()
    # One row for every set of shops that may count (all of them, and the pair).
    assert len(ends) == 2
    assert {(frozenset((cheapest, dearest)), gap) for cheapest, dearest, gap in ends} == {
        (frozenset((HOH, HO)), 0)
    }
