"""Ornaments in the database (issue #15): products are linked when they are stored, whatever
the order and the batches they come in; `relink` re-links after a rule change and records it;
two shops storing one new ornament at once share it; a real crawl of the three replica shops
is linked as the replica's truth says. On the real PostgreSQL."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from christmas_spiders import config
from christmas_spiders.catalog import rules
from christmas_spiders.catalog.linker import link_all, listing_from_item
from christmas_spiders.catalog.measure import pairwise_scores
from christmas_spiders.catalog.records import YEAR_LOCK
from christmas_spiders.catalog.relink import relink
from christmas_spiders.storage import database
from christmas_spiders.storage.products import upsert_products, vendor_key
from christmas_spiders.storage.schema import (
    crawl_runs,
    listing_forms,
    ornaments,
    product_changes,
    products,
)
from christmas_spiders.vendors import VENDORS

from .conftest import PROJECT_ROOT, _url_for
from .crawl import scrapy_crawl
from .replica.client import Replica
from .replica.models import EXPECT_ITEM

LABELLED = PROJECT_ROOT / "tests" / "files" / "ornaments" / "labelled.jsonl"
HOOH, OS, HO = "hookedonhallmark_com", "ornament_shop_com", "hallmark_ornaments_com"
WAIT = 60  # seconds: generous, for a loaded machine; waits end as soon as the condition holds

Identity = tuple[str, str]  # (vendor, vendor_key): a product


def item(vendor: str, product_id: int, name: str, sku: str | None, year: int = 1994) -> dict:
    """A normalized item, as the store pipeline receives it."""
    return {
        "vendor": vendor,
        "vendor_product_id": str(product_id),
        "sku": sku,
        "name": name,
        "price": "19.95",
        "currency": "USD",
        "availability": "available",
        "release_year": year,
        "brand": "Hallmark",
        "link": f"https://{vendor}.test/{product_id}",
    }


def labelled() -> list[dict[str, Any]]:
    return [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines()]


def store(engine: Engine, items: list[dict], batch: int = 500, run_id: int | None = None) -> None:
    for start in range(0, len(items), batch):
        with engine.begin() as connection:
            upsert_products(connection, items[start : start + batch], run_id)


def grouping(engine: Engine) -> set[frozenset[Identity]]:
    """The stored ornaments as sets of products (a product without one is alone)."""
    groups: defaultdict[object, set[Identity]] = defaultdict(set)
    query = sa.select(
        products.c.vendor, products.c.vendor_key, products.c.id, products.c.ornament_id
    )
    with engine.connect() as connection:
        for vendor, key, product_id, ornament_id in connection.execute(query):
            groups[ornament_id or f"product {product_id}"].add((vendor, key))
    return {frozenset(group) for group in groups.values()}


def offline_grouping(items: list[dict]) -> set[frozenset[Identity]]:
    """What the offline linker (link_all, the `link` command) makes of the same items."""
    groups: defaultdict[str, set[Identity]] = defaultdict(set)
    made = link_all([listing_from_item(found) for found in items])
    for found, link in zip(items, made, strict=True):
        groups[link.ornament.key].add((found["vendor"], vendor_key(found)))
    return {frozenset(group) for group in groups.values()}


def links(engine: Engine) -> dict[Identity, tuple]:
    """Each product's (ornament id, condition, method, score)."""
    query = sa.select(
        products.c.vendor,
        products.c.vendor_key,
        products.c.ornament_id,
        products.c.condition,
        products.c.link_method,
        products.c.link_score,
    )
    with engine.connect() as connection:
        return {(row[0], row[1]): tuple(row[2:]) for row in connection.execute(query)}


def relinked_rows(engine: Engine) -> list[dict]:
    query = sa.select(product_changes).where(product_changes.c.kind == "relinked")
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(query.order_by("id"))]


@pytest.fixture
def new_database(admin_engine: Engine, template_database: str, tmp_path: Path) -> Iterator:
    """A factory of more fresh, migrated databases (engines) for one test."""
    made: list[tuple[str, Engine]] = []

    def make() -> Engine:
        name = f"xmas_test_{uuid.uuid4().hex[:12]}"
        with admin_engine.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
        url = make_url(_url_for(name)).set(drivername="postgresql+psycopg2")
        engine = sa.create_engine(url)
        made.append((name, engine))
        return engine

    yield make
    for name, engine in made:
        engine.dispose()
        with admin_engine.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# --- linking at store time ----------------------------------------------------------------------


