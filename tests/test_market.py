"""The market view (issue #21) on the ornament API's known catalog (tests/test_api_ornaments):
/v1/market/gaps (each filter, sorts paged with cursors, CSV, 400s, 304), rarity and the
histories on hand-made histories; the precomputed views are refreshed after each is built."""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.engine import Engine

from christmas_spiders.storage import market
from christmas_spiders.storage.products import upsert_products
from christmas_spiders.storage.schema import product_changes, products
from webapi import auth, create_app

from .conftest import _url_for
from .test_api import bad_parameter, get, owner_engine
from .test_api_ornaments import HO, HOH, OS, Catalog, _item, seed


def refresh(url: str) -> None:
    """The market views refreshed, as the end of a crawl does."""
    engine = owner_engine(url)
    with engine.begin() as connection:
        market.refresh_market(connection)
    engine.dispose()


@pytest.fixture(scope="module")
def catalog(admin_engine: Engine, template_database: str) -> Iterator[Catalog]:
    name = f"xmas_market_{uuid.uuid4().hex[:12]}"
    with admin_engine.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
    seeded = seed(_url_for(name))
    refresh(seeded.url)
    yield seeded
    with admin_engine.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def client(catalog: Catalog, tmp_path_factory) -> Iterator[FlaskClient]:
    engine = owner_engine(catalog.url)
    with engine.begin() as connection:
        _, key = auth.create_key(connection, "market")
    engine.dispose()
    app = create_app(
        catalog.settings(tmp_path_factory.mktemp("app"), CHRISTMAS_API_RATE_LIMIT="10000000")
    )
    test_client = app.test_client()
    test_client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    yield test_client
    app.extensions["christmas_db"].dispose()


# The catalog's gaps, worked out by hand. Boxed: the 2019 horse at HOH 20.00 and HO 18.00 (its
# cheapest of 18.00 and 25.00), Frosty Friends #1 at HOH 100.00 and OS 90.00. No other ornament
# has boxed offers in stock at two shops (the horse's no-box offer is at OS only).
HORSE = {
    "cheapest": {"vendor": HO, "price": "18.00"},
    "dearest": {"vendor": HOH, "price": "20.00"},
    "gap": "2.00",
    "gap_percent": "11.1",
    "shops": 2,
}
FF1 = {
    "cheapest": {"vendor": OS, "price": "90.00"},
    "dearest": {"vendor": HOH, "price": "100.00"},
    "gap": "10.00",
    "gap_percent": "11.1",
    "shops": 2,
}


def walk(client: FlaskClient, **params: Any) -> list[dict]:
    items, cursor = [], None
    for _ in range(50):
        page = get(client, "/v1/market/gaps", **params, **({"cursor": cursor} if cursor else {}))
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("the pages did not end")


def short(gap: dict) -> dict:
    return {
        "cheapest": {name: gap["cheapest"][name] for name in ("vendor", "price")},
        "dearest": {name: gap["dearest"][name] for name in ("vendor", "price")},
        **{name: gap[name] for name in ("gap", "gap_percent", "shops")},
    }


def test_gaps_compare_boxed_with_boxed_largest_first(client, catalog) -> None:
    found = walk(client)
    assert [item["ornament_id"] for item in found] == [
        catalog.ornament("ff1-h"),
        catalog.ornament("horse-h"),
    ]
    assert [short(item) for item in found] == [FF1, HORSE]
    horse = found[1]
    assert horse["cheapest"]["product_id"] == catalog.ids["horse-m"]
    assert horse["dearest"]["product_id"] == catalog.ids["horse-h"]
    assert (horse["year"], horse["condition"], horse["series_number"]) == (2019, "boxed", 5)


FILTERS: list[tuple[dict[str, Any], list[str]]] = [
    ({"condition": "no_box"}, []),  # one shop only
    ({"year": 2019}, ["horse"]),
    ({"series": "FROSTY friends"}, ["ff1"]),
    ({"min_gap": "2.00"}, ["ff1", "horse"]),
    ({"min_gap": "2.01"}, ["ff1"]),
    ({"min_gap_percent": "11.1"}, ["ff1", "horse"]),
    ({"min_gap_percent": "11.2"}, []),
    ({"vendor": [HOH, HO]}, ["horse"]),  # Frosty Friends #1 is at HOH and OS
    ({"vendor": HOH}, []),
    ({"vendor": [HOH, HO, OS]}, ["ff1", "horse"]),  # every shop: as without the filter
    ({"shop": OS}, ["ff1"]),  # at one end of the gap
    ({"shop": HO}, ["horse"]),
]


