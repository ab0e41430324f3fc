"""Storage benchmark: batched upserts vs one row at a time, and an unchanged re-sync.

    python -m bench.storage_upserts [--items 20000] [--batch 500]

Runs on a throw-away embedded PostgreSQL in a temporary folder (so it also measures the
embedded server's start), or on DATABASE_URL when set (it then creates and drops a scratch
database there). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from christmas_spiders import config
from christmas_spiders.storage import database, embedded
from christmas_spiders.storage.products import UpsertResult, upsert_products
from christmas_spiders.storage.schema import product_changes


def _items(count: int, price_offset: int = 0) -> list[dict]:
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


def _write(engine: Engine, items: list[dict], batch: int) -> tuple[float, UpsertResult]:
    total = UpsertResult()
    began = time.perf_counter()
    for start in range(0, len(items), batch):
        with engine.begin() as connection:
            total += upsert_products(connection, items[start : start + batch])
    return time.perf_counter() - began, total


def _history_rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(product_changes)).scalar()


def _reset(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text("TRUNCATE products, product_changes"))


def run(engine: Engine, items: int, batch: int) -> list[tuple[str, str]]:
    catalog = _items(items)
    batched_seconds, created = _write(engine, catalog, batch)
    assert created.created == items
    history_before = _history_rows(engine)
    unchanged_seconds, unchanged = _write(engine, catalog, batch)
    assert unchanged.unchanged == items
    history_added = _history_rows(engine) - history_before
    changed_seconds, changed = _write(engine, _items(items, price_offset=1), batch)
    _reset(engine)
    single_seconds, single = _write(engine, catalog, 1)
    assert single.created == items
    return [
        (f"insert {items:,} new products, batches of {batch}", f"{items / batched_seconds:,.0f}/s"),
        (
            f"insert {items:,} new products, one row per transaction",
            f"{items / single_seconds:,.0f}/s",
        ),
        ("batched ÷ one row at a time (goal ≥ 10×)", f"{single_seconds / batched_seconds:.1f}×"),
        (f"unchanged re-sync of {items:,}, batched", f"{items / unchanged_seconds:,.0f}/s"),
        ("history rows written by the unchanged re-sync (goal 0)", str(history_added)),
        (
            f"re-sync with {changed.updated:,} price changes, batched",
            f"{items / changed_seconds:,.0f}/s",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    settings = config.load()
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="christmas-bench-") as folder:
        if settings.database_url:
            admin = sa.create_engine(
                make_url(settings.database_url).set(drivername="postgresql+psycopg2"),
                isolation_level="AUTOCOMMIT",
            )
            name = f"christmas_bench_{uuid.uuid4().hex[:8]}"
            with admin.connect() as connection:
                connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
            url = make_url(settings.database_url).set(database=name)
            scratch = config.Config(database_url=url.render_as_string(hide_password=False))
        else:
            began = time.perf_counter()
            url = embedded.start(Path(folder))
            rows.append(
                (
                    "embedded PostgreSQL start (fresh data folder)",
                    f"{time.perf_counter() - began:.2f} s",
                )
            )
            began = time.perf_counter()
            embedded.start(Path(folder))
            rows.append(
                (
                    "embedded PostgreSQL join (already running)",
                    f"{(time.perf_counter() - began) * 1000:.0f} ms",
                )
            )
            scratch = config.Config(database_url=url)
        engine = database.get_engine(scratch)
        database.upgrade(engine, scratch)
        rows += run(engine, args.items, args.batch)
        engine.dispose()
        if settings.database_url:
            with admin.connect() as connection:
                connection.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        else:
            embedded.server_for(Path(folder)).cleanup()  # stop it before its folder goes
    print("| storage | figure |\n| --- | --- |")
    for label, figure in rows:
        print(f"| {label} | {figure} |")


if __name__ == "__main__":
    main()
