"""The read-only API against a known catalog: every endpoint's filters, sorting, pagination,
history, the cross-shop SKU view, the change feed, ETags, and bad input (the exact 400 or 404
and its message)."""

from __future__ import annotations

import base64
import csv
import io
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.engine import Engine

from christmas_spiders import config
from christmas_spiders.storage import database, runs
from christmas_spiders.storage.products import upsert_products
from christmas_spiders.storage.schema import product_changes, products
from webapi import auth, create_app

from .conftest import PROJECT_ROOT, _url_for

VENDOR_IDS = ("hookedonhallmark_com", "ornament_shop_com", "hallmark_ornaments_com")
SKU = "QX1001"
T0 = datetime(2026, 1, 1, tzinfo=UTC)  # every product is listed then


def when(month: int, day: int = 1) -> datetime:
    return datetime(2026, month, day, tzinfo=UTC)


def product_item(vendor: str, key: str, **changes: Any) -> dict[str, Any]:
    base = {
        "vendor": vendor,
        "vendor_product_id": key,
        "sku": None,
        "name": f"Ornament {key}",
        "price": Decimal("10.00"),
        "regular_price": None,
        "currency": "USD",
        "availability": "available",
        "availability_text": None,
        "release_year": 2019,
        "brand": "Hallmark",
        "link": f"http://127.0.0.1:9/{vendor}/{key}",
        "image_url": None,
        "series": None,
        "series_number": None,
        "artist": None,
    }
    return {**base, **changes}


