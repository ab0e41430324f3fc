"""The ornament API (issue #15) against a known catalog linked by the real store code:
/v1/ornaments (each filter, every sort paged with cursors, 400s), one ornament with every offer,
its condition and history, /v1/series with series completion over a gap, and /v1/skus/<sku> in
any SKU form."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.engine import Engine

from christmas_spiders import config
from christmas_spiders.storage.products import upsert_products
from christmas_spiders.storage.schema import products
from webapi import auth, create_app

from .conftest import PROJECT_ROOT, _url_for
from .test_api import bad_parameter, get, owner_engine, product_item

HOH, OS, HO = "hookedonhallmark_com", "ornament_shop_com", "hallmark_ornaments_com"
HORSE = {"release_year": 2019, "series": "Nostalgic Rocking Horse", "series_number": 5}
FROSTY = {"series": "Frosty Friends"}


def _item(vendor: str, key: str, name: str, sku: str | None, price: str | None, **more: Any):
    return product_item(
        vendor,
        key,
        name=name,
        sku=sku,
        price=None if price is None else Decimal(price),
        **{"release_year": int(name[:4]), **more},
    )


# key: (vendor, name, sku, price, other fields). The truth (which listings are one ornament)
# is the first part of the key: "horse-…" are one ornament, and so on.
ITEMS = [
    # The 2019 horse: boxed at two shops (one SKU with a price code), no box at a third, and
    # a listing without a SKU that joins by its name and number.
    _item(HOH, "horse-h", "2019 Nostalgic Rocking Horse", "QX1001", "20.00", **HORSE),
    _item(OS, "horse-o-nb", "2019 Nostalgic Rocking Horse (No Box)", "QX1001NB", "12.00", **HORSE),
    _item(HO, "horse-m", "2019 Nostalgic Rocking Horse", "1999QX1001", "18.00", **HORSE),
    _item(HO, "horse-m-nosku", "2019 Nostalgic Rocking Horse #5", None, "25.00", **HORSE),
    # QX1001 again, in 2005: another ornament (item numbers are unique within a year only).
    _item(OS, "angel-o", "2005 Snow Angel", "QX1001", "9.00"),
    # Frosty Friends 1–4 with no #3 anywhere: #1 boxed at two shops, #2 without a box only,
    # #4 out of stock (and one more #4 listing delisted).
    _item(HOH, "ff1-h", "1980 Frosty Friends 1st in Series", "QX1370", "100.00", **FROSTY),
    _item(OS, "ff1-o", "1980 Frosty Friends #1", "3500QX1370", "90.00", **FROSTY),
    _item(OS, "ff2-o-nb", "1981 Frosty Friends #2 NB", "QX4335NB", "40.00", **FROSTY),
    _item(
        HO,
        "ff4-m",
        "1983 Frosty Friends #4",
        "QX4007",
        "60.00",
        availability="unavailable",
        **FROSTY,
    ),
    _item(HOH, "ff4-h", "1983 Frosty Friends #4", "QX4007", "30.00", **FROSTY),  # delisted below
    # A shop's own SKU (no Hallmark number), and an ornament on pre-order only.
    _item(OS, "peanuts-o", "2020 Peanuts Gang", "OS-11402", "15.00"),
    _item(HO, "sled-m", "2024 Snow Buddies Sled", "QX2100", "24.95", availability="preorder"),
]
DELISTED = "ff4-h"


@dataclass
class Catalog:
    url: str
    ids: dict[str, int] = field(default_factory=dict)  # listing key → product id
    ornament_of: dict[str, int] = field(default_factory=dict)  # listing key → ornament id

    def ornament(self, key: str) -> int:
        return self.ornament_of[key]

    def settings(self, tmp_path, **env: str) -> config.Config:
        environ = {
            "ENV": "",
            "CONFIG_PATH": str(PROJECT_ROOT / "config" / "default.json"),
            "DATABASE_URL": self.url,
            "CHRISTMAS_DATA_DIR": str(tmp_path / "data"),
        }
        return config.load({**environ, **env})


def seed(url: str) -> Catalog:
    engine = owner_engine(url)
    with engine.begin() as connection:
        upsert_products(connection, ITEMS)
    with engine.begin() as connection:
        connection.execute(
            sa.update(products)
            .where(products.c.vendor_product_id == DELISTED)
            .values(delisted_at=sa.func.now())
        )
        rows = connection.execute(
            sa.select(products.c.vendor_product_id, products.c.id, products.c.ornament_id)
        ).all()
    engine.dispose()
    return Catalog(
        url,
        {row.vendor_product_id: row.id for row in rows},
        {row.vendor_product_id: row.ornament_id for row in rows},
    )


@pytest.fixture(scope="module")
def catalog(admin_engine: Engine, template_database: str) -> Iterator[Catalog]:
    name = f"xmas_orn_{uuid.uuid4().hex[:12]}"
    with admin_engine.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
    yield seed(_url_for(name))
    with admin_engine.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def client(catalog: Catalog, tmp_path_factory) -> Iterator[FlaskClient]:
    engine = owner_engine(catalog.url)
    with engine.begin() as connection:
        _, key = auth.create_key(connection, "ornaments")
    engine.dispose()
    app = create_app(
        catalog.settings(tmp_path_factory.mktemp("app"), CHRISTMAS_API_RATE_LIMIT="10000000")
    )
    test_client = app.test_client()
    test_client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    yield test_client
    app.extensions["christmas_db"].dispose()


def truth() -> dict[str, list[str]]:
    """Ornament → its listings, as the keys say."""
    found: dict[str, list[str]] = {}
    for item in ITEMS:
        key = item["vendor_product_id"]
        found.setdefault(key.split("-")[0], []).append(key)
    return found


def walk(client: FlaskClient, **params: Any) -> list[dict]:
    items, cursor = [], None
    for _ in range(50):
        page = get(client, "/v1/ornaments", **params, **({"cursor": cursor} if cursor else {}))
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("the pages did not end")


def test_the_catalog_is_linked_as_the_truth_says(catalog) -> None:
    """The fixture's premise: one ornament per truth group, none shared."""
    groups = {name: {catalog.ornament(key) for key in keys} for name, keys in truth().items()}
    assert all(len(ids) == 1 and None not in ids for ids in groups.values()), groups
    assert len({next(iter(ids)) for ids in groups.values()}) == len(groups)


