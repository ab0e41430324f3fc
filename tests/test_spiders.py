"""The three spiders against the replica: real HTTP, real PostgreSQL, real `scrapy crawl`.

What a crawl stores is compared field by field with the replica's ground truth.
"""

from __future__ import annotations

import json
import re
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from parsel import Selector
from sqlalchemy.engine import Engine

from bench.crawl_efficiency import minimum
from christmas_spiders.parsers import hookedonhallmark_com as hooh_parser
from christmas_spiders.storage.products import ITEM_COLUMNS
from christmas_spiders.storage.schema import crawl_runs, product_changes, products

from .crawl import scrapy_crawl
from .replica.client import Replica
from .replica.layout import HO_EMPTY_YEAR, HOOH_EMPTY_YEAR, OS_EMPTY_YEAR

HOOH, OS, HO = "hookedonhallmark_com", "ornament_shop_com", "hallmark_ornaments_com"
STATIC_SHOPS = (HOOH, OS)
FIELDS = tuple(column for column in ITEM_COLUMNS if column != "vendor_product_id")
# Politeness off for speed; retries wait 50 ms instead of seconds.
FAST = {"AUTOTHROTTLE_ENABLED": "0", "RETRY_BACKOFF_BASE": "0.05", "RETRY_BACKOFF_MAX": "1"}


def crawl(vendor: str, replica: Replica, database_url: str, tmp_path: Path, **kwargs: Any):
    settings = {**FAST, **kwargs.pop("settings", {})}
    return scrapy_crawl(
        vendor,
        env={"DATABASE_URL": database_url, "CHRISTMAS_DATA_DIR": str(tmp_path / "data")},
        arguments={"base_url": replica.base_urls[vendor], **kwargs},
        settings=settings,
        timeout=300,
    )


def requests_sent(output: str) -> int:
    """Pages the crawler asked for (Scrapy's final stats), robots.txt excluded."""

    def stat(name: str) -> int:
        found = re.search(rf"'{re.escape(name)}': (\d+)", output)
        return int(found.group(1)) if found else 0

    return stat("downloader/request_count") - stat("robotstxt/request_count")