def _catalog_items() -> list[dict[str, Any]]:
    horse = {
        "name": "2019 Nostalgic Rocking Horse",
        "sku": SKU,
        "release_year": 2019,
        "series": "Nostalgic Rocking Horse",
        "series_number": 5,
        "artist": "Ken Crow",
    }
    items = [
        # One SKU at all three shops: in stock at 20.00 and 18.00, out of stock at 15.00.
        product_item("hookedonhallmark_com", "h-horse", price=Decimal("20.00"), **horse),
        product_item(
            "ornament_shop_com",
            "o-horse",
            price=Decimal("15.00"),
            availability="unavailable",
            **horse,
        ),
        product_item("hallmark_ornaments_com", "m-horse", price=Decimal("18.00"), **horse),
    ]
    series = ("Frosty Friends", "Snow Buddies", None)
    artists = ("Lynn Norton", "Ken Crow", None, "Sharon Visker")
    for number in range(45):
        vendor = VENDOR_IDS[number % 3]
        year = 2010 + number % 10
        name_series = series[number % 3]
        items.append(
            product_item(
                vendor,
                f"p{number:02d}",
                sku=f"QX{2000 + number}",
                name=f"{year} {name_series or 'Candy Cane'} Ornament {number:02d}",
                price=None if number % 7 == 0 else Decimal(5 + number) + Decimal("0.95"),
                availability=("available", "preorder", "unavailable")[number // 3 % 3],
                release_year=year,
                series=name_series,
                artist=artists[number % 4],
            )
        )
    return items


@dataclass
class Catalog:
    """The seeded database: its URL, the items written, and what happened to them."""

    url: str
    items: list[dict[str, Any]]
    ids: dict[str, int] = field(default_factory=dict)  # vendor_product_id → products.id
    delisted: str = "p44"
    recent: tuple[str, ...] = ("p01", "p02")  # updated_at moved to June
    run_ids: list[int] = field(default_factory=list)

    def settings(self, tmp_path, **env: str) -> config.Config:
        environ = {
            "ENV": "",
            "CONFIG_PATH": str(PROJECT_ROOT / "config" / "default.json"),
            "DATABASE_URL": self.url,
            "CHRISTMAS_DATA_DIR": str(tmp_path / "data"),
        }
        return config.load({**environ, **env})

    def rows(self) -> list[dict[str, Any]]:
        """The listed items with their ids, as the API should show them."""
        found = []
        for item in self.items:
            key = item["vendor_product_id"]
            updated = when(6) if key in self.recent else T0
            found.append({**item, "id": self.ids[key], "updated_at": updated})
        return found


def _write(engine: Engine, items: list[dict[str, Any]], run_id: int | None = None) -> None:
    with engine.begin() as connection:
        upsert_products(connection, items, run_id)


def seed_catalog(url: str, tmp_path) -> Catalog:
    """Write the known catalog, its history (at fixed times) and three crawl runs."""
    catalog = Catalog(url=url, items=_catalog_items())
    settings = catalog.settings(tmp_path)
    engine = database.get_engine(settings)
    _write(engine, catalog.items)
    with engine.connect() as connection:
        catalog.ids = dict(
            connection.execute(sa.select(products.c.vendor_product_id, products.c.id)).all()
        )
    # The horse at Hooked on Hallmark: a drop, sold out, back in stock, a rise.
    horse = next(item for item in catalog.items if item["vendor_product_id"] == "h-horse")
    history = [
        ({"price": Decimal("17.00")}, when(2)),
        ({"availability": "unavailable"}, when(3)),
        ({"availability": "available"}, when(4)),
        ({"price": Decimal("19.00")}, when(5)),
    ]
    with engine.begin() as connection:
        run_id = runs.start_run(connection, "hookedonhallmark_com", {"year": "2019"})
    for changes, _ in history:
        horse.update(changes)
        _write(engine, [horse], run_id)
    with engine.begin() as connection:
        product_id = catalog.ids["h-horse"]
        change_ids = connection.execute(
            sa.select(product_changes.c.id)
            .where(product_changes.c.product_id == product_id, product_changes.c.kind == "changed")
            .order_by(product_changes.c.id)
        ).scalars()
        connection.execute(sa.update(product_changes).values(changed_at=T0))
        for change_id, (_, moment) in zip(change_ids, history, strict=True):
            connection.execute(
                sa.update(product_changes)
                .where(product_changes.c.id == change_id)
                .values(changed_at=moment)
            )
        connection.execute(sa.update(products).values(updated_at=T0, last_synced_at=T0))
        connection.execute(
            sa.update(products)
            .where(products.c.vendor_product_id.in_(catalog.recent))
            .values(updated_at=when(6))
        )
        connection.execute(
            sa.update(products)
            .where(products.c.vendor_product_id == catalog.delisted)
            .values(delisted_at=when(7))
        )
        connection.execute(
            sa.update(product_changes)
            .where(product_changes.c.kind == "delisted")
            .values(changed_at=when(7))
        )
        runs.finish_run(
            connection,
            run_id,
            status="finished",
            close_reason="finished",
            counters={"requests": 12, "items_updated": 4},
            stats={"pages/product": 4},
        )
        catalog.run_ids.append(run_id)
        for vendor in ("ornament_shop_com", "hookedonhallmark_com"):
            catalog.run_ids.append(runs.start_run(connection, vendor, {}))
    engine.dispose()
    return catalog


@pytest.fixture(scope="module")
def catalog(admin_engine, template_database, tmp_path_factory) -> Iterator[Catalog]:
    name = f"xmas_api_{uuid.uuid4().hex[:12]}"
    with admin_engine.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
    yield seed_catalog(_url_for(name), tmp_path_factory.mktemp("catalog"))
    with admin_engine.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def owner_engine(url: str) -> Engine:
    """The database's owner (as the CLI and the crawler connect), not the API's role."""
    driver_url = sa.engine.make_url(url).set(drivername="postgresql+psycopg2")
    return sa.create_engine(driver_url, poolclass=sa.pool.NullPool)


@pytest.fixture(scope="module")
def api_key(catalog: Catalog) -> str:
    engine = owner_engine(catalog.url)
    with engine.begin() as connection:
        _, key = auth.create_key(connection, f"tests-{uuid.uuid4().hex[:6]}")
    engine.dispose()
    return key


@pytest.fixture(scope="module")
def client(catalog: Catalog, api_key: str, tmp_path_factory) -> Iterator[FlaskClient]:
    settings = catalog.settings(tmp_path_factory.mktemp("app"), CHRISTMAS_API_RATE_LIMIT="10000000")
    app = create_app(settings)
    test_client = app.test_client()
    test_client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {api_key}"
    yield test_client
    app.extensions["christmas_db"].dispose()


def get(client: FlaskClient, url: str, expect: int = 200, /, **params: Any) -> Any:
    response = client.get(url, query_string=params)
    assert response.status_code == expect, response.get_data(as_text=True)
    return response.get_json()


def bad_parameter(client: FlaskClient, url: str, named: str, reason: str, **params: Any) -> Any:
    """GET `url` with `params`: a 400 naming the parameter `named` alone, its message starting
    with `reason`; the answer."""
    error = get(client, url, 400, **params)
    assert list(error["errors"]) == [named]
    assert error["message"].startswith(f"invalid parameter {named}: {reason}")
    return error


def listed(catalog: Catalog, predicate: Callable[[dict], bool] = lambda _: True) -> list[int]:
    return sorted(
        row["id"]
        for row in catalog.rows()
        if row["vendor_product_id"] != catalog.delisted and predicate(row)
    )


def ids_of(page: dict) -> list[int]:
    return [item["id"] for item in page["items"]]


def walk(client: FlaskClient, url: str, **params: Any) -> list[dict]:
    """Every item of a paginated list, following next_cursor."""
    items, cursor, pages = [], None, 0
    while True:
        page = get(client, url, **params, **({"cursor": cursor} if cursor else {}))
        items += page["items"]
        cursor, pages = page["next_cursor"], pages + 1
        assert pages < 100
        if cursor is None:
            return items


# --- vendors ------------------------------------------------------------------------------------


def test_vendors_have_product_counts_last_sync_and_last_run(client, catalog) -> None:
    vendors = {vendor["id"]: vendor for vendor in get(client, "/v1/vendors")}
    assert set(vendors) == set(VENDOR_IDS)
    hoh = vendors["hookedonhallmark_com"]
    expected = [row for row in catalog.rows() if row["vendor"] == "hookedonhallmark_com"]
    assert hoh["products"]["total"] == len(expected)
    assert hoh["products"]["listed"] == len(expected)
    assert hoh["last_synced_at"] > T0.isoformat()  # its finished run
    assert vendors["ornament_shop_com"]["last_synced_at"] == T0.isoformat()  # its products
    assert hoh["last_run"]["id"] == catalog.run_ids[2]
    assert hoh["last_run"]["status"] == "running"
    ho = vendors["hallmark_ornaments_com"]
    assert ho["products"]["delisted"] == 1  # p44
    assert ho["products"]["listed"] == ho["products"]["total"] - 1
    assert ho["last_run"] is None
    assert get(client, "/v1/vendors/ornament_shop_com")["id"] == "ornament_shop_com"
    assert get(client, "/v1/vendors/nope", 404)["message"] == "no vendor 'nope'."


def test_the_ornament_factory_is_named_with_its_address(client) -> None:
    """hallmarkornaments.com calls itself The Ornament Factory: its name says both (#20)."""
    vendor = get(client, "/v1/vendors/hallmark_ornaments_com")
    assert vendor["display_name"] == "The Ornament Factory (hallmarkornaments.com)"
    offers = get(client, f"/v1/skus/{SKU}")["offers"]
    names = {offer["vendor"]: offer["vendor_name"] for offer in offers}
    assert names["hallmark_ornaments_com"] == vendor["display_name"]


# --- the product list -----------------------------------------------------------------------------


FILTERS: list[tuple[dict[str, Any], Callable[[dict], bool]]] = [
    ({"vendor": "ornament_shop_com"}, lambda r: r["vendor"] == "ornament_shop_com"),
    (
        {"vendor": ["ornament_shop_com", "hallmark_ornaments_com"]},
        lambda r: r["vendor"] != "hookedonhallmark_com",
    ),
    ({"release_year": 2015}, lambda r: r["release_year"] == 2015),
    (
        {"release_year_min": 2016, "release_year_max": 2018},
        lambda r: 2016 <= r["release_year"] <= 2018,
    ),
    ({"sku": " qx1001 "}, lambda r: r["sku"] == SKU),
    ({"series": "frosty FRIENDS"}, lambda r: r["series"] == "Frosty Friends"),
    ({"artist": "ken crow"}, lambda r: r["artist"] == "Ken Crow"),
    ({"availability": "preorder"}, lambda r: r["availability"] == "preorder"),
    (
        {"availability": ["preorder", "unavailable"]},
        lambda r: r["availability"] != "available",
    ),
    (
        {"price_min": "10", "price_max": "20.95"},
        lambda r: r["price"] is not None and 10 <= r["price"] <= Decimal("20.95"),
    ),
    ({"q": "rock hors"}, lambda r: "Rocking Horse" in r["name"]),
    ({"q": "FROSTY"}, lambda r: "Frosty" in r["name"]),
    ({"q": "snow ornament 1"}, lambda r: "Snow" in r["name"] and " 1" in r["name"]),
    ({"changed_since": "2026-05-01T00:00:00Z"}, lambda r: r["updated_at"] >= when(5)),
    (
        {"vendor": "hookedonhallmark_com", "release_year": 2019, "availability": "available"},
        lambda r: (
            r["vendor"] == "hookedonhallmark_com"
            and r["release_year"] == 2019
            and r["availability"] == "available"
        ),
    ),
]


@pytest.mark.parametrize(("params", "predicate"), FILTERS, ids=[str(p) for p, _ in FILTERS])
def test_product_filters(client, catalog, params, predicate) -> None:
    expected = listed(catalog, predicate)
    assert expected, "a filter test needs matches"
    found = [item["id"] for item in walk(client, "/v1/products", limit=200, **params)]
    assert found == expected


def test_delisted_products_only_on_request(client, catalog) -> None:
    delisted_id = catalog.ids[catalog.delisted]
    assert delisted_id not in [item["id"] for item in walk(client, "/v1/products", limit=200)]
    everything = walk(client, "/v1/products", limit=200, include_delisted="true")
    assert len(everything) == len(catalog.items)
    since = walk(
        client, "/v1/products", include_delisted="true", changed_since="2026-06-15T00:00:00+00:00"
    )
    assert [item["id"] for item in since] == [delisted_id]
    assert since[0]["delisted_at"] == when(7).isoformat()


def _sort_key(sort: str) -> Callable[[dict], Any]:
    name = sort.lstrip("-")
    descending = sort.startswith("-")

    def key(row: dict) -> Any:
        value = row[name]
        if name == "price":  # NULLs last in both directions
            missing = value is None
            value = Decimal(0) if missing else value
            return (
                missing,
                -value if descending else value,
                -row["id"] if descending else row["id"],
            )
        return value

    return key


@pytest.mark.parametrize(
    "sort", ["id", "-id", "name", "-name", "price", "-price", "release_year", "-release_year"]
)
def test_sorting_and_cursor_pages_visit_every_product_once(client, catalog, sort) -> None:
    rows = [row for row in catalog.rows() if row["vendor_product_id"] != catalog.delisted]
    found = walk(client, "/v1/products", sort=sort, limit=7)
    assert [item["id"] for item in found] == _expected_order(rows, sort)


def _expected_order(rows: list[dict], sort: str) -> list[int]:
    if sort.lstrip("-") == "price":
        return [row["id"] for row in sorted(rows, key=_sort_key(sort))]
    name = sort.lstrip("-")
    by_id = sorted(rows, key=lambda row: row["id"], reverse=sort.startswith("-"))
    return [
        row["id"] for row in sorted(by_id, key=lambda row: row[name], reverse=sort.startswith("-"))
    ]


@pytest.mark.parametrize("sort", ["price", "-price", "-name", "release_year"])
@pytest.mark.parametrize(
    "years", [{"release_year": 2017}, {"release_year_min": 2013, "release_year_max": 2014}]
)
def test_sorting_within_a_few_years_pages_the_same_way(client, catalog, sort, years) -> None:
    # A narrow year filter sorts the year's products after finding them (another query plan).
    low = years.get("release_year", years.get("release_year_min"))
    high = years.get("release_year", years.get("release_year_max"))
    rows = [
        row
        for row in catalog.rows()
        if row["vendor_product_id"] != catalog.delisted and low <= row["release_year"] <= high
    ]
    found = walk(client, "/v1/products", sort=sort, limit=2, **years)
    assert [item["id"] for item in found] == _expected_order(rows, sort)
    assert any(row["price"] is None for row in rows) or sort.lstrip("-") != "price"


def test_sort_by_updated_at_with_changed_since(client, catalog) -> None:
    found = walk(client, "/v1/products", sort="-updated_at", limit=1)
    assert [item["id"] for item in found[:2]] == sorted(
        (catalog.ids[key] for key in catalog.recent), reverse=True
    )
    assert len(found) == len(catalog.items) - 1


def test_first_page_shape_and_default_limit(client, catalog) -> None:
    page = get(client, "/v1/products")
    assert page["limit"] == 50
    assert ids_of(page) == listed(catalog)[:50]
    item = page["items"][0]
    assert set(item) >= {"id", "vendor", "sku", "name", "price", "availability", "release_year"}
    assert item["price"] is None or Decimal(item["price"])  # prices are strings


def test_a_cursor_works_only_with_its_sort(client) -> None:
    cursor = get(client, "/v1/products", sort="price", limit=2)["next_cursor"]
    error = get(client, "/v1/products", 400, sort="name", cursor=cursor)
    assert "cursor" in error["errors"]
    assert "sort=price" in error["message"]


# --- one product, its history ---------------------------------------------------------------------


def test_one_product_as_it_is_now(client, catalog) -> None:
    product = get(client, f"/v1/products/{catalog.ids['h-horse']}")
    assert product["sku"] == SKU
    assert product["vendor_name"] == "Hooked on Hallmark"
    assert product["price"] == "19.00"
    assert product["availability"] == "available"
    assert product["last_change_id"] > 0
    assert get(client, "/v1/products/999999", 404)["message"] == "no product 999999."
    assert get(client, f"/v1/products/{2**64}", 404)["code"] == 404


def test_history_series_and_figures(client, catalog) -> None:
    history = get(client, f"/v1/products/{catalog.ids['h-horse']}/history")
    prices = [(point["price"], point["at"]) for point in history["prices"]]
    assert prices == [
        ("20.00", T0.isoformat()),
        ("17.00", when(2).isoformat()),
        ("19.00", when(5).isoformat()),
    ]
    assert history["figures"] == {
        "lowest": "17.00",
        "highest": "20.00",
        "latest": "19.00",
        "latest_at": when(5).isoformat(),
        "points": 3,
    }
    stock = [(point["kind"], point["availability"]) for point in history["availability"]]
    assert stock == [("listed", "available"), ("changed", "unavailable"), ("changed", "available")]


def test_history_window(client, catalog) -> None:
    history = get(
        client,
        f"/v1/products/{catalog.ids['h-horse']}/history",
        since="2026-03-15T00:00:00Z",
        until="2026-06-01T00:00:00Z",
    )
    # The window opens with the price then in effect (17.00, set in February).
    assert [point["price"] for point in history["prices"]] == ["17.00", "19.00"]
    assert history["figures"]["lowest"] == "17.00"
    assert history["figures"]["highest"] == "19.00"
    assert [point["availability"] for point in history["availability"]] == [
        "unavailable",
        "available",
    ]
    assert history["since"] == "2026-03-15T00:00:00+00:00"
    before = get(
        client, f"/v1/products/{catalog.ids['h-horse']}/history", until="2026-01-15T00:00:00"
    )
    assert [point["price"] for point in before["prices"]] == ["20.00"]


def test_history_of_an_unknown_product_is_404(client) -> None:
    assert get(client, "/v1/products/424242/history", 404)["code"] == 404


# --- one SKU across the shops ---------------------------------------------------------------------


def test_sku_view_across_three_vendors_cheapest_in_stock_first(client, catalog) -> None:
    view = get(client, "/v1/skus/qx1001")
    assert view["sku"] == SKU
    offers = [(offer["vendor"], offer["price"], offer["availability"]) for offer in view["offers"]]
    assert offers == [
        ("hallmark_ornaments_com", "18.00", "available"),
        ("hookedonhallmark_com", "19.00", "available"),
        ("ornament_shop_com", "15.00", "unavailable"),
    ]
    histories = {offer["vendor"]: offer["history"] for offer in view["offers"]}
    assert [point["price"] for point in histories["hookedonhallmark_com"]["prices"]] == [
        "20.00",
        "17.00",
        "19.00",
    ]
    assert histories["ornament_shop_com"]["figures"]["latest"] == "15.00"
    assert histories["hallmark_ornaments_com"]["figures"]["points"] == 1
    assert all(offer["vendor_name"] for offer in view["offers"])


def test_sku_view_window_and_unknown_sku(client) -> None:
    view = get(client, "/v1/skus/QX1001", since="2026-04-15T00:00:00Z")
    hoh = next(offer for offer in view["offers"] if offer["vendor"] == "hookedonhallmark_com")
    assert [point["price"] for point in hoh["history"]["prices"]] == ["17.00", "19.00"]
    assert get(client, "/v1/skus/NOPE42", 404)["message"] == "no product has the SKU 'NOPE42'."


# --- the change feed -----------------------------------------------------------------------------


def _feed(client: FlaskClient, **params: Any) -> list[dict]:
    changes, after_id = [], None
    for _ in range(100):
        page = get(client, "/v1/changes", **params, **({"after_id": after_id} if after_id else {}))
        changes += page["changes"]
        after_id = page["next_after_id"]
        if not page["has_more"]:
            return changes
    raise AssertionError("the feed did not end")


def test_change_feed_pages_through_everything_in_order(client, catalog) -> None:
    changes = _feed(client, limit=10)
    ids = [change["id"] for change in changes]
    assert ids == sorted(ids)
    kinds = [change["kind"] for change in changes]
    assert kinds.count("listed") == len(catalog.items)
    assert kinds.count("changed") == 4
    assert kinds.count("delisted") == 1
    assert changes[0]["product"]["vendor_name"]


def test_change_feed_events(client, catalog) -> None:
    drops = _feed(client, event="price_drop")
    assert [(c["old_value"], c["new_value"], c["event"]) for c in drops] == [
        ("20.00", "17.00", "price_drop")
    ]
    restocks = _feed(client, event="restock", vendor="hookedonhallmark_com")
    assert [(c["old_value"], c["new_value"]) for c in restocks] == [("unavailable", "available")]
    both = _feed(client, event=["price_rise", "sold_out"])
    assert [c["event"] for c in both] == ["sold_out", "price_rise"]
    assert _feed(client, event="restock", vendor="ornament_shop_com") == []


def test_change_feed_since_a_time(client, catalog) -> None:
    changes = _feed(client, since="2026-04-01T00:00:00Z")
    assert [change["changed_at"][:10] for change in changes] == [
        "2026-04-01",
        "2026-05-01",
        "2026-07-01",
    ]
    page = get(client, "/v1/changes", since="2027-01-01T00:00:00Z")
    assert page["changes"] == [] and page["has_more"] is False
    error = get(client, "/v1/changes", 400, since="2026-01-01T00:00:00Z", after_id=3)
    assert "since" in error["errors"]


def test_change_feed_of_one_product(client, catalog) -> None:
    changes = _feed(client, product_id=catalog.ids["h-horse"], kind="changed", field="price")
    assert [change["new_value"] for change in changes] == ["17.00", "19.00"]


# --- crawl runs ----------------------------------------------------------------------------------


def test_runs_newest_first_with_counters(client, catalog) -> None:
    page = get(client, "/v1/runs")
    assert ids_of(page) == sorted(catalog.run_ids, reverse=True)
    finished = get(client, "/v1/runs", vendor="hookedonhallmark_com", status="finished")
    (run,) = finished["items"]
    assert run["id"] == catalog.run_ids[0]
    assert run["counters"]["requests"] == 12
    assert run["counters"]["items_updated"] == 4
    assert run["arguments"] == {"year": "2019"}
    assert run["duration_seconds"] is not None
    first = get(client, "/v1/runs", limit=2)
    second = get(client, "/v1/runs", limit=2, cursor=first["next_cursor"])
    assert ids_of(first) + ids_of(second) == sorted(catalog.run_ids, reverse=True)
    assert second["next_cursor"] is None


# --- CSV -----------------------------------------------------------------------------------------


def test_csv_export_has_the_list_query_rows(client, catalog) -> None:
    response = client.get("/v1/products.csv", query_string={"vendor": "ornament_shop_com"})
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [int(row["id"]) for row in rows] == listed(
        catalog, lambda r: r["vendor"] == "ornament_shop_com"
    )
    horse = next(row for row in rows if row["sku"] == SKU)
    assert horse["price"] == "15.00" and horse["availability"] == "unavailable"
    by_price = client.get("/v1/products.csv", query_string={"sort": "-price", "sku": SKU})
    prices = [row["price"] for row in csv.DictReader(io.StringIO(by_price.get_data(as_text=True)))]
    assert prices == ["19.00", "18.00", "15.00"]
    assert client.get("/v1/products.csv", query_string={"limit": 5}).status_code == 400


# --- conditional requests ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["/v1/products?vendor=ornament_shop_com", "/v1/products/{id}/history", "/v1/skus/QX1001"],
)
def test_etag_and_last_modified_give_304(client, catalog, url) -> None:
    url = url.format(id=catalog.ids["h-horse"])
    first = client.get(url)
    assert first.status_code == 200
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert first.headers["Cache-Control"] == "private, no-cache"
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.get_data() == b""
    assert client.get(url, headers={"If-Modified-Since": modified}).status_code == 304
    assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
    old = "Wed, 01 Jan 2025 00:00:00 GMT"
    assert client.get(url, headers={"If-Modified-Since": old}).status_code == 200