# --- the list -------------------------------------------------------------------------------


FILTERS: list[tuple[dict[str, Any], set[str]]] = [
    ({}, {"horse", "angel", "ff1", "ff2", "ff4", "peanuts", "sled"}),
    ({"q": "rock hors"}, {"horse"}),
    ({"q": "NB frosty"}, {"ff2"}),  # a word only one shop's name has
    ({"year": 1981}, {"ff2"}),
    ({"series": "frosty FRIENDS"}, {"ff1", "ff2", "ff4"}),
    ({"item_number": "QX1001"}, {"horse", "angel"}),
    ({"item_number": "2999qx1001nb"}, {"horse", "angel"}),  # any SKU form
    ({"item_number": "QX1370", "year": 1980}, {"ff1"}),
    ({"in_stock": "true"}, {"horse", "angel", "ff1", "ff2", "peanuts", "sled"}),
    ({"in_stock": "false"}, {"ff4"}),
    ({"vendor": HOH}, {"horse", "ff1"}),  # its #4 listing is delisted
    ({"vendor": [HOH, HO]}, {"horse", "ff1", "ff4", "sled"}),
    ({"vendor": HO, "in_stock": "true"}, {"horse", "sled"}),  # in stock at that shop
    ({"vendor": HO, "in_stock": "false"}, {"ff4"}),
    ({"series": "Frosty Friends", "in_stock": "true", "year": 1983}, set()),
]


@pytest.mark.parametrize(("params", "wanted"), FILTERS, ids=[str(p) for p, _ in FILTERS])
def test_ornament_filters(client, catalog, params, wanted) -> None:
    found = walk(client, **params)
    expected = {catalog.ornament(truth()[name][0]) for name in wanted}
    assert sorted(item["id"] for item in found) == sorted(expected)


@pytest.mark.parametrize("sort", ["id", "-id", "name", "-name", "year", "-year"])
def test_every_sort_pages_through_every_ornament_once(client, sort) -> None:
    found = walk(client, sort=sort, limit=2)
    name = sort.lstrip("-")
    expected = sorted(found, key=lambda item: item["id"], reverse=sort.startswith("-"))
    expected.sort(key=lambda item: item[name], reverse=sort.startswith("-"))
    assert [item["id"] for item in found] == [item["id"] for item in expected]
    assert len(found) == len(truth())