def test_one_ornament_at_three_shops_is_one_row_with_an_offer_each(engine: Engine) -> None:
    store(
        engine,
        [
            item(HOOH, 1, "1994 Yuletide Central", "QX5316"),
            item(OS, 2, "1994 Yuletide Central 1st in Series", None),  # no SKU: by name
            item(HO, 3, "1994 Yuletide Central NB", "2999QX5316NB"),  # price code, no box
            item(HO, 4, "1994 Yuletide Central Miniature", "QXM5316"),  # another ornament
        ],
    )
    stored = links(engine)
    ornament_id = stored[HOOH, "1"][0]
    assert stored == {
        (HOOH, "1"): (ornament_id, rules.BOXED, rules.ITEM_NUMBER, 100.0),
        (OS, "2"): (ornament_id, rules.BOXED, rules.NAME, 100.0),
        (HO, "3"): (ornament_id, rules.NO_BOX, rules.ITEM_NUMBER, 100.0),
        (HO, "4"): (stored[HO, "4"][0], rules.BOXED, rules.ITEM_NUMBER, 100.0),
    }
    assert stored[HO, "4"][0] != ornament_id
    with engine.connect() as connection:
        row = connection.execute(sa.select(ornaments).where(ornaments.c.id == ornament_id)).one()
    assert (row.key, row.year, row.item_number, row.name, row.series_number, row.flags) == (
        "1994:QX5316",
        1994,
        "QX5316",
        "1994 Yuletide Central",
        1,
        [],
    )


def test_stored_grouping_does_not_depend_on_order_or_batches(
    engine: Engine, new_database: Callable[[], Engine]
) -> None:
    """The hand-labelled listings (hard negatives, name-only listings, box variants) stored in
    file order in one batch, and shuffled in batches of 7 into another database: the same
    ornaments, and the ones the offline linker finds."""
    items = labelled()
    shuffled = random.Random(15).sample(items, len(items))
    other = new_database()
    store(engine, items)
    store(other, shuffled, batch=7)
    assert grouping(engine) == grouping(other) == offline_grouping(items)


def test_after_renames_the_stored_grouping_is_still_the_offline_linkers(engine: Engine) -> None:
    """Products that change name, SKU or year leave ornaments and join others: what is
    stored is what the offline linker makes of the listings as they are now."""
    items = labelled()
    store(engine, items, batch=100)
    chosen = random.Random(7)
    changed = {}
    for position in chosen.sample(range(len(items)), 60):
        other = items[chosen.randrange(len(items))]
        fields = chosen.choice([("name",), ("sku",), ("name", "sku", "release_year")])
        changed[position] = {**items[position], **{name: other[name] for name in fields}}
    now = [changed.get(position, found) for position, found in enumerate(items)]
    store(engine, list(changed.values()), batch=5)
    assert grouping(engine) == offline_grouping(now)
    assert len(relinked_rows(engine)) >= 20  # products did move


def test_an_unchanged_resync_does_no_linking_work(engine: Engine) -> None:
    items = labelled()[:60]
    store(engine, items)
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    store(engine, [{**found, "price": "99.95"} for found in items])  # prices only
    assert len(statements) == 2  # the crawl-run setting and the upsert: nothing else
    with engine.connect() as connection:
        pending = sa.select(sa.func.count()).where(products.c.link_pending)
        assert connection.execute(pending).scalar() == 0


def test_a_renamed_product_moves_and_its_history_says_so(engine: Engine) -> None:
    with engine.begin() as connection:
        run_id = connection.execute(
            sa.insert(crawl_runs).values(spider=OS).returning(crawl_runs.c.id)
        ).scalar_one()
    store(
        engine,
        [
            item(HOOH, 1, "2019 Snow Globe", "QX1001", 2019),
            item(HOOH, 2, "2019 Cardinal", "QX1002", 2019),
            item(OS, 3, "2019 Snow Globe", None, 2019),
        ],
    )
    before = links(engine)
    assert before[OS, "3"][0] == before[HOOH, "1"][0]
    store(engine, [item(OS, 3, "2019 Cardinal", None, 2019)], run_id=run_id)
    after = links(engine)
    assert after[OS, "3"][0] == after[HOOH, "2"][0]
    (row,) = relinked_rows(engine)
    assert (row["field"], row["old_value"], row["new_value"], row["crawl_run_id"]) == (
        "ornament_id",
        str(before[HOOH, "1"][0]),
        str(after[HOOH, "2"][0]),
        run_id,
    )