def test_list_last_modified_is_the_latest_product_change(client) -> None:
    response = client.get("/v1/products")
    assert response.last_modified == when(7)  # the delisting of p44


# --- bad input -----------------------------------------------------------------------------------

BAD_INPUT = [
    ("/v1/products", {"release_year": "19x9"}, "release_year"),
    ("/v1/products", {"release_year": "1066"}, "release_year"),
    ("/v1/products", {"release_year_min": "2019", "release_year_max": "2010"}, "release_year_min"),
    ("/v1/products", {"price_min": "-1"}, "price_min"),
    ("/v1/products", {"price_max": "NaN"}, "price_max"),
    ("/v1/products", {"price_min": "30", "price_max": "20"}, "price_min"),
    ("/v1/products", {"vendor": "amazon_com"}, "vendor"),
    ("/v1/products", {"availability": "soon"}, "availability"),
    ("/v1/products", {"limit": "201"}, "limit"),
    ("/v1/products", {"limit": "0"}, "limit"),
    ("/v1/products", {"cursor": "not-a-cursor"}, "cursor"),
    ("/v1/products", {"cursor": base64.urlsafe_b64encode(b'{"s":"id","v":1}').decode()}, "cursor"),
    ("/v1/products", {"sort": "colour"}, "sort"),
    ("/v1/products", {"changed_since": "yesterday"}, "changed_since"),
    ("/v1/products", {"q": "!!!"}, "q"),
    ("/v1/products", {"sku": "QX\x00"}, "sku"),
    ("/v1/products", {"colour": "red"}, "colour"),
    ("/v1/products/1/history", {"since": "2026-02-01", "until": "2026-01-01"}, "since"),
    ("/v1/changes", {"after_id": "-5"}, "after_id"),
    ("/v1/changes", {"event": "bargain"}, "event"),
    ("/v1/changes", {"limit": "501"}, "limit"),
    ("/v1/runs", {"status": "paused"}, "status"),
    ("/v1/vendors", {"page": "2"}, "page"),
]