def stored(engine: Engine, vendor: str) -> dict[str, dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(sa.select(products).where(products.c.vendor == vendor))
        return {row.vendor_product_id: dict(row._mapping) for row in rows}


def last_run(engine: Engine) -> dict[str, Any]:
    with engine.connect() as connection:
        run = connection.execute(sa.select(crawl_runs).order_by(crawl_runs.c.id.desc())).first()
    return dict(run._mapping)


def mismatches(expected: dict[str, Any], rows: dict[str, dict[str, Any]]) -> list[str]:
    problems = []
    for key, item in expected.items():
        row = rows.get(key)
        if row is None:
            problems.append(f"{key}: not stored ({item.name})")
            continue
        for field in FIELDS:
            if getattr(item, field) != row[field]:
                problems.append(
                    f"{key} {field}: expected {getattr(item, field)!r}, got {row[field]!r}"
                )
    problems += [f"{key}: stored but not expected" for key in set(rows) - set(expected)]
    return problems


@pytest.mark.parametrize("vendor", [HOOH, OS, HO])
def test_full_crawl_stores_the_catalog_field_by_field(
    vendor: str, replica: Replica, database_url: str, engine: Engine, tmp_path: Path
) -> None:
    result = crawl(vendor, replica, database_url, tmp_path)
    assert result.returncode == 0, result.stdout[-4000:]
    expected = {item.vendor_product_id: item for item in replica.expected_items(vendor)}
    assert len(expected) > 40
    assert mismatches(expected, stored(engine, vendor)) == []
    run = last_run(engine)
    assert run["status"] == "finished"
    assert run["items_created"] == len(expected)
    # No page twice, none wasted: exactly the fewest requests the shop's layout allows.
    assert requests_sent(result.stdout) == minimum(replica.shop(vendor)).requests
    renders = run["browser_renders"]
    if vendor == HO:  # one render per year grid, nothing else
        year_grids = len(replica.shop(vendor).year_categories())
        assert renders == year_grids
    else:
        assert renders == 0


@pytest.mark.parametrize("vendor", STATIC_SHOPS)
def test_year_mode_crawls_only_those_years(
    vendor: str, replica: Replica, database_url: str, engine: Engine, tmp_path: Path
) -> None:
    result = crawl(vendor, replica, database_url, tmp_path, year="2018-2019")
    assert result.returncode == 0, result.stdout[-4000:]
    expected = {i.vendor_product_id: i for i in replica.expected_items(vendor, {2018, 2019})}
    assert expected
    assert mismatches(expected, stored(engine, vendor)) == []


@pytest.mark.parametrize(
    ("vendor", "year"), [(HOOH, HOOH_EMPTY_YEAR), (OS, OS_EMPTY_YEAR), (HO, HO_EMPTY_YEAR)]
)
def test_empty_year_stores_nothing_and_succeeds(
    vendor: str, year: int, replica: Replica, database_url: str, engine: Engine, tmp_path: Path
) -> None:
    result = crawl(vendor, replica, database_url, tmp_path, year=str(year))
    assert result.returncode == 0, result.stdout[-4000:]
    assert stored(engine, vendor) == {}
    assert last_run(engine)["status"] == "finished"


@pytest.mark.parametrize("autothrottle", ["1", "0"])
def test_a_shop_never_sees_more_than_the_per_shop_limit(
    autothrottle: str, replica: Replica, database_url: str, tmp_path: Path
) -> None:
    """CONCURRENT_REQUESTS_PER_DOMAIN holds with AutoThrottle on and off (Scrapy enforces it
    only with a download delay above 0, which our settings keep)."""
    replica.reset(HOOH)
    replica.set_latency(30, HOOH)
    try:
        result = crawl(
            HOOH,
            replica,
            database_url,
            tmp_path,
            year="2019",
            settings={
                "AUTOTHROTTLE_ENABLED": autothrottle,
                "AUTOTHROTTLE_START_DELAY": "0.01",
                "CONCURRENT_REQUESTS_PER_DOMAIN": "2",
            },
        )
        shop = replica.stats(HOOH)
    finally:
        replica.reset(HOOH)
    assert result.returncode == 0, result.stdout[-4000:]
    assert shop["total"] > 20
    assert shop["max_in_flight"] == 2


def test_years_are_listed_a_few_at_a_time(
    replica: Replica, database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """One year listing at a time, one request at a time: the years go in the index's order, and
    a year's product pages are fetched before the year after next is listed."""
    result = scrapy_crawl(
        HOOH,
        env={
            "DATABASE_URL": database_url,
            "CHRISTMAS_DATA_DIR": str(tmp_path / "data"),
            "LOG_LEVEL": "DEBUG",
        },
        arguments={"base_url": replica.base_urls[HOOH]},
        settings={**FAST, "YEAR_LISTINGS_AT_ONCE": "1", "CONCURRENT_REQUESTS": "1"},
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:]
    crawled = re.findall(r"Crawled \(\d+\) <GET ([^>]+)> \(referer: ([^)]+)\)", result.stdout)
    index = replica.base_urls[HOOH] + "/keepsake-hallmark-ornaments-by-year.html"
    page = urllib.request.urlopen(index, timeout=30).read().decode()
    in_index_order = [url for _, url in hooh_parser.year_links(Selector(text=page), index)]
    # The listings (with segments) of the year crawled last and of the one before: the next
    # year may be asked for while the last listing of a year is still being read.
    recent: list[set[str]] = [set(), set()]
    years = []
    for url, referer in crawled:
        if url.split("?")[0] in in_index_order:
            recent = [recent[-1], {url}]
            years.append(url.split("?")[0])
        elif "_p_" not in url:
            recent[-1].add(url)
        elif referer != "None":
            assert referer in set.union(*recent), f"{url} (from {referer}) fetched too late"
    assert years == list(dict.fromkeys(in_index_order))
    expected = {item.vendor_product_id for item in replica.expected_items(HOOH)}
    assert stored(engine, HOOH).keys() == expected


@pytest.mark.parametrize("vendor", [HOOH])  # the replica's looping Next link is on HooH (E14)
def test_paging_without_view_all_ends_despite_a_self_link(
    vendor: str, replica: Replica, database_url: str, engine: Engine, tmp_path: Path
) -> None:
    replica.reset(vendor)
    result = crawl(vendor, replica, database_url, tmp_path, settings={"LISTING_VIEW_ALL": "0"})
    assert result.returncode == 0, result.stdout[-4000:]
    expected = {item.vendor_product_id: item for item in replica.expected_items(vendor)}
    assert mismatches(expected, stored(engine, vendor)) == []
    assert "dupefilter/filtered" in result.stdout


@pytest.mark.parametrize("vendor", [HOOH, OS, HO])
def test_url_and_product_id_modes_sync_one_product(
    vendor: str, replica_reset: Replica, database_url: str, engine: Engine, tmp_path: Path
) -> None:
    replica = replica_reset
    item = next(i for i in replica.expected_items(vendor) if i.price and not i.regular_price)
    result = crawl(vendor, replica, database_url, tmp_path, url=item.link)
    assert result.returncode == 0, result.stdout[-4000:]
    rows = stored(engine, vendor)
    assert list(rows) == [item.vendor_product_id]
    assert mismatches({item.vendor_product_id: item}, rows) == []

    replica.set_product(vendor, item.vendor_product_id, price="1234.50")
    product_id = rows[item.vendor_product_id]["id"]
    again = crawl(vendor, replica, database_url, tmp_path, product_id=str(product_id))
    assert again.returncode == 0, again.stdout[-4000:]
    assert stored(engine, vendor)[item.vendor_product_id]["price"] == Decimal("1234.50")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"year": "19x9"}, "'19x9' is not"),
        ({"url": "https://www.hookedonhallmark.com/x_p_1.html"}, "is not on this shop"),
        ({"product_id": "999999"}, "is not a stored ornament_shop_com product"),
        ({"yaer": "2019"}, "unknown argument(s) yaer"),
    ],
)
def test_bad_argument_stops_before_any_request(
    arguments: dict[str, str],
    message: str,
    replica_reset: Replica,
    database_url: str,
    tmp_path: Path,
) -> None:
    result = crawl(OS, replica_reset, database_url, tmp_path, **arguments)
    assert result.returncode != 0
    assert message in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    assert replica_reset.stats(OS)["total"] == 0


