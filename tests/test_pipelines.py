"""Pipelines: normalization and validation in-process, storage through real `scrapy crawl` runs."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from scrapy.utils.test import get_crawler
from sqlalchemy.engine import Engine

from christmas_spiders.config import Config
from christmas_spiders.pipelines import (
    NormalizePipeline,
    Rejected,
    StorePipeline,
    ValidatePipeline,
)
from christmas_spiders.processes import crawl_command
from christmas_spiders.storage import deadletter, get_engine
from christmas_spiders.storage.schema import crawl_runs, product_changes, products

from .conftest import PROJECT_ROOT
from .crawl import scrapy_crawl
from .spiders.items_feed import ItemsFeedSpider, feed_item

FEED = {"SPIDER_MODULES": "tests.spiders"}


@pytest.fixture
def pipelines(settings: Config):
    crawler = get_crawler(ItemsFeedSpider, {"CHRISTMAS_CONFIG": settings})
    return crawler, NormalizePipeline(crawler), ValidatePipeline(crawler)


def test_normalize_turns_shop_text_into_values(pipelines) -> None:
    _, normalize, _ = pipelines
    item = normalize.process_item(feed_item(7, Decimal("1290")))
    assert item["price"] == Decimal("1297.00")
    assert item["sku"] == "QX0007"
    assert item["name"] == "2019 Frosty Friends 7th in Series & more"
    assert item["availability"] == "available"
    assert (item["series"], item["series_number"]) == ("Frosty Friends", 7)
    assert item["artist"] is None  # "NA" on the page


def test_regular_price_only_when_higher_than_price(pipelines) -> None:
    _, normalize, _ = pipelines
    on_sale = normalize.process_item({**feed_item(1, Decimal(10)), "regular_price": "$24.95"})
    assert on_sale["regular_price"] == Decimal("24.95")
    same = normalize.process_item({**feed_item(1, Decimal(10)), "regular_price": "$11.00"})
    assert same["regular_price"] is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"name": "   "}, "no name"),
        ({"link": "/relative/only"}, "no link"),
        ({"availability": "Ask us", "availability_text": None}, "unknown availability"),
        ({"release_year": 1900}, "release year out of range"),
        ({"release_year": None, "name": "Betsey Clark"}, "no release year"),
        ({"price": "$250,000.00"}, "implausible price"),
        ({"price": -3}, "bad price"),
        ({"currency": "US Dollars"}, "bad currency"),
        ({"vendor": "amazon_com"}, "wrong vendor"),
    ],
)
def test_validation_drops_with_a_counted_reason(pipelines, change: dict, reason: str) -> None:
    crawler, normalize, validate = pipelines
    with pytest.raises(Rejected) as rejected:
        validate.process_item(normalize.process_item({**feed_item(3, Decimal(10)), **change}))
    assert rejected.value.reason == reason
    link = change.get("link", "http://127.0.0.1:9/2019-frosty-friends-3/")
    assert str(rejected.value) == f"{reason}: {link!r}"  # the log line names the item
    assert crawler.stats.get_value("items_dropped/" + reason.replace(" ", "_")) == 1


def _env(database_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "CHRISTMAS_DATA_DIR": str(tmp_path / "data"),
        "CHRISTMAS_STORE_BATCH_SIZE": "7",
        **extra,
    }


# Sessions of this test's database waiting for a lock on its products table.
_WAITING_ON_PRODUCTS = sa.text(
    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE NOT l.granted AND l.relation = 'products'::regclass "
    "AND a.datname = current_database() AND a.backend_type = 'client backend'"
)


def _writes_waiting_on_products(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.scalar(_WAITING_ON_PRODUCTS)


async def _until(condition: Callable[[], object], timeout: float = 60) -> None:
    """Poll the condition while the event loop runs the pipeline's tasks."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        await asyncio.sleep(0.05)


def test_closing_waits_for_a_periodic_flush_still_writing(make_config, engine: Engine) -> None:
    """The crawl is recorded (and unseen products delisted) right after the pipeline closes,
    so close must not return while a periodic flush is still writing its batch."""
    settings = make_config(CHRISTMAS_STORE_FLUSH_SECONDS="0.05")
    crawler = get_crawler(ItemsFeedSpider, {"CHRISTMAS_CONFIG": settings})
    normalize, validate, store = (
        NormalizePipeline(crawler),
        ValidatePipeline(crawler),
        StorePipeline(crawler),
    )
    blocker = engine.connect()
    blocker.execute(sa.text("LOCK TABLE products IN EXCLUSIVE MODE"))  # the write will wait

    async def crawl_then_close() -> None:
        try:
            await store.open_spider()
            for n in range(10):
                await store.process_item(
                    validate.process_item(normalize.process_item(feed_item(n, Decimal(n))))
                )
            # The periodic flush has taken the batch, and its write waits on the lock.
            await _until(lambda: _writes_waiting_on_products(engine) == 1)
            assert store.buffer == []
            closing = asyncio.create_task(store.close_spider())
            for _ in range(100):  # far more turns of the loop than a close that does not wait
                await asyncio.sleep(0)
            assert not closing.done(), "close_spider returned while a flush was still writing"
            blocker.commit()  # releases the lock: the write goes through, then close returns
            await closing
            with engine.connect() as connection:
                stored = connection.scalar(sa.select(sa.func.count()).select_from(products))
            assert stored == 10, "close_spider returned before its last batch was written"
        finally:
            blocker.rollback()  # a failed check must not leave the writing thread waiting

    try:
        asyncio.run(crawl_then_close())
    finally:
        blocker.close()
    store.engine.dispose()