@pytest.mark.parametrize(
    ("url", "params", "named"), BAD_INPUT, ids=[str(p) for _, p, _ in BAD_INPUT]
)
def test_bad_input_is_400_naming_the_parameter(client, url, params, named) -> None:
    error = get(client, url, 400, **params)
    assert error["code"] == 400
    assert named in error["errors"]
    assert named in error["message"]


INJECTIONS = [
    "' OR '1'='1",
    "1; DROP TABLE products; --",
    "2019 UNION SELECT key_hash FROM api_keys --",
    '") OR 1=1 --',
    "%' OR name LIKE '%",
    "\x00",
    "' || pg_sleep(5) || '",
    "$$; DELETE FROM products; $$",
    "-1",
    "9" * 40,
    "1e999",
    "🎄" * 300,
    "[]",
    '{"$gt": ""}',
    "",
]
# What each parameter answers to each injection: None for 200, else the reason of the 400
# ("invalid parameter <name>: <reason>"). Text filters take almost anything (bound, never
# formatted); every other parameter has a type that none of the injections is.
NOT_INTEGER = "Not a valid integer."
CONTROL = "must not contain control characters."


def every(reason: str | None) -> dict[str, str | None]:
    return dict.fromkeys(INJECTIONS, reason)


def integer(out_of_range: str) -> dict[str, str | None]:
    """-1 and forty 9s are integers, out of range; nothing else here is an integer."""
    return {**every(NOT_INTEGER), **dict.fromkeys(("-1", "9" * 40), out_of_range)}