@pytest.mark.parametrize("vendor", [HOOH, OS, HO])
def test_second_crawl_records_exactly_the_changes(
    vendor: str, replica_reset: Replica, database_url: str, engine: Engine, tmp_path: Path
) -> None:
    replica = replica_reset
    first = crawl(vendor, replica, database_url, tmp_path)
    assert first.returncode == 0, first.stdout[-4000:]
    items = [i for i in replica.expected_items(vendor) if i.price and not i.regular_price]
    cheaper, sold_out = items[0], next(i for i in items[1:] if i.availability == "available")
    replica.set_product(vendor, cheaper.vendor_product_id, price=str(cheaper.price - 1))
    replica.set_product(
        vendor, sold_out.vendor_product_id, availability="unavailable", availability_text="Sold Out"
    )
    second = crawl(vendor, replica, database_url, tmp_path)
    assert second.returncode == 0, second.stdout[-4000:]
    with engine.connect() as connection:
        changes = connection.execute(
            sa.select(
                products.c.vendor_product_id,
                product_changes.c.field,
                product_changes.c.old_value,
                product_changes.c.new_value,
            )
            .join(products, products.c.id == product_changes.c.product_id)
            .where(product_changes.c.kind == "changed")
            .order_by(product_changes.c.id)
        ).all()
    assert sorted(map(tuple, changes)) == sorted(
        [
            (cheaper.vendor_product_id, "price", str(cheaper.price), str(cheaper.price - 1)),
            (sold_out.vendor_product_id, "availability", "available", "unavailable"),
        ]
    )
    assert last_run(engine)["items_updated"] == 2, second.stdout[-3000:]  # one row each


@pytest.mark.parametrize("vendor", STATIC_SHOPS)
def test_crawl_survives_failing_requests(
    vendor: str, replica_reset: Replica, database_url: str, engine: Engine, tmp_path: Path
) -> None:
    replica = replica_reset
    replica.throttle(vendor, every=5, status=503, retry_after=0)  # 20% of requests fail
    result = crawl(vendor, replica, database_url, tmp_path)
    assert result.returncode == 0, result.stdout[-4000:]
    expected = {item.vendor_product_id: item for item in replica.expected_items(vendor)}
    assert mismatches(expected, stored(engine, vendor)) == []
    assert "retry/count" in result.stdout


@pytest.mark.parametrize(
    ("vendor", "counters"),
    [
        (HOOH, ["pages/problems/broken_3d_item", "pages/problems/missing_sku"]),
        (OS, ["pages/problems/broken_bcdata", "pages/problems/missing_sku"]),
        (HO, ["pages/skipped/no_name", "pages/skipped/no_product"]),
    ],
)
def test_malformed_pages_are_counted_and_the_crawl_goes_on(
    vendor: str,
    counters: list[str],
    replica: Replica,
    database_url: str,
    engine: Engine,
    tmp_path: Path,
) -> None:
    result = crawl(vendor, replica, database_url, tmp_path)
    assert result.returncode == 0, result.stdout[-4000:]
    run = last_run(engine)
    assert run["status"] == "finished"
    assert {counter: run["stats"].get(counter, 0) >= 1 for counter in counters} == dict.fromkeys(
        counters, True
    )