def test_a_list_item_has_its_cheapest_offers(client, catalog) -> None:
    [horse] = walk(client, q="rocking horse")
    assert horse["year"] == 2019
    assert horse["item_number"] == "QX1001"
    assert horse["series"] == "Nostalgic Rocking Horse"
    assert horse["series_number"] == 5
    assert horse["listed_offers"] == 4
    assert horse["vendors"] == [HOH, OS, HO]
    cheapest, boxed = horse["cheapest"], horse["cheapest_boxed"]
    assert (cheapest["vendor"], cheapest["price"], cheapest["condition"]) == (OS, "12.00", "no_box")
    assert (boxed["vendor"], boxed["price"], boxed["condition"]) == (HO, "18.00", "boxed")
    assert boxed["product_id"] == catalog.ids["horse-m"]
    [sled] = walk(client, q="sled")
    assert sled["cheapest"]["availability"] == "preorder"  # a pre-order is for sale today
    [four] = walk(client, year=1983)
    assert four["cheapest"] is None and four["cheapest_boxed"] is None
    assert four["listed_offers"] == 1  # not the delisted one


BAD_INPUT = [
    ({"item_number": "ABC123"}, "item_number", "must be a Hallmark item number"),
    ({"item_number": "OS-11402"}, "item_number", "must be a Hallmark item number"),
    ({"year": "19x9"}, "year", "Not a valid integer."),
    ({"year": "1066"}, "year", "Must be greater than or equal to 1900"),
    ({"in_stock": "maybe"}, "in_stock", "Not a valid boolean."),
    ({"vendor": "amazon_com"}, "vendor", "unknown vendor 'amazon_com'."),
    ({"q": "!!!"}, "q", "must contain a letter or a digit."),
    ({"series": "x\x00"}, "series", "must not contain control characters."),
    ({"sort": "price"}, "sort", "Must be one of"),
    ({"limit": "0"}, "limit", "must be from 1 to 200."),
    ({"cursor": "garbage"}, "cursor", "malformed cursor"),
    ({"colour": "red"}, "colour", "Unknown field."),
]


@pytest.mark.parametrize(("params", "named", "reason"), BAD_INPUT, ids=[n for _, n, _ in BAD_INPUT])
def test_bad_list_input_is_400_naming_the_parameter(client, params, named, reason) -> None:
    bad_parameter(client, "/v1/ornaments", named, reason, **params)


def test_a_cursor_works_only_with_its_sort(client) -> None:
    cursor = get(client, "/v1/ornaments", sort="name", limit=2)["next_cursor"]
    error = get(client, "/v1/ornaments", 400, sort="year", cursor=cursor)
    assert "sort=name" in error["errors"]["cursor"][0]


# --- one ornament ---------------------------------------------------------------------------


def test_one_ornament_has_every_offer_with_condition_and_history(client, catalog) -> None:
    found = get(client, f"/v1/ornaments/{catalog.ornament('horse-h')}")
    offers = [(o["vendor"], o["condition"], o["price"], o["availability"]) for o in found["offers"]]
    assert offers == [
        (OS, "no_box", "12.00", "available"),
        (HO, "boxed", "18.00", "available"),
        (HOH, "boxed", "20.00", "available"),
        (HO, "boxed", "25.00", "available"),
    ]
    assert {offer["ornament_id"] for offer in found["offers"]} == {found["id"]}
    assert found["cheapest"]["product_id"] == catalog.ids["horse-o-nb"]
    assert found["cheapest_boxed"]["product_id"] == catalog.ids["horse-m"]
    first = found["offers"][0]["history"]
    assert first["product_id"] == catalog.ids["horse-o-nb"]
    assert [point["price"] for point in first["prices"]] == ["12.00"]
    assert [point["availability"] for point in first["availability"]] == ["available"]
    assert found["series_numbers"] == [5]


def test_an_ornament_lists_its_delisted_offers_last(client, catalog) -> None:
    found = get(client, f"/v1/ornaments/{catalog.ornament('ff4-m')}")
    assert [(o["vendor"], o["delisted_at"] is not None) for o in found["offers"]] == [
        (HO, False),
        (HOH, True),
    ]
    assert found["vendors"] == [HO]
    assert found["cheapest"] is None


def test_unknown_ornaments_and_bad_windows(client, catalog) -> None:
    assert get(client, "/v1/ornaments/424242", 404)["message"] == "no ornament 424242."
    assert get(client, f"/v1/ornaments/{2**64}", 404)["message"] == f"no ornament {2**64}."
    url = f"/v1/ornaments/{catalog.ornament('horse-h')}"
    error = get(client, url, 400, since="2026-02-01", until="2026-01-01")
    assert list(error["errors"]) == ["since"]