def test_a_listing_the_rules_cannot_read_is_stored_without_ornament(engine: Engine) -> None:
    store(engine, [item(OS, 1, "Vintage Bell NB", None, year=1962)])  # before Keepsake
    with engine.connect() as connection:
        row = connection.execute(
            sa.select(products, listing_forms.c.form).join(listing_forms)
        ).one()
    assert (row.ornament_id, row.condition, row.link_method) == (None, rules.NO_BOX, None)
    assert "release_year 1962 is not a Keepsake year" in row.form["problem"]


def test_two_shops_storing_one_new_ornament_at_once_share_it(engine: Engine) -> None:
    """The second waits for the year the first is linking, then joins its ornament."""
    second_done = threading.Event()
    errors: list[BaseException] = []

    def second() -> None:
        try:
            store(engine, [item(OS, 2, "1994 Yuletide Central #1", None)])
        except BaseException as error:  # reported by the assertion below
            errors.append(error)
        second_done.set()

    # The second transaction waiting for the lock of 1994 in this database (pg_locks shows
    # the whole server, where other tests run too).
    waiting = sa.text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND classid = :lock AND objid = 1994 AND objsubid = 2"
    ).bindparams(lock=YEAR_LOCK)
    with engine.begin() as first:
        upsert_products(first, [item(HOOH, 1, "1994 Yuletide Central", "QX5316")])
        thread = threading.Thread(target=second)
        thread.start()
        deadline = time.monotonic() + WAIT
        with engine.connect() as watcher:
            while not watcher.execute(waiting).scalar() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert watcher.execute(waiting).scalar() == 1
        assert not second_done.is_set()
    thread.join(WAIT)
    assert errors == [] and second_done.is_set()
    stored = links(engine)
    assert stored[OS, "2"][0] == stored[HOOH, "1"][0] is not None
    with engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(ornaments)).scalar() == 1


# --- relink -------------------------------------------------------------------------------------


def test_relink_after_storing_changes_nothing(engine: Engine) -> None:
    store(engine, labelled(), batch=50)
    before = links(engine)
    done = relink(engine)
    assert (done.products, done.relinked, done.ornaments_written, done.ornaments_deleted) == (
        0,
        0,
        0,
        0,
    )
    assert links(engine) == before
    assert relinked_rows(engine) == []


def test_relink_puts_links_right_records_each_move_and_is_idempotent(engine: Engine) -> None:
    """A rule change, simulated by links the rules would not make: one product linked to
    another ornament, one never linked."""
    items = [
        item(HOOH, 1, "2005 Jolly Old Elf", "QX2175", 2005),
        item(OS, 2, "2005 Jolly Old Elf NB", "QX2175NB", 2005),
        item(HO, 3, "2005 Winter Wonderland Sleigh", "QX2208", 2005),
        item(HO, 4, "2005 Jolly Old Elf", None, 2005),
    ]
    store(engine, items)
    right = links(engine)
    elf, sleigh = right[HOOH, "1"][0], right[HO, "3"][0]
    with engine.begin() as connection:
        connection.execute(
            sa.update(products).where(products.c.vendor == OS).values(ornament_id=sleigh)
        )
        never = sa.select(products.c.id).where(products.c.vendor_key == "4").scalar_subquery()
        connection.execute(sa.delete(listing_forms).where(listing_forms.c.product_id == never))
        connection.execute(
            sa.update(products)
            .where(products.c.id == never)
            .values(ornament_id=None, condition=None, link_method=None, link_score=None)
        )
    done = relink(engine)
    assert (done.products, done.linked, done.relinked) == (2, 1, 1)
    assert links(engine) == right
    (row,) = relinked_rows(engine)
    assert (row["field"], row["old_value"], row["new_value"], row["crawl_run_id"]) == (
        "ornament_id",
        str(sleigh),
        str(elf),
        None,
    )
    again = relink(engine)
    assert (again.products, again.relinked) == (0, 0)
    assert len(relinked_rows(engine)) == 1