def test_feed_export_and_storage_side_by_side(
    replica: Replica, database_url: str, engine: Engine, tmp_path: Path
) -> None:
    feed = tmp_path / "items.jsonl"
    result = scrapy_crawl(
        OS,
        env={"DATABASE_URL": database_url, "CHRISTMAS_DATA_DIR": str(tmp_path / "data")},
        arguments={"base_url": replica.base_urls[OS], "year": "2019"},
        settings=FAST,
        extra=["-O", str(feed)],
    )
    assert result.returncode == 0, result.stdout[-4000:]
    exported = [json.loads(line) for line in feed.read_text().splitlines()]
    rows = stored(engine, OS)
    assert len(exported) == len(rows) > 0
    first = exported[0]
    assert isinstance(first["price"], str | None)  # Decimals as strings
    assert Decimal(first["price"]) == rows[first["vendor_product_id"]]["price"]


def changes_of_kind(engine: Engine, kind: str) -> list[str]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                sa.select(products.c.vendor_product_id)
                .join(product_changes, products.c.id == product_changes.c.product_id)
                .where(product_changes.c.kind == kind)
                .order_by(product_changes.c.id)
            ).scalars()
        )


def test_a_product_gone_from_the_shop_is_delisted_then_relisted(
    replica_reset: Replica, database_url: str, engine: Engine, tmp_path: Path
) -> None:
    replica = replica_reset
    assert crawl(OS, replica, database_url, tmp_path, year="2019").returncode == 0
    gone = replica.expected_items(OS, {2019})[0]
    replica.set_product(OS, gone.vendor_product_id, gone=True)
    result = crawl(OS, replica, database_url, tmp_path, year="2019")
    assert result.returncode == 0, result.stdout[-4000:]
    assert "1 delisted" in result.stdout
    assert changes_of_kind(engine, "delisted") == [gone.vendor_product_id]
    assert stored(engine, OS)[gone.vendor_product_id]["delisted_at"] is not None

    replica.reset(OS)
    assert crawl(OS, replica, database_url, tmp_path, year="2019").returncode == 0
    assert changes_of_kind(engine, "relisted") == [gone.vendor_product_id]
    assert stored(engine, OS)[gone.vendor_product_id]["delisted_at"] is None


def test_an_incomplete_crawl_delists_nothing(
    replica_reset: Replica, database_url: str, engine: Engine, tmp_path: Path
) -> None:
    replica = replica_reset
    assert crawl(HOOH, replica, database_url, tmp_path, year="2019").returncode == 0
    items = replica.expected_items(HOOH, {2019})
    for item in items[: len(items) * 3 // 4]:  # three quarters vanish at once: suspicious
        replica.set_product(HOOH, item.vendor_product_id, gone=True)
    result = crawl(HOOH, replica, database_url, tmp_path, year="2019")
    assert result.returncode == 0, result.stdout[-4000:]
    assert "looks incomplete" in result.stdout
    assert changes_of_kind(engine, "delisted") == []


def test_a_gone_product_page_in_url_mode_delists_it(
    replica_reset: Replica, database_url: str, engine: Engine, tmp_path: Path
) -> None:
    replica = replica_reset
    item = replica.expected_items(HOOH)[3]
    assert crawl(HOOH, replica, database_url, tmp_path, url=item.link).returncode == 0
    replica.set_product(HOOH, item.vendor_product_id, gone=True)
    product_id = stored(engine, HOOH)[item.vendor_product_id]["id"]
    result = crawl(HOOH, replica, database_url, tmp_path, product_id=str(product_id))
    assert result.returncode == 0, result.stdout[-4000:]
    assert changes_of_kind(engine, "delisted") == [item.vendor_product_id]


def test_a_crawl_that_gave_up_on_requests_delists_nothing(
    replica_reset: Replica, database_url: str, engine: Engine, tmp_path: Path
) -> None:
    replica = replica_reset
    assert crawl(OS, replica, database_url, tmp_path, year="2019").returncode == 0
    replica.throttle(OS, every=4, status=503, retry_after=0)  # a quarter of requests fail
    result = scrapy_crawl(
        OS,
        env={
            "DATABASE_URL": database_url,
            "CHRISTMAS_DATA_DIR": str(tmp_path / "data"),
            "CHRISTMAS_DELIST_MIN_RATIO": "0",  # only the give-up guard stands in the way
        },
        arguments={"base_url": replica.base_urls[OS], "year": "2019"},
        settings={**FAST, "RETRY_TIMES": "0"},
    )
    assert "gave up after their retries" in result.stdout, result.stdout[-4000:]
    assert changes_of_kind(engine, "delisted") == []