def text(max_length: int) -> dict[str, str | None]:
    too_long = f"Length must be between 1 and {max_length}."
    return {**every(None), "\x00": CONTROL, "🎄" * 300: too_long, "": too_long}


def one_of(choices: str) -> dict[str, str | None]:
    return every(f"Must be one of: {choices}.")


YEAR = integer("Must be greater than or equal to 1900 and less than or equal to 2100.")
ID = integer("Must be greater than or equal to 0 and less than or equal to 9223372036854775807.")
PRICE = {
    **every("Not a valid number."),
    **dict.fromkeys(("-1", "9" * 40, "1e999"), "must be from 0 to 10000000000."),
}
DATETIME = every("Not a valid datetime.")
BOOLEAN = every("Not a valid boolean.")
CURSOR = every("malformed cursor: pass the next_cursor of a previous page unchanged.")
VENDOR = {value: f"unknown vendor {value!r}." for value in INJECTIONS}
ANSWERS: dict[str, dict[str, dict[str, str | None]]] = {
    "/v1/products": {
        "vendor": VENDOR,
        "release_year": YEAR,
        "release_year_min": YEAR,
        "sku": text(64),
        "series": text(200),
        "artist": text(200),
        "availability": one_of("available, preorder, unavailable"),
        "price_min": PRICE,
        "price_max": PRICE,
        "q": {**text(200), "[]": "must contain a letter or a digit."},
        "changed_since": DATETIME,
        "include_delisted": BOOLEAN,
        "sort": one_of(
            "id, name, price, release_year, updated_at, "
            "-id, -name, -price, -release_year, -updated_at"
        ),
        "limit": integer("must be from 1 to 200."),
        "cursor": CURSOR,
    },
    "/v1/products/{id}/history": {
        "since": DATETIME,
        "until": DATETIME,
        "include_suspicious": BOOLEAN,
    },
    "/v1/skus/QX1001": {"since": DATETIME},
    "/v1/changes": {
        "after_id": ID,
        "since": DATETIME,
        "vendor": VENDOR,
        "kind": one_of("listed, changed, delisted, relisted, relinked"),
        "field": one_of(
            "price, regular_price, availability, availability_text, name, sku, link, "
            "image_url, release_year, series, series_number, artist, brand, currency"
        ),
        "event": one_of("price_drop, price_rise, restock, sold_out"),
        "product_id": ID,
        "limit": integer("must be from 1 to 500."),
    },
    "/v1/runs": {
        "vendor": VENDOR,
        "status": one_of("running, finished, failed"),
        "limit": integer("must be from 1 to 200."),
        "cursor": CURSOR,
    },
}


