"""Storage on a real PostgreSQL: schema, upserts, the history trigger and its NOTIFY."""

from __future__ import annotations

import itertools
import json
import select
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import psycopg2
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine, make_url

from christmas_spiders.config import Config
from christmas_spiders.storage import database, runs
from christmas_spiders.storage.products import upsert_products
from christmas_spiders.storage.schema import metadata, product_changes, products

from .conftest import PROJECT_ROOT


def item(**changes: Any) -> dict[str, Any]:
    base = {
        "vendor": "hookedonhallmark_com",
        "vendor_product_id": "24813",
        "sku": "QXI1234",
        "name": "2019 Nostalgic Rocking Horse",
        "price": Decimal("17.95"),
        "regular_price": None,
        "currency": "USD",
        "availability": "available",
        "availability_text": "In Stock - Ships Next Business Day",
        "release_year": 2019,
        "brand": "Hallmark",
        "link": "http://127.0.0.1:8001/2019-Nostalgic-Rocking-Horse-QXI1234_p_24813.html",
        "image_url": None,
        "series": "Nostalgic Rocking Horse",
        "series_number": 5,
        "artist": None,
    }
    return {**base, **changes}


def write(engine: Engine, *items: dict[str, Any], run_id: int | None = None):
    with engine.begin() as connection:
        return upsert_products(connection, items, run_id)


