"""Figure 4 — storage: 20,000 upserts batched against one row at a time, and re-syncs where
nothing changed.

    python -m bench.storage_upserts [--quick]

On a fresh, migrated scratch database of the real PostgreSQL:

* 20,000 new products (`--quick`: 500) written with `upsert_products` in batches of 500 (the
  store pipeline's default, one `INSERT … ON CONFLICT` statement per batch), then the same
  20,000 again, unchanged, then with every price changed; the tables are emptied and the
  20,000 written one row per transaction (the baseline).
* The unchanged re-sync must write no history row.
* End to end: the same check through the real crawler — one HooH crawl of a few years of the
  replica, then the same crawl again with nothing changed on the shop; the second crawl must
  write no history row either (nothing changed, nothing delisted).
"""

from __future__ import annotations

import time
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bench.constants import HOOH, SHORT, UNTHROTTLED
from bench.crawl_cost import sample_years
from bench.crawls import replica_control, scrapy_crawl
from bench.report import Row, log, markdown
from bench.session import Session, standalone
from christmas_spiders.config import Config
from christmas_spiders.storage import database
from christmas_spiders.storage.products import UpsertResult, upsert_products
from christmas_spiders.storage.schema import product_changes
from tests.replica.catalog import generate

FIGURE = "4"
BATCH = 500
GOAL = 10.0


def items(count: int, price_offset: int = 0) -> list[dict]:
    return [
        {
            "vendor": "ornament_shop_com",
            "vendor_product_id": str(number),
            "sku": f"QX{number:05d}",
            "name": f"{1973 + number % 53} Bench Ornament {number}",
            "price": Decimal(10 + number % 90 + price_offset) + Decimal("0.95"),
            "regular_price": None,
            "currency": "USD",
            "availability": "available",
            "availability_text": "In Stock",
            "release_year": 1973 + number % 53,
            "brand": "Hallmark",
            "link": f"http://127.0.0.1:9/bench-{number}/",
            "image_url": None,
            "series": None,
            "series_number": None,
            "artist": None,
        }
        for number in range(count)
    ]


def write(engine: Engine, rows: list[dict], batch: int) -> tuple[float, UpsertResult]:
    total = UpsertResult()
    began = time.perf_counter()
    for start in range(0, len(rows), batch):
        with engine.begin() as connection:
            total += upsert_products(connection, rows[start : start + batch])
    return time.perf_counter() - began, total


def history_rows(engine: Engine, run_id: int | None = None) -> int:
    query = sa.select(sa.func.count()).select_from(product_changes)
    if run_id is not None:
        query = query.where(product_changes.c.crawl_run_id == run_id)
    with engine.connect() as connection:
        return connection.execute(query).scalar_one()


def upserts(engine: Engine, count: int) -> dict[str, float | int]:
    catalog = items(count)
    batched, created = write(engine, catalog, BATCH)
    assert created.created == count, created
    before = history_rows(engine)
    unchanged_seconds, unchanged = write(engine, catalog, BATCH)
    assert unchanged.unchanged == count, unchanged
    unchanged_history = history_rows(engine) - before
    changed_seconds, changed = write(engine, items(count, price_offset=1), BATCH)
    with engine.begin() as connection:
        connection.execute(sa.text("TRUNCATE products, product_changes CASCADE"))
    single, one_by_one = write(engine, catalog, 1)
    assert one_by_one.created == count, one_by_one
    return {
        "batched": batched,
        "single": single,
        "unchanged": unchanged_seconds,
        "unchanged_history": unchanged_history,
        "changed": changed_seconds,
        "changed_rows": changed.updated,
    }


def resync_crawl(session: Session) -> dict[str, object]:
    """Two crawls of the same years of an unchanged shop into one database."""
    shop = generate(1, session.size)[HOOH]
    first, last, expected = sample_years(shop, session.scaled(2000, 60))
    years = f"{first}-{last}"
    process = session.replica()
    origin = process.base_urls[HOOH]
    replica_control(origin, "reset", {})
    url = session.services.scratch_database()
    crawls = []
    for number in (1, 2):
        log(f"{SHORT[HOOH]} crawl {number} of years {years} (~{expected} products), same database")
        crawls.append(
            scrapy_crawl(
                HOOH,
                url,
                session.work,
                origin=origin,
                arguments={"year": years},
                settings=UNTHROTTLED,
                label=f"resync-{number}",
            )
        )
    engine = sa.create_engine(database.database_url(Config(database_url=url)))
    second = history_rows(engine, crawls[1].run_id)
    first_history = history_rows(engine, crawls[0].run_id)
    with engine.connect() as connection:
        kinds = dict(
            connection.execute(
                sa.text(
                    "SELECT kind, count(*) FROM product_changes WHERE crawl_run_id = :run "
                    "GROUP BY kind"
                ),
                {"run": crawls[1].run_id},
            ).all()
        )
    engine.dispose()
    session.services.drop(url)
    return {
        "years": years,
        "products": crawls[1].stat("item_scraped_count"),
        "first_history": first_history,
        "second_history": second,
        "second_kinds": kinds,
        "unchanged": crawls[1].stat("store/unchanged"),
    }


def measure(session: Session) -> list[Row]:
    count = session.scaled(20_000, 500)
    url = session.services.scratch_database()
    engine = sa.create_engine(database.database_url(Config(database_url=url)))
    log(f"storage: {count:,} upserts batched ({BATCH}) and one at a time")
    figures = upserts(engine, count)
    engine.dispose()
    session.services.drop(url)
    crawl = resync_crawl(session)

    ratio = figures["single"] / figures["batched"]
    rows = [
        Row(
            FIGURE,
            f"storage: {count:,} new products, batches of {BATCH} vs one row per transaction",
            f"{count / figures['batched']:,.0f} rows/s",
            f"{count / figures['single']:,.0f} rows/s",
            f"{ratio:.1f}× (goal ≥ {GOAL:g}×)",
            ratio >= GOAL,
        ),
        Row(
            FIGURE,
            f"storage: unchanged re-sync of {count:,} products (batched): history rows written",
            f"{figures['unchanged_history']} ({count / figures['unchanged']:,.0f} rows/s)",
            "",
            "goal 0",
            figures["unchanged_history"] == 0,
        ),
        Row(
            FIGURE,
            f"crawl: unchanged re-sync, {SHORT[HOOH]} years {crawl['years']} "
            f"({crawl['products']:,} products): history rows written by the second crawl",
            str(crawl["second_history"])
            + (
                " (" + ", ".join(f"{n} {k}" for k, n in sorted(crawl["second_kinds"].items())) + ")"
                if crawl["second_kinds"]
                else ""
            ),
            f"first crawl: {crawl['first_history']:,} (listed)",
            "goal 0",
            crawl["second_history"] == 0,
        ),
    ]
    table = [
        (f"new, batches of {BATCH}", count, figures["batched"]),
        ("new, one row per transaction", count, figures["single"]),
        (f"unchanged re-sync, batches of {BATCH}", count, figures["unchanged"]),
        (
            f"re-sync, every price changed ({figures['changed_rows']:,} rows), batches of {BATCH}",
            count,
            figures["changed"],
        ),
    ]
    session.detail(
        FIGURE,
        "Storage",
        markdown(
            ["write", "rows", "seconds", "rows/s"],
            [
                [name, f"{n:,}", f"{seconds:.2f}", f"{n / seconds:,.0f}"]
                for name, n, seconds in table
            ],
        ),
    )
    return rows


if __name__ == "__main__":
    standalone(measure, __doc__.splitlines()[0])