@pytest.mark.parametrize("url", list(ANSWERS))
def test_injection_and_garbage_in_every_parameter_is_a_200_or_the_400_for_it(
    client, catalog, url
) -> None:
    path = url.format(id=catalog.ids["h-horse"])
    for name, answers in ANSWERS[url].items():
        for value in INJECTIONS:
            response = client.get(path, query_string={name: value})
            body = response.get_json()
            reason = answers[value]
            if reason is None:
                assert response.status_code == 200, (name, value, body)
                if name in ("sku", "series", "artist"):  # exact filters: bound, nothing matches
                    assert body["items"] == [], (name, value)
                else:
                    assert isinstance(body["items"], list), (name, value)
            else:
                assert response.status_code == 400, (name, value, body)
                assert body == {
                    "code": 400,
                    "status": "Bad Request",
                    "message": f"invalid parameter {name}: {reason}",
                    "errors": {name: [reason]},
                }, (name, value)
    assert len(walk(client, "/v1/products", limit=200, include_delisted="true")) == len(
        catalog.items
    )


NO_ROUTE = (
    "The requested URL was not found on the server. If you entered the URL manually please "
    "check your spelling and try again."
)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/v1/products/1' OR '1'='1", NO_ROUTE),  # not an integer id: no route
        ("/v1/products/%00", NO_ROUTE),
        ("/v1/products/-1", NO_ROUTE),
        ("/v1/products/🎄", NO_ROUTE),
        ("/v1/products/1/history/-1", NO_ROUTE),
        ("/v1/skus/1' OR '1'='1", "no product has the SKU \"1' OR '1'='1\"."),
        ("/v1/skus/%00", "no product has the SKU '\\x00'."),
        ("/v1/skus/..%2F..%2Fetc", NO_ROUTE),  # %2F is a slash: a path of three parts
        ("/v1/skus/-1", "no product has the SKU '-1'."),
        ("/v1/skus/🎄", "no product has the SKU '🎄'."),
        ("/v1/vendors/1' OR '1'='1", "no vendor \"1' OR '1'='1\"."),
        ("/v1/vendors/%00", "no vendor '\\x00'."),
        ("/v1/vendors/..%2F..%2Fetc", NO_ROUTE),
        ("/v1/vendors/🎄", "no vendor '🎄'."),
    ],
)
def test_garbage_in_a_path_is_a_404_saying_what_was_not_found(client, path, message) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.get_json() == {"code": 404, "status": "Not Found", "message": message}