def changes(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(sa.select(product_changes).order_by(product_changes.c.id))
        return [dict(row._mapping) for row in rows]


def test_upgrade_is_idempotent(engine: Engine, settings: Config) -> None:
    database.upgrade(engine, settings)
    database.upgrade(engine, settings)
    database.check_schema(engine)
    with engine.connect() as connection:
        assert database.current_revision(connection) == database.head_revision()
        vendors = connection.execute(sa.text("SELECT id FROM vendors ORDER BY id")).scalars()
        assert list(vendors) == [
            "hallmark_ornaments_com",
            "hookedonhallmark_com",
            "ornament_shop_com",
        ]


def test_migrations_match_the_schema_module(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_server_default": True})
        assert compare_metadata(context, metadata) == []


def test_check_schema_refuses_a_database_behind(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '0000'"))
    with pytest.raises(database.SchemaMismatch, match=r"run `python -m christmas_spiders\.storage"):
        database.check_schema(engine)


def test_upgrade_command_works_on_database_url(database_url: str, tmp_path) -> None:
    env = {"DATABASE_URL": database_url, "CHRISTMAS_DATA_DIR": str(tmp_path), "PATH": "/usr/bin"}
    for command in ("upgrade", "upgrade", "check"):
        result = subprocess.run(
            [sys.executable, "-m", "christmas_spiders.storage", command],
            env=env,
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_new_product_gets_one_row_and_a_listed_change(engine: Engine) -> None:
    result = write(engine, item())
    assert (result.created, result.updated, result.unchanged) == (1, 0, 0)
    with engine.connect() as connection:
        row = connection.execute(sa.select(products)).one()._mapping
    assert row["price"] == Decimal("17.95")
    assert row["vendor_key"] == "24813"
    assert row["first_seen_at"] is not None
    assert row["created_at"] is not None
    [listed] = changes(engine)
    assert listed["kind"] == "listed"
    assert json.loads(listed["new_value"]) == {"price": 17.95, "availability": "available"}


def test_same_item_again_changes_nothing_but_last_synced(engine: Engine) -> None:
    write(engine, item())
    with engine.connect() as connection:
        before = connection.execute(sa.select(products)).one()._mapping
    result = write(engine, item())
    assert (result.created, result.updated, result.unchanged) == (0, 0, 1)
    with engine.connect() as connection:
        after = connection.execute(sa.select(products)).one()._mapping
    assert after["last_synced_at"] > before["last_synced_at"]
    assert after["page_read_at"] > before["page_read_at"]  # an item comes from its page
    assert after["updated_at"] == before["updated_at"]
    synced = ("last_synced_at", "page_read_at")
    assert {k: v for k, v in after.items() if k not in synced} == {
        k: v for k, v in before.items() if k not in synced
    }
    assert [change["kind"] for change in changes(engine)] == ["listed"]


def _listen(database_url: str):
    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(False)
    connection = psycopg2.connect(dsn)
    connection.autocommit = True
    connection.cursor().execute("LISTEN product_changes")
    return connection


def _notifications(connection, expected: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    received: list[dict[str, Any]] = []
    while len(received) < expected:
        if select.select([connection], [], [], timeout) == ([], [], []):
            break
        connection.poll()
        while connection.notifies:
            received.append(json.loads(connection.notifies.pop(0).payload))
    return received


def test_price_change_records_history_and_notifies(engine: Engine, database_url: str) -> None:
    write(engine, item())
    listener = _listen(database_url)
    try:
        with engine.begin() as connection:
            run_id = runs.start_run(connection, "hookedonhallmark_com", {"year": "2019"})
        result = write(engine, item(price=Decimal("19.95")), run_id=run_id)
        assert result.updated == 1
        [change] = changes(engine)[1:]
        assert (change["kind"], change["field"]) == ("changed", "price")
        assert (change["old_value"], change["new_value"]) == ("17.95", "19.95")
        assert change["crawl_run_id"] == run_id
        assert change["flags"] == []
        [payload] = _notifications(listener, 1)
        assert payload == {
            "id": change["id"],
            "product_id": change["product_id"],
            "kind": "changed",
            "field": "price",
        }
    finally:
        listener.close()


def test_availability_change_records_history_and_notifies(
    engine: Engine, database_url: str
) -> None:
    write(engine, item())
    listener = _listen(database_url)
    try:
        write(engine, item(availability="unavailable", availability_text="Out of Stock"))
        [change] = changes(engine)[1:]
        assert (change["field"], change["old_value"], change["new_value"]) == (
            "availability",
            "available",
            "unavailable",
        )
        # availability_text is not audited by default: one change, one notification.
        assert [p["field"] for p in _notifications(listener, 1)] == ["availability"]
    finally:
        listener.close()


def test_unaudited_change_updates_row_without_history(engine: Engine) -> None:
    write(engine, item())
    result = write(engine, item(image_url="http://127.0.0.1:8001/img.jpg"))
    assert result.updated == 1
    assert [change["kind"] for change in changes(engine)] == ["listed"]


def test_rename_updates_the_row_instead_of_adding_one(engine: Engine) -> None:
    write(engine, item())
    write(engine, item(name="2019 Nostalgic Rocking Horse (Repaint)", link="http://x/new_p_24813"))
    with engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(products)).scalar() == 1


def test_product_without_shop_id_is_keyed_by_link(engine: Engine) -> None:
    write(engine, item(vendor_product_id=None), item(vendor_product_id=None, link="http://x/b"))
    write(engine, item(vendor_product_id=None, price=Decimal("1.00")))
    with engine.connect() as connection:
        keys = connection.execute(sa.select(products.c.vendor_key, products.c.price)).all()
    assert dict(keys) == {"http://x/b": Decimal("17.95"), item()["link"]: Decimal("1.00")}


def test_turning_on_an_extra_audited_field_records_it(
    engine: Engine, make_config: Callable[..., Config]
) -> None:
    database.upgrade(engine, make_config(CHRISTMAS_AUDITED_FIELDS="price,availability,name"))
    with engine.connect() as connection:
        assert database.installed_trigger_arguments(connection)[1:] == [
            "price",
            "availability",
            "name",
        ]
    write(engine, item())
    write(engine, item(name="2019 Nostalgic Rocking Horse NB"))
    [change] = changes(engine)[1:]
    assert (change["field"], change["new_value"]) == ("name", "2019 Nostalgic Rocking Horse NB")


def test_implausible_price_jump_is_flagged_suspicious(engine: Engine) -> None:
    write(engine, item())
    write(engine, item(price=Decimal("179.50")))
    write(engine, item(price=Decimal("170.00")))
    flagged = [change["flags"] for change in changes(engine)[1:]]
    assert flagged == [["suspicious"], []]


def test_delisting_and_relisting_are_recorded(engine: Engine) -> None:
    write(engine, item())
    with engine.begin() as connection:
        connection.execute(sa.update(products).values(delisted_at=sa.func.now()))
    write(engine, item())  # seen again: the upsert clears delisted_at
    assert [change["kind"] for change in changes(engine)] == ["listed", "delisted", "relisted"]


def test_batch_with_duplicate_identities_keeps_the_last(engine: Engine) -> None:
    result = write(engine, item(price=Decimal("1.00")), item(price=Decimal("2.00")))
    assert result.created == 1
    with engine.connect() as connection:
        assert connection.execute(sa.select(products.c.price)).scalar() == Decimal("2.00")


def test_database_rejects_an_unknown_availability(engine: Engine) -> None:
    with pytest.raises(sa.exc.IntegrityError, match="ck_products_availability"):
        write(engine, item(availability="maybe"))


_WRITER = """
import sys
from decimal import Decimal
import sqlalchemy as sa
from christmas_spiders.storage.products import upsert_products
from tests.test_storage import item
engine = sa.create_engine(sys.argv[1].replace("postgresql://", "postgresql+psycopg2://", 1))
base = int(sys.argv[2])
for step in range(60):
    with engine.begin() as connection:
        upsert_products(connection, [item(price=Decimal(base + step)), item(
            vendor_product_id="other", price=Decimal(base + step))])
"""


def test_concurrent_writers_leave_one_row_and_consistent_history(
    engine: Engine, database_url: str
) -> None:
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, database_url, str(base)], cwd=PROJECT_ROOT)
        for base in (100, 500)
    ]
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0]
    with engine.connect() as connection:
        rows = connection.execute(sa.select(products.c.id, products.c.price)).all()
        assert len(rows) == 2
        for product_id, price in rows:
            history = connection.execute(
                sa.select(product_changes.c.old_value, product_changes.c.new_value)
                .where(
                    product_changes.c.product_id == product_id,
                    product_changes.c.kind == "changed",
                )
                .order_by(product_changes.c.id)
            ).all()
            assert history, "each writer changed the price"
            # Each change starts where the previous one ended, and ends at the stored price.
            for previous, following in itertools.pairwise(history):
                assert following.old_value == previous.new_value
            assert Decimal(history[-1].new_value) == price