@pytest.mark.parametrize(("params", "wanted"), FILTERS, ids=[str(p) for p, _ in FILTERS])
def test_gap_filters(client, catalog, params, wanted) -> None:
    found = walk(client, **params)
    assert [item["ornament_id"] for item in found] == [
        catalog.ornament(f"{name}-h") for name in wanted
    ]


@pytest.mark.parametrize(
    ("sort", "order"),
    [
        ("gap", ["horse", "ff1"]),
        ("-gap", ["ff1", "horse"]),
        ("year", ["ff1", "horse"]),
        ("-year", ["horse", "ff1"]),
        ("name", ["ff1", "horse"]),
        ("gap_percent", None),  # equal percents: by id
        ("-id", None),
    ],
)
def test_every_sort_pages_one_at_a_time(client, catalog, sort, order) -> None:
    found = [item["ornament_id"] for item in walk(client, sort=sort, limit=1)]
    ids = sorted([catalog.ornament("ff1-h"), catalog.ornament("horse-h")])
    if order is None:
        assert found == (ids[::-1] if sort.startswith("-") else ids)
    else:
        assert found == [catalog.ornament(f"{name}-h") for name in order]


def test_gaps_as_csv(client, catalog) -> None:
    response = client.get("/v1/market/gaps.csv", query_string={"sort": "gap"})
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [
        (row["id"], row["cheapest_vendor"], row["gap"], row["gap_percent"]) for row in rows
    ] == [
        (str(catalog.ornament("horse-h")), HO, "2.00", "11.1"),
        (str(catalog.ornament("ff1-h")), OS, "10.00", "11.1"),
    ]


BAD_INPUT = [
    ({"condition": "mint"}, "condition", "Must be one of"),
    ({"year": "1066"}, "year", "Must be greater than or equal to 1900"),
    ({"vendor": "amazon_com"}, "vendor", "unknown vendor 'amazon_com'."),
    ({"shop": "amazon_com"}, "shop", "unknown shop 'amazon_com'."),
    ({"min_gap": "-1"}, "min_gap", "must be from 0"),
    ({"min_gap_percent": "x"}, "min_gap_percent", "Not a valid number."),
    ({"sort": "price"}, "sort", "Must be one of"),
    ({"limit": "0"}, "limit", "must be from 1 to 200."),
    ({"cursor": "garbage"}, "cursor", "malformed cursor"),
    ({"colour": "red"}, "colour", "Unknown field."),
]


@pytest.mark.parametrize(("params", "named", "reason"), BAD_INPUT, ids=[n for _, n, _ in BAD_INPUT])
def test_bad_gap_input_is_400_naming_the_parameter(client, params, named, reason) -> None:
    bad_parameter(client, "/v1/market/gaps", named, reason, **params)


def test_a_gap_cursor_works_only_with_its_sort(client) -> None:
    cursor = get(client, "/v1/market/gaps", sort="name", limit=1)["next_cursor"]
    error = get(client, "/v1/market/gaps", 400, sort="year", cursor=cursor)
    assert "sort=name" in error["errors"]["cursor"][0]


@pytest.mark.parametrize("url", ["/v1/market/gaps", "/v1/market/rare"])
def test_the_figures_are_as_of_the_last_refresh(client, url) -> None:
    response = client.get(url)
    as_of = datetime.fromisoformat(response.get_json()["as_of"])
    assert datetime.now(UTC) - timedelta(minutes=10) < as_of < datetime.now(UTC)
    assert response.last_modified == as_of.replace(microsecond=0)