def test_crawl_stores_items_and_records_the_run(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    result = scrapy_crawl(
        "ornament_shop_com",
        env=_env(database_url, tmp_path),
        arguments={"count": "30", "bad": "1"},
        settings=FEED,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "30 created, 0 updated, 0 unchanged, 3 dropped, 0 dead-lettered" in result.stdout
    assert "no name: 1" in result.stdout
    with engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(products)).scalar() == 30
        run = connection.execute(sa.select(crawl_runs)).one()._mapping
    assert run["status"] == "finished"
    assert (run["items_created"], run["items_dropped"]) == (30, 3)
    assert run["stats"]["items_dropped/unknown_availability"] == 1
    assert run["arguments"] == {"count": "30"}

    again = scrapy_crawl(
        "ornament_shop_com",
        env=_env(database_url, tmp_path),
        arguments={"count": "30"},
        settings=FEED,
    )
    assert again.returncode == 0, again.stdout[-3000:]
    assert "0 created, 0 updated, 30 unchanged" in again.stdout
    with engine.connect() as connection:
        kinds = connection.execute(sa.select(product_changes.c.kind).distinct()).scalars().all()
    assert kinds == ["listed"]


def test_price_changes_are_counted_in_the_summary(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    env = _env(database_url, tmp_path)
    first = scrapy_crawl("ornament_shop_com", env=env, arguments={"count": "5"}, settings=FEED)
    assert first.returncode == 0, first.stdout[-3000:]
    second = scrapy_crawl(
        "ornament_shop_com", env=env, arguments={"count": "5", "price": "12"}, settings=FEED
    )
    assert second.returncode == 0, second.stdout[-3000:]
    assert "0 created, 5 updated, 0 unchanged" in second.stdout
    assert "changes   5 price" in second.stdout


def _count_products(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.scalar(sa.select(sa.func.count()).select_from(products))


def _wait_until(condition: Callable[[], object], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        time.sleep(0.05)


def test_database_down_mid_crawl_dead_letters_then_replays(private_postgres, tmp_path: Path):
    pause = tmp_path / "pause"
    pause.mkdir()
    env = _env(
        private_postgres.url,
        tmp_path,
        CHRISTMAS_STORE_FLUSH_SECONDS="0.1",
        CHRISTMAS_DB_WRITE_ATTEMPTS="3",
        CHRISTMAS_DB_RETRY_BACKOFF_SECONDS="0.05",
    )
    command = crawl_command(
        "ornament_shop_com",
        {"count": 40, "pause_after": 12, "pause_dir": pause},
        {"SPIDER_MODULES": "tests.spiders"},
    )
    crawler = subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env={**env, "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    _wait_until((pause / "paused").exists)
    engine = get_engine(Config(database_url=private_postgres.url))
    _wait_until(lambda: _count_products(engine) == 12)  # the periodic flush stores them
    engine.dispose()
    private_postgres.stop()
    (pause / "resume").touch()
    output, _ = crawler.communicate(timeout=120)
    assert crawler.returncode != 0, output[-3000:]
    assert "could not store" in output
    assert ": failed (finished)" in output

    [dead_letter_file] = (tmp_path / "data" / "dead-letter").glob("*.jsonl")
    kept = list(deadletter.read(dead_letter_file))
    assert sorted(item["vendor_product_id"] for item in kept) == [
        str(1000 + n) for n in range(12, 40)
    ]

    private_postgres.start()
    replay = subprocess.run(
        [sys.executable, "-m", "christmas_spiders.storage", "replay", str(dead_letter_file)],
        cwd=PROJECT_ROOT,
        env={**env, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert replay.returncode == 0, replay.stdout + replay.stderr
    engine = get_engine(Config(database_url=private_postgres.url))
    with engine.connect() as connection:
        stored = connection.execute(sa.select(products.c.vendor_product_id, products.c.price))
        prices = dict(stored.all())
    engine.dispose()
    assert len(prices) == 40
    assert prices["1039"] == Decimal("49.00")


def test_dead_letter_lines_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    deadletter.append(path, [{"price": Decimal("1.50"), "name": "Noël"}], "server closed")
    assert json.loads(path.read_text())["error"] == "server closed"
    assert list(deadletter.read(path)) == [{"price": "1.50", "name": "Noël"}]


def test_a_batch_whose_write_fails_unexpectedly_is_dead_lettered(make_config) -> None:
    """Not only database errors: a batch whose write raises anything is kept, never dropped."""

    class BrokenStore(StorePipeline):  # a bug in the write path, as a test-only subclass
        def _upsert(self, items, run_id):
            raise KeyError("a bug in the write path")

    settings = make_config()
    crawler = get_crawler(ItemsFeedSpider, {"CHRISTMAS_CONFIG": settings})
    normalize, validate, store = (
        NormalizePipeline(crawler),
        ValidatePipeline(crawler),
        BrokenStore(crawler),
    )

    async def crawl_then_close() -> None:
        await store.open_spider()
        for n in range(3):
            await store.process_item(
                validate.process_item(normalize.process_item(feed_item(n, Decimal(n))))
            )
        await store.close_spider()

    asyncio.run(crawl_then_close())
    store.engine.dispose()
    assert crawler.stats.get_value("store/dead_lettered") == 3
    kept = list(deadletter.read(Path(crawler.stats.get_value("store/dead_letter_file"))))
    assert sorted(item["sku"] for item in kept) == ["QX0000", "QX0001", "QX0002"]