def test_an_implausibly_long_sku_is_a_400_that_does_not_echo_it(client) -> None:
    answer = get(client, "/v1/skus/" + "QX1" * 1667, 400)  # 5,001 characters
    assert answer["message"] == "invalid parameter sku: at most 64 characters, not 5,001."
    assert answer["errors"] == {"sku": ["at most 64 characters, not 5,001."]}
    # 64 characters are still looked up (and named in the 404).
    longest = "Q" * 64
    assert (
        get(client, f"/v1/skus/{longest}", 404)["message"] == f"no product has the SKU {longest!r}."
    )


def test_every_error_is_json(client) -> None:
    for url in ("/v1/nothing-here", "/v2/products", "/v1/products/abc"):
        response = client.get(url)
        assert response.status_code == 404
        assert response.get_json()["code"] == 404
    response = client.post("/v1/products")
    assert response.status_code == 405
    assert response.get_json()["code"] == 405


# --- docs ----------------------------------------------------------------------------------------


def test_openapi_document_and_offline_docs_page(client) -> None:
    spec = client.get("/openapi.json", headers={"Authorization": ""}).get_json()
    assert spec["openapi"].startswith("3.")
    assert {
        "/v1/products",
        "/v1/products/{product_id}/history",
        "/v1/skus/{sku}",
        "/v1/changes",
        "/v1/runs",
        "/v1/vendors",
        "/v1/products.csv",
        "/healthz",
    } <= set(spec["paths"])
    assert set(spec["components"]["securitySchemes"]) == {"bearerAuth", "apiKeyHeader"}
    params = {p["name"] for p in spec["paths"]["/v1/products"]["get"]["parameters"]}
    assert {"vendor", "release_year", "q", "sort", "limit", "cursor", "price_min"} <= params
    page = client.get("/docs", headers={"Authorization": ""})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "http://" not in html and "https://" not in html  # nothing from a CDN
    for asset in ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js"):
        assert f"/docs/assets/{asset}" in html
        with client.get(f"/docs/assets/{asset}") as response:
            assert response.status_code == 200
    assert json.loads(json.dumps(spec))  # plain JSON


