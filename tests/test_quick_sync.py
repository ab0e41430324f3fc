"""The quick sync (`-a mode=quick`, issue #16) of each shop, against the replica over real HTTP
and a real PostgreSQL.

One scenario per shop (module fixture ``scenario``): two databases get the same full sync;
then the shop changes through the replica's control API — a price, a sale, stock (HooH and
OS: hallmarkornaments.com's grid shows no stock), a product added and one removed, a tile that
shows another price than its page, a tile whose price markup is lost — and one stored page is
made older than ``quick_refresh_days``. Database Q is quick-synced, database F full-synced;
the tests read the outcome one behaviour at a time.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from christmas_spiders.storage.products import ITEM_COLUMNS
from christmas_spiders.storage.schema import product_changes, products

from .conftest import ADMIN_URL
from .crawl import scrapy_crawl
from .replica.client import Replica
from .test_spiders import last_run, stored

HOOH, OS, HO = "hookedonhallmark_com", "ornament_shop_com", "hallmark_ornaments_com"
FAST = {"AUTOTHROTTLE_ENABLED": "0", "RETRY_BACKOFF_BASE": "0.05", "RETRY_BACKOFF_MAX": "1"}
ROLES = ("added", "price", "sale", "stock", "removed", "due", "broken_tile", "tile_disagrees")


@dataclass
class Scenario:
    vendor: str
    picked: dict[str, dict[str, Any]]  # role → the product's live catalog record
    never_stored: set[str]  # listed product paths the full sync stored nothing for (404, …)
    before: dict[str, dict[str, Any]]  # database Q before the quick sync, by vendor_product_id
    after: dict[str, dict[str, Any]]  # … and after it
    full: dict[str, dict[str, Any]]  # database F after its second full sync
    quick_changes: Counter[tuple[Any, ...]]
    full_changes: Counter[tuple[Any, ...]]
    quick_run: dict[str, Any]
    product_pages: list[str]  # product paths the replica served during the quick sync
    output: str  # the quick sync's log

    def path(self, role: str) -> str:
        return _path(self.picked[role]["url"])

    def key(self, role: str) -> str:
        return self.picked[role]["vendor_product_id"]


def _database(admin_engine: Engine, template: str) -> str:
    name = f"xmas_quick_{uuid.uuid4().hex[:12]}"
    with admin_engine.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    return make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def _crawl(vendor: str, replica: Replica, url: str, data: Path, **arguments: str) -> str:
    result = scrapy_crawl(
        vendor,
        env={"DATABASE_URL": url, "CHRISTMAS_DATA_DIR": str(data)},
        arguments={"base_url": replica.base_urls[vendor], **arguments},
        settings=FAST,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return result.stdout + result.stderr


def _changes(engine: Engine, run_id: int) -> Counter[tuple[Any, ...]]:
    """The history rows of a run, as a full sync and a quick sync must both write them."""
    query = (
        sa.select(products.c.vendor_product_id, product_changes)
        .join(products, products.c.id == product_changes.c.product_id)
        .where(product_changes.c.crawl_run_id == run_id)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    snapshot = ("listed", "delisted", "relisted")
    return Counter(
        (
            row.vendor_product_id,
            row.kind,
            row.field,
            row.old_value,
            json.dumps(json.loads(row.new_value), sort_keys=True)
            if row.kind in snapshot
            else row.new_value,
        )
        for row in rows
    )


def _pick(replica: Replica, vendor: str) -> dict[str, dict[str, Any]]:
    """Ordinary products (no edge case, in stock, not on sale), one per role."""
    plain = [
        record
        for record in replica.live_catalog(vendor)["products"]
        if record["expect"] == "item"
        and record["status"] == "ok"
        and not record["edge_cases"]
        and not record["quirks"]
        and record["expected_item"]["price"] is not None
        and record["expected_item"]["regular_price"] is None
        and record["expected_item"]["availability"] == "available"
        and record["url"].endswith(record["expected_item"]["link"].split("/", 3)[3])
    ]
    assert len(plain) >= len(ROLES)
    return dict(zip(ROLES, plain, strict=False))


@pytest.fixture(scope="module", params=[HOOH, OS, HO])
def scenario(
    request: pytest.FixtureRequest,
    replica: Replica,
    admin_engine: Engine,
    template_database: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Scenario]:
    vendor = request.param
    data = tmp_path_factory.mktemp("quick")
    urls = [_database(admin_engine, template_database) for _ in range(2)]
    engines = [
        sa.create_engine(
            make_url(url).set(drivername="postgresql+psycopg2"), poolclass=sa.pool.NullPool
        )
        for url in urls
    ]
    replica.reset(vendor)
    try:
        picked = _pick(replica, vendor)
        replica.set_product(vendor, picked["added"]["vendor_product_id"], listed=False)
        with ThreadPoolExecutor(2) as pool:  # the same full sync into both, side by side
            list(pool.map(lambda url: _crawl(vendor, replica, url, data), urls))
        quick, full = engines
        # The shop changes.
        for role, record in picked.items():
            key, price = record["vendor_product_id"], Decimal(record["expected_item"]["price"])
            if role == "added":
                replica.set_product(vendor, key, listed=True)
            elif role == "removed":
                replica.set_product(vendor, key, listed=False)
            elif role == "price":
                replica.set_product(vendor, key, price=str(price + 1))
            elif role == "sale":
                replica.set_product(vendor, key, price=str(price - 1), regular_price=str(price))
            elif role == "stock" and vendor != HO:
                replica.set_product(vendor, key, availability="unavailable")
            elif role == "broken_tile":
                replica.set_product(vendor, key, tile_broken=True)
            elif role == "tile_disagrees":
                replica.set_product(vendor, key, tile_price=str(price + 5))
        with quick.begin() as connection:  # a page older than quick_refresh_days (7)
            connection.execute(
                sa.update(products)
                .where(products.c.vendor_product_id == picked["due"]["vendor_product_id"])
                .values(page_read_at=sa.func.now() - timedelta(days=8))
            )
        before = stored(quick, vendor)
        served = len(replica.requests(vendor, "product"))
        output = _crawl(vendor, replica, urls[0], data, mode="quick")
        product_pages = replica.requests(vendor, "product")[served:]
        quick_run = last_run(quick)
        # Every product of the replica is on a year listing; the removed one no longer is.
        never_stored = {
            _path(record["url"])
            for record in replica.live_catalog(vendor)["products"]
            if record["vendor_product_id"] not in before
            and record["vendor_product_id"] != picked["added"]["vendor_product_id"]
        }
        _crawl(vendor, replica, urls[1], data)
        yield Scenario(
            vendor=vendor,
            picked=picked,
            never_stored=never_stored,
            before=before,
            after=stored(quick, vendor),
            full=stored(full, vendor),
            quick_changes=_changes(quick, quick_run["id"]),
            full_changes=_changes(full, last_run(full)["id"]),
            quick_run=quick_run,
            product_pages=product_pages,
            output=output,
        )
    finally:
        replica.reset(vendor)
        for engine in engines:
            engine.dispose()
        with admin_engine.connect() as connection:
            for url in urls:
                name = make_url(url).database
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _path(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def test_only_new_changed_due_and_unreadable_pages_are_read(scenario: Scenario) -> None:
    changed = ["price", "sale", "tile_disagrees"] + (["stock"] if scenario.vendor != HO else [])
    wanted = {scenario.path(role) for role in (*changed, "added", "due", "broken_tile")}
    # Listed products the full sync could not store (gone, retired, unreadable) are new to it.
    wanted |= scenario.never_stored
    assert sorted(scenario.product_pages) == sorted(wanted)  # each page once


def test_exactly_the_changed_rows_change(scenario: Scenario) -> None:
    columns = (*ITEM_COLUMNS, "updated_at", "delisted_at")
    changed = {scenario.key(role) for role in ("price", "sale", "stock", "removed", "added")}
    for key, row in scenario.after.items():
        if key in changed:
            continue
        assert {c: row[c] for c in columns} == {c: scenario.before[key][c] for c in columns}, key
    for role in ("price", "sale", "stock"):
        expected = scenario.full[scenario.key(role)]  # what a full sync stores
        row = scenario.after[scenario.key(role)]
        assert {c: row[c] for c in ITEM_COLUMNS} == {c: expected[c] for c in ITEM_COLUMNS}
    assert (
        scenario.after[scenario.key("price")]["price"]
        != scenario.before[scenario.key("price")]["price"]
    )


def test_history_rows_are_those_of_a_full_sync(scenario: Scenario) -> None:
    assert scenario.quick_changes
    assert scenario.quick_changes == scenario.full_changes


def test_the_new_product_is_stored_complete(scenario: Scenario) -> None:
    key = scenario.key("added")
    assert key not in scenario.before
    row, expected = scenario.after[key], scenario.picked["added"]["expected_item"]
    for column in ITEM_COLUMNS:
        value = row[column]
        assert (str(value) if isinstance(value, Decimal) else value) == expected[column], column


def test_the_removed_product_is_delisted(scenario: Scenario) -> None:
    key = scenario.key("removed")
    assert scenario.before[key]["delisted_at"] is None
    assert scenario.after[key]["delisted_at"] is not None
    assert scenario.full[key]["delisted_at"] is not None


def test_unchanged_products_are_synced_without_their_page(scenario: Scenario) -> None:
    started = scenario.quick_run["started_at"]
    read = [role for role in ROLES if not (role == "stock" and scenario.vendor == HO)]
    unread = set(scenario.after) - {scenario.key(role) for role in read}
    unread = {key for key in unread if scenario.after[key]["delisted_at"] is None}
    assert unread
    for key in unread:
        assert scenario.after[key]["last_synced_at"] >= started
        assert scenario.after[key]["page_read_at"] < started
    assert scenario.quick_run["stats"]["quick/marked_synced"] == len(unread)


def test_an_unreadable_tile_falls_back_to_the_product_page(scenario: Scenario) -> None:
    stats = scenario.quick_run["stats"]
    assert stats["quick/fetch/unreadable"] == 1
    assert scenario.path("broken_tile") in scenario.product_pages
    key = scenario.key("broken_tile")
    assert scenario.after[key]["page_read_at"] >= scenario.quick_run["started_at"]


def test_the_page_wins_over_a_tile_that_disagrees(scenario: Scenario) -> None:
    key = scenario.key("tile_disagrees")
    assert scenario.after[key]["price"] == scenario.before[key]["price"]  # the page's
    assert scenario.quick_run["stats"]["quick/page_wins/price"] == 1


def test_the_run_records_its_mode_and_why_pages_were_read(scenario: Scenario) -> None:
    run = scenario.quick_run
    assert run["arguments"]["mode"] == "quick"
    assert run["status"] == "finished"
    assert run["health"] == "ok"
    stats = run["stats"]
    changed = 3 if scenario.vendor == HO else 4
    assert stats["quick/fetch/changed"] == changed
    # The default schedule fully syncs every year weekly: only the overdue page is re-read.
    assert (stats["quick/refresh/rule"], stats["quick/fetch/stale"]) == ("overdue", 1)
    assert "refresh   overdue rule" in scenario.output
    assert stats["quick/fetch/new"] == 1 + len(scenario.never_stored)
    assert "seen on listings" in scenario.output
    assert f"pages fetched: {len(scenario.product_pages)} (new " in scenario.output


def test_only_the_year_grids_are_rendered(scenario: Scenario, replica: Replica) -> None:
    grids = len(replica.shop(scenario.vendor).year_categories()) if scenario.vendor == HO else 0
    assert scenario.quick_run["browser_renders"] == grids


def test_a_quick_sync_of_one_product_is_refused(replica: Replica, tmp_path: Path) -> None:
    result = scrapy_crawl(
        OS,
        env={"CHRISTMAS_DATA_DIR": str(tmp_path)},
        arguments={"base_url": replica.base_urls[OS], "product_id": "1", "mode": "quick"},
        timeout=120,
    )
    assert result.returncode == 2
    assert "mode=quick reads year listings" in result.stdout + result.stderr