@pytest.mark.parametrize(
    "url", ["/v1/ornaments", "/v1/ornaments/{id}", "/v1/series/frosty friends"]
)
def test_etag_and_last_modified_give_304(client, catalog, url) -> None:
    url = url.format(id=catalog.ornament("horse-h"))
    first = client.get(url)
    assert first.status_code == 200
    assert client.get(url, headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
    since = first.headers["Last-Modified"]
    assert client.get(url, headers={"If-Modified-Since": since}).status_code == 304


# --- series ---------------------------------------------------------------------------------


def test_series_list(client) -> None:
    found = {series["name"]: series for series in get(client, "/v1/series")}
    assert set(found) == {"Frosty Friends", "Nostalgic Rocking Horse"}
    frosty = found["Frosty Friends"]
    assert (frosty["ornaments"], frosty["first_year"], frosty["last_year"]) == (3, 1980, 1983)
    assert (frosty["last_number"], frosty["numbers_known"], frosty["numbers_in_stock"]) == (4, 3, 2)
    get(client, "/v1/series", 400, limit="5")


def test_series_completion_names_each_number_and_the_gap(client, catalog) -> None:
    found = get(client, "/v1/series/FROSTY friends")
    assert found["name"] == "Frosty Friends"
    assert (found["first_number"], found["last_number"]) == (1, 4)
    numbers = {number["number"]: number for number in found["numbers"]}
    assert list(numbers) == [1, 2, 3, 4]
    assert [o["id"] for o in numbers[1]["ornaments"]] == [catalog.ornament("ff1-h")]
    assert numbers[1]["cheapest"]["product_id"] == catalog.ids["ff1-o"]  # 90.00 beats 100.00
    assert numbers[1]["cheapest_boxed"]["product_id"] == catalog.ids["ff1-o"]
    assert numbers[2]["cheapest"]["condition"] == "no_box"
    assert numbers[2]["cheapest_boxed"] is None
    assert numbers[3] == {"number": 3, "ornaments": [], "cheapest": None, "cheapest_boxed": None}
    assert numbers[4]["ornaments"] and numbers[4]["cheapest"] is None
    assert found["missing"] == [3]  # no shop lists it
    assert found["not_in_stock"] == [4]  # listed, in stock nowhere
    assert (found["in_stock"], found["cheapest_total"]) == (2, "130.00")  # 90 + 40
    assert (found["in_stock_boxed"], found["cheapest_boxed_total"]) == (1, "90.00")
    assert found["unnumbered"] == []


def test_unknown_series_is_404(client) -> None:
    assert get(client, "/v1/series/Nope", 404)["message"] == "no series 'Nope'."
    get(client, "/v1/series/Frosty Friends", 400, colour="red")


# --- one SKU, any form ----------------------------------------------------------------------


@pytest.mark.parametrize("sku", ["QX1001", "qx1001", "2999QX1001", "QX1001NB", " qx1001nb "])
def test_any_sku_form_gives_the_ornaments_offers(client, catalog, sku) -> None:
    found = get(client, f"/v1/skus/{sku}")
    assert found["item_number"] == "QX1001"
    # Two years share the number: both ornaments, newest first, each offer naming its own.
    assert [o["id"] for o in found["ornaments"]] == [
        catalog.ornament("horse-h"),
        catalog.ornament("angel-o"),
    ]
    assert [offer["id"] for offer in found["offers"]] == [
        catalog.ids[key] for key in ("horse-o-nb", "horse-m", "horse-h", "horse-m-nosku", "angel-o")
    ]
    horse = found["ornaments"][0]
    assert horse["cheapest"]["price"] == "12.00" and horse["cheapest_boxed"]["price"] == "18.00"


def test_a_shops_own_sku_finds_its_listing(client, catalog) -> None:
    found = get(client, "/v1/skus/os-11402")
    assert found["item_number"] is None
    assert [offer["id"] for offer in found["offers"]] == [catalog.ids["peanuts-o"]]
    assert [o["id"] for o in found["ornaments"]] == [catalog.ornament("peanuts-o")]
    assert get(client, "/v1/skus/QX9999", 404)["message"] == "no product has the SKU 'QX9999'."


def test_openapi_documents_the_new_endpoints(client) -> None:
    spec = client.get("/openapi.json", headers={"Authorization": ""}).get_json()
    assert {
        "/v1/ornaments",
        "/v1/ornaments/{ornament_id}",
        "/v1/series",
        "/v1/series/{name}",
    } <= set(spec["paths"])
    params = {p["name"] for p in spec["paths"]["/v1/ornaments"]["get"]["parameters"]}
    assert params >= {"q", "year", "series", "item_number", "in_stock", "vendor", "cursor"}