def _statements(client: FlaskClient, url: str) -> list[str]:
    """The SQL statements one request sends to the database, in order."""
    sent: list[str] = []

    def record(_connection, _cursor, statement, *_args) -> None:
        sent.append(statement)

    engine = client.application.extensions["christmas_engine"]
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        get(client, url)
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    return sent


def test_history_and_sku_view_read_every_offer_in_one_query(client) -> None:
    """Statements per request, not per offer: a SKU at three shops costs what one product does
    (the product rows with their last change, then the history rows of all of them), after one
    for its ornaments."""
    get(client, "/v1/vendors")  # the key is checked (then trusted a few seconds) and its use noted
    one = _statements(client, "/v1/products/1/history")
    three = _statements(client, "/v1/skus/QX1001")
    assert len(one) == 2 and len(three) == 3, (one, three)
    assert three.pop(0).startswith("SELECT ornaments.")  # the SKU's ornaments, then their offers
    for statements in (one, three):
        assert statements[0].startswith("SELECT products.")
        assert "FROM product_changes \nWHERE product_changes.product_id IN" in statements[1]


def test_a_page_of_the_product_list_is_one_statement(client) -> None:
    get(client, "/v1/vendors")
    [statement] = _statements(client, "/v1/products")
    assert "AS catalog_modified" in statement  # Last-Modified comes with the page
