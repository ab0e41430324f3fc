"""The year index, precomputed (issue #21; storage.market_index, webapi.market.years): every
year compared (/v1/market/years and its CSV) on hand-made histories, 400s, a crawl's change
reaching today's point at the refresh, and a relink rebuilding the series it moves between."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.engine import Engine

from christmas_spiders.storage import market, market_index
from christmas_spiders.storage.products import upsert_products
from christmas_spiders.storage.schema import (
    market_year_index,
    market_year_steps,
    product_changes,
    products,
)
from webapi import auth, create_app
from webapi.market import year_index

from .conftest import _url_for
from .test_api import get, owner_engine
from .test_api_ornaments import HO, HOH, OS, Catalog, _item
from .test_market import write_histories

ITEMS = [
    # 2016: one ornament whose price rises, one that sells out, one that appears.
    _item(HOH, "angel", "2016 Years Angel", "QX8020", "11.00"),
    _item(HO, "bell", "2016 Years Bell", "QX8021", "20.00", availability="unavailable"),
    _item(OS, "candle", "2016 Years Candle", "QX8022", "50.00"),
    # 2017: one ornament 10 % cheaper two days ago.
    _item(HOH, "drum", "2017 Years Drum", "QX8030", "27.00"),
]
LISTED = '{"price": %s, "availability": "available"}'
# key → [(days before now, kind, field, value)]
HISTORIES = {
    "angel": [(6, "listed", None, LISTED % "10.00"), (1, "changed", "price", "11.00")],
    "bell": [
        (6, "listed", None, LISTED % "20.00"),
        (3, "changed", "availability", "unavailable"),
    ],
    "candle": [(2, "listed", None, LISTED % "50.00")],
    "drum": [(5, "listed", None, LISTED % "30.00"), (2, "changed", "price", "27.00")],
}


def _expected_2016(days_ago: int) -> tuple[int, int, str]:
    """(ornaments, matched, index) at the end of a day: the bell selling out and the candle
    appearing do not move it; the angel's 10 % rise, matched with the candle, moves it by
    sqrt(1.1)."""
    if days_ago >= 4:
        return 2, 2, "100.00"
    return {3: (1, 1, "100.00"), 2: (2, 1, "100.00")}.get(days_ago, (2, 2, "104.88"))


def _expected_2017(days_ago: int) -> tuple[int, int, str]:
    """Listed 5 days ago at 30.00, 27.00 from 2 days ago."""
    if days_ago > 5:
        return 0, 0, "100.00"
    return 1, int(days_ago < 5), "100.00" if days_ago > 2 else "90.00"


def _build(url: str) -> dict[str, int]:
    """ITEMS stored (and linked) by the store code, their history replaced by HISTORIES, the
    market refreshed as a crawl's end does; the product id of each key."""
    engine = owner_engine(url)
    with engine.begin() as connection:
        upsert_products(connection, ITEMS)
    p = products.c
    with engine.begin() as connection:
        ids = dict(connection.execute(sa.select(p.vendor_product_id, p.id)).all())
        connection.execute(sa.delete(product_changes))
        now = datetime.now(UTC)
        write_histories(connection, ids, HISTORIES, now)
    _refresh(engine)
    engine.dispose()
    return ids


def _refresh(engine: Engine, **options: Any) -> None:
    with engine.begin() as connection:
        if options:
            market_index.refresh_year_index(connection, **options)
        else:
            market.refresh_market(connection)


def _client(url: str, tmp_path) -> FlaskClient:
    engine = owner_engine(url)
    with engine.begin() as connection:
        _, key = auth.create_key(connection, "years")
    engine.dispose()
    app = create_app(Catalog(url).settings(tmp_path, CHRISTMAS_API_RATE_LIMIT="10000000"))
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return client


@pytest.fixture(scope="module")
def client(admin_engine: Engine, template_database: str, tmp_path_factory) -> Iterator[Any]:
    name = f"xmas_years_{uuid.uuid4().hex[:12]}"
    with admin_engine.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
    _build(_url_for(name))
    test_client = _client(_url_for(name), tmp_path_factory.mktemp("app"))
    yield test_client
    test_client.application.extensions["christmas_db"].dispose()
    with admin_engine.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _figures(points: list[dict]) -> list[tuple[int, int, str]]:
    return [(p["ornaments"], p["matched"], p["index"]) for p in points]


def _days_ago(points: list[dict]) -> list[int]:
    today = datetime.now(UTC).date()
    return [(today - date.fromisoformat(p["day"])).days for p in points]