def test_relink_retries_a_year_that_lost_a_deadlock(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    store(engine, [item(HOOH, 1, "2005 Jolly Old Elf", "QX2175", 2005)])
    with engine.begin() as connection:
        connection.execute(sa.update(products).values(ornament_id=None))
        # The first write of a product after this loses a deadlock, as to a crawl storing it.
        connection.execute(sa.text("CREATE SEQUENCE deadlock_once"))
        connection.execute(
            sa.text(
                "CREATE FUNCTION deadlock_once() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF nextval('deadlock_once') = 1 THEN "
                "RAISE EXCEPTION 'deadlock detected' USING ERRCODE = '40P01'; END IF; "
                "RETURN NEW; END $$"
            )
        )
        connection.execute(
            sa.text(
                "CREATE TRIGGER deadlock_once BEFORE UPDATE ON products "
                "FOR EACH ROW EXECUTE FUNCTION deadlock_once()"
            )
        )
    done = relink(engine)
    assert (done.products, done.linked) == (1, 1)
    assert links(engine)[HOOH, "1"][0] is not None
    assert "relink: year 2005 (attempt 1 of 5), retrying in 0.1 s: deadlock detected" in (
        caplog.text
    )


def test_relink_command_says_what_it_changed(engine: Engine, database_url: str) -> None:
    store(engine, [item(HOOH, 1, "2005 Jolly Old Elf", "QX2175", 2005)])
    with engine.begin() as connection:
        connection.execute(sa.update(products).values(ornament_id=None))
    env = {
        "ENV": "",
        "CONFIG_PATH": str(PROJECT_ROOT / "config" / "default.json"),
        "DATABASE_URL": database_url,
    }
    command = [sys.executable, "-m", "christmas_spiders.catalog", "relink"]
    result = subprocess.run(
        command, cwd=PROJECT_ROOT, env={**os.environ, **env}, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "relinked: 1 product(s) changed (1 linked for the first time" in result.stdout
    assert links(engine)[HOOH, "1"][0] is not None


# --- a real crawl of the replica ----------------------------------------------------------------


@pytest.fixture(scope="module")
def crawled(
    admin_engine: Engine, template_database: str, replica: Replica, tmp_path_factory
) -> Iterator[Engine]:
    """A database filled by crawls of every year of the three replica shops, side by side."""
    name = f"xmas_catalog_{uuid.uuid4().hex[:10]}"
    with admin_engine.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
    env = {
        "ENV": "",
        "CONFIG_PATH": str(PROJECT_ROOT / "config" / "default.json"),
        "DATABASE_URL": _url_for(name),
        "CHRISTMAS_DATA_DIR": str(tmp_path_factory.mktemp("catalog") / "data"),
    }
    fast = {"AUTOTHROTTLE_ENABLED": "0", "RETRY_BACKOFF_BASE": "0.05", "RETRY_BACKOFF_MAX": "1"}

    def crawl(vendor: str):
        arguments = {"base_url": replica.base_urls[vendor]}
        return scrapy_crawl(vendor, env=env, arguments=arguments, settings=fast, timeout=300)

    with ThreadPoolExecutor(len(VENDORS)) as pool:
        for vendor, result in zip(VENDORS, pool.map(crawl, VENDORS), strict=True):
            assert result.returncode == 0, f"{vendor}:\n{result.stdout[-3000:]}"
    engine = database.get_engine(config.load(env))
    yield engine
    engine.dispose()
    with admin_engine.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_a_crawl_of_three_shops_links_each_ornament_as_the_replica_says(
    crawled: Engine, replica: Replica
) -> None:
    truth: dict[Identity, str] = {}
    for vendor in VENDORS:
        origin = replica.base_urls[vendor]
        for product in replica.shop(vendor).products():
            if product.expect == EXPECT_ITEM:
                expected = product.expected(origin)
                assert expected is not None and product.ornament is not None
                truth[vendor, vendor_key(expected.as_json())] = product.ornament
    stored = links(crawled)
    assert stored.keys() == truth.keys()
    identities = sorted(truth)
    scores = pairwise_scores(
        [stored[identity][0] or f"alone {identity}" for identity in identities],
        [truth[identity] for identity in identities],
    )
    listings = Counter(truth.values())
    shared = [ornament for ornament, count in listings.items() if count > 1]
    assert len(shared) >= 30  # the test means something: many ornaments at several shops
    assert scores.precision == 1.0
    assert scores.recall >= 0.95, scores


def test_relink_after_a_crawl_changes_nothing(crawled: Engine) -> None:
    before = links(crawled)
    done = relink(crawled)
    assert (done.products, done.relinked, done.ornaments_deleted) == (0, 0, 0)
    assert links(crawled) == before