def test_gaps_etag_gives_304(client) -> None:
    first = client.get("/v1/market/gaps")
    assert first.status_code == 200
    again = client.get("/v1/market/gaps", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304


# --- the web page ---------------------------------------------------------------------------


def page_rows(client: FlaskClient, url: str, **params: Any) -> list[str]:
    response = client.get(url, query_string=params)
    assert response.status_code == 200, response.get_data(as_text=True)
    html = response.get_data(as_text=True)
    return re.findall(r'<tr class="gap" data-ornament="(\d+)">', html)


def test_gaps_page_shows_the_gaps_largest_first(client, catalog) -> None:
    response = client.get("/market/gaps")
    html = response.get_data(as_text=True)
    assert page_rows(client, "/market/gaps") == [
        str(catalog.ornament("ff1-h")),
        str(catalog.ornament("horse-h")),
    ]
    assert "$90.00 at" in html and "$10.00 (11.1 %)" in html
    as_of = datetime.fromisoformat(get(client, "/v1/market/gaps")["as_of"])
    moment = as_of.astimezone(UTC).isoformat(timespec="seconds")
    assert f'as of <time datetime="{moment}">' in html  # the page says how old its figures are


def test_gaps_page_filters_by_shop_and_year(client, catalog) -> None:
    horse = [str(catalog.ornament("horse-h"))]
    assert page_rows(client, "/market/gaps", shop=HOH) == [str(catalog.ornament("ff1-h")), *horse]
    assert page_rows(client, "/market/gaps", year="2019", series="") == horse
    assert page_rows(client, "/market/gaps", condition="no_box") == []


def test_gaps_page_bad_input_is_a_400_page(client) -> None:
    response = client.get("/market/gaps", query_string={"year": "19x9"})
    assert response.status_code == 400
    assert "year" in response.get_data(as_text=True)


def test_gaps_page_csv_follows_its_filters(client, catalog) -> None:
    response = client.get("/market/gaps.csv", query_string={"shop": OS, "sort": "gap"})
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [row["id"] for row in rows] == [str(catalog.ornament("ff1-h"))]


# --- rarity, on hand-made histories ----------------------------------------------------------

RARE = {"series": "Market Rarity"}
# key: (vendor, name, sku, price now); each listing's history is replaced by HISTORIES below.
RARE_ITEMS = [
    _item(OS, "globe-o", "2010 Snow Globe", "QX9001", "25.00", **RARE),
    _item(HOH, "pair-h", "2011 Twin Bells", "QX9002", "30.00", **RARE),
    _item(HO, "pair-m", "2011 Twin Bells", "QX9002", "31.00", **RARE),
    _item(OS, "never-o", "2012 Lost Sled", "QX9003", "40.00", availability="unavailable", **RARE),
    # For gap histories: no gap today, and one open today (damaged boxes, which no list test
    # above compares).
    _item(HOH, "bells-h", "2013 Gap Bells", "QX9010", "10.00", availability="unavailable"),
    _item(HO, "bells-m", "2013 Gap Bells", "QX9010", "16.00"),
    _item(HOH, "star-h", "2014 Open Star", "QX9011DB", "12.00"),
    _item(OS, "star-o", "2014 Open Star", "QX9011DB", "15.00"),
    # For the 2015 index: one ornament whose price rises, one that sells out, one that appears.
    _item(HOH, "angel-h", "2015 Index Angel", "QX9020", "11.00"),
    _item(HO, "bell-m", "2015 Index Bell", "QX9021", "20.00", availability="unavailable"),
    _item(OS, "candle-o", "2015 Index Candle", "QX9022", "50.00"),
]
# key → [(days before now, kind, field, value)]: listed/relisted take a snapshot.
HISTORIES: dict[str, list[tuple[int, str, str | None, str]]] = {
    # In stock from 120 to 60 days ago: 30 of the last 90 days, 60 of the last 365; priced
    # 20.00 then, 25.00 now: +25 %.
    "globe-o": [
        (120, "listed", None, '{"price": 20.00, "availability": "available"}'),
        (60, "changed", "availability", "unavailable"),
    ],
    # Two shops, overlapping: 80 to 50 days ago (then delisted) and 60 to 40 days ago; in
    # stock anywhere from 80 to 40 days ago, 40 days once, not 50.
    "pair-h": [
        (80, "listed", None, '{"price": 30.00, "availability": "available"}'),
        (50, "delisted", None, '{"price": 30.00, "availability": "available"}'),
    ],
    "pair-m": [
        (60, "listed", None, '{"price": 31.00, "availability": "preorder"}'),
        (40, "changed", "availability", "unavailable"),
    ],
    # Listed more than a year ago and never in stock since.
    "never-o": [(400, "listed", None, '{"price": 40.00, "availability": "unavailable"}')],
    # A gap that opened 15 days ago (10.00 and 14.00), grew 10 days ago (16.00) and closed 5
    # days ago (the cheaper shop sold out).
    "bells-h": [
        (20, "listed", None, '{"price": 10.00, "availability": "available"}'),
        (5, "changed", "availability", "unavailable"),
    ],
    "bells-m": [
        (15, "listed", None, '{"price": 14.00, "availability": "available"}'),
        (10, "changed", "price", "16.00"),
    ],
    # A gap open since 3 days ago.
    "star-h": [(7, "listed", None, '{"price": 12.00, "availability": "available"}')],
    "star-o": [(3, "listed", None, '{"price": 15.00, "availability": "preorder"}')],
    "angel-h": [
        (6, "listed", None, '{"price": 10.00, "availability": "available"}'),
        (1, "changed", "price", "11.00"),
    ],
    "bell-m": [
        (6, "listed", None, '{"price": 20.00, "availability": "available"}'),
        (3, "changed", "availability", "unavailable"),
    ],
    "candle-o": [(2, "listed", None, '{"price": 50.00, "availability": "available"}')],
}


def write_histories(
    connection: sa.Connection,
    ids: dict[str, int],
    histories: dict[str, list[tuple[float, str, str | None, str]]],
    now: datetime,
) -> None:
    """Each product's hand-made history (key → [(days before `now`, kind, field, new value)])
    as its product_changes rows."""
    connection.execute(
        sa.insert(product_changes),
        [
            {
                "product_id": ids[key],
                "kind": kind,
                "field": name,
                "new_value": value,
                "changed_at": now - timedelta(days=days),
            }
            for key, events in histories.items()
            for days, kind, name, value in events
        ],
    )


@pytest.fixture(scope="module")
def histories(catalog: Catalog) -> dict[str, Any]:
    """RARE_ITEMS stored and linked by the store code, their history replaced by HISTORIES
    (times relative to now); the ornament of each listing."""
    engine = owner_engine(catalog.url)
    with engine.begin() as connection:
        upsert_products(connection, RARE_ITEMS)
    keys = [item["vendor_product_id"] for item in RARE_ITEMS]
    p, c = products.c, product_changes.c
    with engine.begin() as connection:
        rows = connection.execute(
            sa.select(p.vendor_product_id, p.id, p.ornament_id).where(p.vendor_product_id.in_(keys))
        ).all()
        ids = {row.vendor_product_id: row.id for row in rows}
        connection.execute(
            sa.update(products).where(p.id == ids["pair-h"]).values(delisted_at=sa.func.now())
        )
        connection.execute(sa.delete(product_changes).where(c.product_id.in_(ids.values())))
        now = datetime.now(UTC)
        write_histories(connection, ids, HISTORIES, now)
    engine.dispose()
    refresh(catalog.url)
    return {"now": now, **{row.vendor_product_id: row.ornament_id for row in rows}}


def test_rarity_on_hand_made_histories_rarest_first(client, histories) -> None:
    found = get(client, "/v1/market/rare", series="market rarity")["items"]
    figures = [
        (
            item["ornament_id"],
            item["shops"],
            item["in_stock_percent_90"],
            item["in_stock_percent_365"],
            item["trend_percent"],
            item["trend_offers"],
        )
        for item in found
    ]
    assert figures == [
        (histories["never-o"], 1, "0.0", "0.0", "0.0", 1),  # 40.00 then and now
        (histories["pair-h"], 1, "44.4", "11.0", None, 0),  # 40 of 90 days, 40 of 365
        (histories["globe-o"], 1, "33.3", "16.4", "25.0", 1),  # 30 of 90 days, 60 of 365
    ]


def test_rarity_sorts_page_one_at_a_time(client, histories) -> None:
    def walk_rare(**params: Any) -> list[int]:
        found, cursor = [], None
        for _ in range(20):
            page = get(
                client,
                "/v1/market/rare",
                series="Market Rarity",
                limit=1,
                **params,
                **({"cursor": cursor} if cursor else {}),
            )
            found += [item["ornament_id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                return found
        raise AssertionError("the pages did not end")

    never, pair, globe = histories["never-o"], histories["pair-h"], histories["globe-o"]
    assert walk_rare() == [never, pair, globe]
    assert walk_rare(sort="-in_stock_90") == [pair, globe, never]
    assert walk_rare(sort="in_stock_90") == [never, globe, pair]
    assert walk_rare(sort="-id") == sorted([never, pair, globe], reverse=True)
    assert walk_rare(sort="shops") == sorted([never, pair, globe])  # one shop each: by id


RARE_BAD_INPUT = [
    ({"year": "1066"}, "year", "Must be greater than or equal to 1900"),
    ({"sort": "price"}, "sort", "Must be one of"),
    ({"limit": "201"}, "limit", "must be from 1 to 200."),
    ({"cursor": "garbage"}, "cursor", "malformed cursor"),
    ({"colour": "red"}, "colour", "Unknown field."),
]


@pytest.mark.parametrize(
    ("params", "named", "reason"), RARE_BAD_INPUT, ids=[n for _, n, _ in RARE_BAD_INPUT]
)
def test_bad_rarity_input_is_400_naming_the_parameter(client, params, named, reason) -> None:
    bad_parameter(client, "/v1/market/rare", named, reason, **params)


def test_rarest_page_on_hand_made_histories(client, histories) -> None:
    response = client.get("/market/rare", query_string={"series": "Market Rarity"})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    rows = re.findall(r'<tr class="rarity" data-ornament="(\d+)">', html)
    assert rows == [str(histories[key]) for key in ("never-o", "pair-h", "globe-o")]
    assert "33.3 %" in html and "+25.0 % (1 offer)" in html
    assert "Brought up to date after every crawl; as of <time" in html
    assert client.get("/market/rare", query_string={"sort": "x"}).status_code == 400


def test_the_market_pages_are_in_the_navigation(client) -> None:
    html = client.get("/market/rare").get_data(as_text=True)
    assert '<a href="/market/gaps">Price gaps</a>' in html
    assert '<a href="/market/rare" aria-current="page">Rarest</a>' in html


def bells_day(days_ago: int) -> tuple[int, str | None]:
    """The Gap Bells' shops in stock and gap at the end of a day, as HISTORIES says."""
    if days_ago > 20:
        return 0, None
    if 11 <= days_ago <= 15:
        return 2, "4.00"
    if 6 <= days_ago <= 10:
        return 2, "6.00"
    return 1, None


def test_a_gap_that_opened_grew_and_closed(client, histories) -> None:
    url = f"/v1/market/gaps/{histories['bells-h']}/history"
    found = get(client, url, days=30)
    today = histories["now"].date()
    assert len(found["days"]) >= 30
    assert [(day["shops"], day["gap"]) for day in found["days"]] == [
        bells_day((today - date.fromisoformat(day["day"])).days) for day in found["days"]
    ]
    grown = [day for day in found["days"] if day["gap"] == "6.00"]
    assert {(day["cheapest"], day["dearest"]) for day in grown} == {("10.00", "16.00")}
    assert found["open_since"] is None


def test_a_gap_open_since_three_days(client, histories) -> None:
    url = f"/v1/market/gaps/{histories['star-h']}/history"
    found = get(client, url, condition="damaged_box", days=10)
    assert found["open_since"] == (histories["now"].date() - timedelta(days=3)).isoformat()
    assert (found["days"][-1]["gap"], found["days"][-1]["shops"]) == ("3.00", 2)
    assert get(client, url, days=10)["days"][-1]["shops"] == 0  # no boxed offer


def test_gap_history_bad_input(client, histories) -> None:
    assert get(client, "/v1/market/gaps/424242/history", 404)["message"] == "no ornament 424242."
    url = f"/v1/market/gaps/{histories['star-h']}/history"
    assert list(get(client, url, 400, days=0)["errors"]) == ["days"]
    assert list(get(client, url, 400, condition="x")["errors"]) == ["condition"]


def index_day(days_ago: int) -> tuple[int, int, str]:
    """The 2015 index at the end of a day, as HISTORIES says: (ornaments priced, matched,
    index). The bell selling out and the candle appearing do not move it; the angel's rise from
    10.00 to 11.00, matched with the candle's unchanged price, moves it by sqrt(1.1)."""
    if days_ago >= 4:
        return 2, 2, "100.00"
    if days_ago == 3:
        return 1, 1, "100.00"  # the bell sold out
    if days_ago == 2:
        return 2, 1, "100.00"  # the candle appeared
    return 2, 2, "104.88"


def test_year_index_chain_links_matched_ornaments(client, histories) -> None:
    found = get(client, "/v1/market/years/2015", days=7)
    today = histories["now"].date()
    assert (found["year"], found["condition"], len(found["points"])) == (2015, "boxed", 7)
    first, *later = found["points"]
    assert (first["ornaments"], first["matched"], first["index"]) == (2, 0, "100.00")
    assert [(p["ornaments"], p["matched"], p["index"]) for p in later] == [
        index_day((today - date.fromisoformat(p["day"])).days) for p in later
    ]
    response = client.get("/v1/market/years/2015.csv", query_string={"days": 7})
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [row["index"] for row in rows] == [p["index"] for p in found["points"]]


def test_year_index_bad_input(client) -> None:
    assert list(get(client, "/v1/market/years/2015", 400, days=1)["errors"]) == ["days"]
    assert get(client, "/v1/market/years/1066", 404)["message"] == "no year 1066."


def test_year_index_page_and_its_csv(client, histories) -> None:
    response = client.get("/market/years/2015", query_string={"days": 7})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert re.findall(r'<td data-label="Index">([\d.]+)</td>', html)[-1] == "104.88"
    csv_page = client.get("/market/years/2015.csv", query_string={"days": "7"})
    assert csv_page.get_data(as_text=True).splitlines()[-1].endswith(",104.88,2,2")
    assert client.get("/market/years/1066").status_code == 404