def test_every_year_on_one_chart(client) -> None:
    found = get(client, "/v1/market/years", days=7)
    assert (found["condition"], found["days"]) == ("boxed", 7)
    assert found["as_of"] is not None
    assert [one["year"] for one in found["years"]] == [2016, 2017]
    angel, drum = (one["points"] for one in found["years"])
    assert _days_ago(angel) == _days_ago(drum) == [6, 5, 4, 3, 2, 1, 0]
    # The window's first day is 100 with no step behind it.
    assert _figures(angel) == [(2, 0, "100.00")] + [_expected_2016(d) for d in range(5, -1, -1)]
    assert _figures(drum) == [(0, 0, "100.00")] + [_expected_2017(d) for d in range(5, -1, -1)]
    one = get(client, "/v1/market/years/2016", days=7)
    assert (one["points"], one["as_of"]) == (angel, found["as_of"])


@pytest.mark.parametrize(
    ("params", "years"),
    [({"year": 2017}, [2017]), ({"from": 2017}, [2017]), ({"to": 2016}, [2016])],
)
def test_years_filters(client, params, years) -> None:
    found = get(client, "/v1/market/years", days=7, **params)
    assert [one["year"] for one in found["years"]] == years


def test_years_as_csv_long_form(client) -> None:
    found = get(client, "/v1/market/years", days=3)
    response = client.get("/v1/market/years.csv", query_string={"days": 3})
    assert response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert list(rows[0]) == ["year", "day", "index", "ornaments", "matched"]
    assert [(int(r["year"]), r["day"], r["index"], int(r["matched"])) for r in rows] == [
        (one["year"], p["day"], p["index"], p["matched"])
        for one in found["years"]
        for p in one["points"]
    ]


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"days": 1}, "days"),
        ({"days": 366}, "days"),
        ({"condition": "mint"}, "condition"),
        ({"year": 1066}, "year"),
        ({"year": 2016, "from": 2010}, "year"),
        ({"from": 2017, "to": 2016}, "from"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_years_input_is_400_naming_the_parameter(client, params, named) -> None:
    for url in ("/v1/market/years", "/v1/market/years.csv"):
        assert named in get(client, url, 400, **params)["errors"]


def _points(engine: Engine, year: int) -> list[Any]:
    with engine.connect() as connection:
        rows = year_index.year_index(connection, year, "boxed", 7, datetime.now(UTC))
    return list(rows)


def test_a_crawl_makes_today_current_at_the_refresh(database_url) -> None:
    _build(database_url)
    engine = owner_engine(database_url)
    before = _points(engine, 2017)
    with engine.begin() as connection:  # a crawl stores the drum at 29.70 (+10 %)
        upsert_products(connection, [{**ITEMS[3], "price": Decimal("29.70")}])
    assert _points(engine, 2017) == before  # not before the refresh
    _refresh(engine)
    now = _points(engine, 2017)
    assert now[:-1] == before[:-1]
    assert (now[-1].index, now[-1].matched) == (Decimal("99.00"), 1)
    _refresh(engine, rebuild=True)  # the whole history gives the same answer
    assert _points(engine, 2017) == now
    engine.dispose()


def test_a_relink_rebuilds_both_series(database_url) -> None:
    ids = _build(database_url)
    engine = owner_engine(database_url)
    with engine.begin() as connection:  # the candle was a 2017 ornament: the drum's
        drum = connection.execute(
            sa.select(products.c.ornament_id).where(products.c.id == ids["drum"])
        )
        connection.execute(
            sa.update(products)
            .where(products.c.id == ids["candle"])
            .values(ornament_id=drum.scalar_one())
        )
    _refresh(engine)
    relinked = {year: _points(engine, year) for year in (2016, 2017)}
    # 2016 without the candle: the angel alone two days ago, its rise 10 % a day ago.
    assert [(r.ornaments, r.matched, str(r.index)) for r in relinked[2016][-3:]] == [
        (1, 1, "100.00"),
        (1, 1, "110.00"),
        (1, 1, "110.00"),
    ]
    # 2017: the drum at min(27.00, 50.00) from two days ago, as before.
    assert relinked[2017][-1].index == Decimal("90.00")
    _refresh(engine, rebuild=True)
    assert {year: _points(engine, year) for year in (2016, 2017)} == relinked
    engine.dispose()


def test_without_years_named_the_newest_ten_priced_years_are_compared(engine: Engine) -> None:
    """Twelve years priced today and one not: the default is the newest ten priced; a range
    names every priced year in it."""
    today = datetime.now(UTC).date()
    steps = [
        {
            "condition": "boxed",
            "year": year,
            "day": today,
            "ornaments": 0 if year == 2002 else 3,
            "matched": 0,
            "log_step": None,
        }
        for year in range(1990, 2003)
    ]
    with engine.begin() as connection:
        connection.execute(sa.insert(market_year_steps), steps)
        connection.execute(sa.insert(market_year_index).values(base_day=today, as_of=sa.func.now()))
    now = datetime.now(UTC)
    with engine.connect() as connection:
        newest = year_index.year_indexes(connection, None, "boxed", 7, now, newest=10)
        every = year_index.year_indexes(connection, None, "boxed", 7, now, 1990, 2002)
    assert list(newest) == list(range(1992, 2002))  # 2002 has nothing priced
    assert list(every) == list(range(1990, 2002))
