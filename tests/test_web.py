"""The web view (webapi.web) through the Flask client, against a known catalog whose history
is placed relative to now: every page, the search filters and pages (one row per ornament), the
order of an ornament's offers, lowest / highest over 90 and 365 days, the chart's lines (one per
shop and condition) and points, series completion, recent drops and restocks, the crawl grid,
the key setting, security headers, and odd input (each value its expected page and message)."""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import lxml.html
import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.engine import Engine

from christmas_spiders import config
from christmas_spiders.catalog.rules import item_number
from christmas_spiders.storage import runs
from christmas_spiders.storage.products import upsert_products
from christmas_spiders.storage.schema import crawl_runs, product_changes, products
from webapi import auth, create_app
from webapi.web import charts, security, views

from .conftest import PROJECT_ROOT, _url_for
from .test_api import owner_engine, product_item

HOH, OS, HO = "hookedonhallmark_com", "ornament_shop_com", "hallmark_ornaments_com"
SKU = "QX1001"
NOW = datetime.now(UTC).replace(microsecond=0)


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


HORSE = {
    "name": "2019 Nostalgic Rocking Horse",
    "sku": SKU,
    "release_year": 2019,
    "series": "Nostalgic Rocking Horse",
    "series_number": 5,
    "artist": "Ken Crow",
}
SERIES = ("Frosty Friends", "Snow Buddies", None)
FILLERS = 36  # with the four below: 40 ornaments, two result pages


def _items() -> list[tuple[dict[str, Any], float, list[tuple[dict[str, Any], float]]]]:
    """(item, listed days ago, [(changes, days ago), …]) for every product."""
    dollars = Decimal
    catalog = [
        # The horse at the three shops (and a delisted boxed variant at Hooked on Hallmark).
        (
            product_item(HOH, "h-horse", price=dollars("20.00"), **HORSE),
            400,
            [
                ({"price": dollars("17.00")}, 200),
                ({"availability": "unavailable"}, 120),
                ({"availability": "available"}, 60),
                ({"price": dollars("19.00")}, 30),
                ({"price": dollars("17.50")}, 2),
            ],
        ),
        (
            product_item(
                OS, "o-horse", price=dollars("15.00"), availability="unavailable", **HORSE
            ),
            400,
            [],
        ),
        (
            product_item(HO, "m-horse", price=dollars("18.00"), **HORSE),
            400,
            [({"price": dollars("18.50")}, 100)],
        ),
        (product_item(HOH, "h-horse-box", price=dollars("12.00"), **HORSE), 300, []),
        # The horse without its box, at Ornament Shop: another offer of the same ornament.
        (
            product_item(
                OS,
                "o-horse-nb",
                price=dollars("10.00"),
                **{**HORSE, "name": "2019 Nostalgic Rocking Horse No Box", "sku": "QX1001NB"},
            ),
            50,
            [],
        ),
        # A restock three days ago, a suspicious "drop" yesterday, a sell-out yesterday.
        (
            product_item(
                OS,
                "r-snow",
                sku="QX2100",
                name="2024 Snow Buddies Sled",
                series="Snow Buddies",
                release_year=2024,
                price=dollars("24.95"),
                availability="unavailable",
            ),
            50,
            [({"availability": "available"}, 3)],
        ),
        (
            product_item(
                HO,
                "s-glitch",
                sku="QX2200",
                name="2023 Glitch Ornament",
                release_year=2023,
                price=dollars("30.00"),
            ),
            40,
            [({"price": dollars("3.00")}, 1)],
        ),
        (
            product_item(
                HOH,
                "x-sold",
                sku="QX2300",
                name="2023 Sold Out Santa",
                release_year=2023,
                price=dollars("22.00"),
            ),
            40,
            [({"availability": "unavailable"}, 1)],
        ),
        # No SKU, and a name that must be escaped.
        (
            product_item(
                HO,
                "n-nosku",
                name='2022 <b>Mystery</b> & "Friends" Ornament',
                release_year=2022,
                price=dollars("9.95"),
            ),
            20,
            [],
        ),
    ]
    catalog += [
        # A listing the rules cannot read (no Keepsake year): not linked, a page of its own.
        (
            product_item(
                HO, "v-vintage", name="Vintage Glass Bell", release_year=1965, price=dollars("30")
            ),
            20,
            [],
        ),
        # QX3000 again, in 2005: Hallmark used the number of filler p00 (2010) before.
        (
            product_item(
                OS,
                "a-angel",
                sku="QX3000",
                name="2005 Snow Angel",
                release_year=2005,
                price=dollars("9"),
            ),
            20,
            [],
        ),
    ]
    for number in range(FILLERS):
        vendor = (HOH, OS, HO)[number % 3]
        year = 2010 + number % 10
        series = SERIES[number % 3]
        catalog.append(
            (
                product_item(
                    vendor,
                    f"p{number:02d}",
                    sku=f"QX{3000 + number}",
                    name=f"{year} {series or 'Candy Cane'} Ornament {number:02d}",
                    price=None if number % 7 == 0 else Decimal(5 + number) + Decimal("0.95"),
                    availability=("available", "preorder", "unavailable")[number // 3 % 3],
                    release_year=year,
                    series=series,
                ),
                30,
                [],
            )
        )
    return catalog


@dataclass
class WebCatalog:
    url: str
    items: dict[str, dict[str, Any]]  # vendor_product_id → the item as it is now
    ids: dict[str, int] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)
    delisted: str = "h-horse-box"

    def settings(self, tmp_path, **env: str) -> config.Config:
        environ = {
            "ENV": "",
            "CONFIG_PATH": str(PROJECT_ROOT / "config" / "default.json"),
            "DATABASE_URL": self.url,
            "CHRISTMAS_DATA_DIR": str(tmp_path / "data"),
        }
        return config.load({**environ, **env})

    def listed(self) -> list[dict[str, Any]]:
        return [item for key, item in self.items.items() if key != self.delisted]


def _at(engine: Engine, moment: datetime, write) -> None:
    """Run `write` and date the history rows it made at `moment`."""
    with engine.begin() as connection:
        before = connection.execute(sa.select(sa.func.max(product_changes.c.id))).scalar() or 0
        write(connection)
        connection.execute(
            sa.update(product_changes)
            .where(product_changes.c.id > before)
            .values(changed_at=moment)
        )


def _run(engine: Engine, vendor: str, arguments: dict, status: str, started: float, **kw) -> int:
    with engine.begin() as connection:
        run_id = runs.start_run(connection, vendor, arguments)
        if status != "running":
            runs.finish_run(
                connection,
                run_id,
                status=status,
                close_reason=kw.get("reason", status),
                counters={"requests": 10, "items_updated": 2, "errors": kw.get("errors", 0)},
                stats={},
            )
        connection.execute(
            sa.update(crawl_runs)
            .where(crawl_runs.c.id == run_id)
            .values(
                started_at=days_ago(started),
                finished_at=None if status == "running" else days_ago(started - 0.01),
            )
        )
    return run_id


def seed(url: str) -> WebCatalog:
    """Write the catalog's listings and changes in time order (ids follow time, as in a real
    database), each dated at its moment."""
    engine = owner_engine(url)
    catalog = WebCatalog(url=url, items={})
    events: list[tuple[float, int, str, dict[str, Any] | None]] = []  # days ago, order, key, …
    for item, listed, history in _items():
        catalog.items[item["vendor_product_id"]] = item
        events.append((listed, len(events), item["vendor_product_id"], None))
        for changes, when in history:
            events.append((when, len(events), item["vendor_product_id"], changes))
    events.append((10, len(events), catalog.delisted, {"delisted_at": days_ago(10)}))
    for when, _, key, changes in sorted(events, key=lambda event: (-event[0], event[1])):
        item = catalog.items[key] = {**catalog.items[key], **(changes or {})}
        if changes and "delisted_at" in changes:
            item.pop("delisted_at")
            write = lambda c, k=key: c.execute(  # noqa: E731
                sa.update(products)
                .where(products.c.vendor_product_id == k)
                .values(delisted_at=days_ago(10))
            )
        else:
            write = lambda c, i=item: upsert_products(c, [i])  # noqa: E731
        _at(engine, days_ago(when), write)
    with engine.connect() as connection:
        catalog.ids = dict(
            connection.execute(sa.select(products.c.vendor_product_id, products.c.id)).all()
        )
    catalog.runs = {
        "hoh-2019-ok": _run(engine, HOH, {"year": "2019"}, "finished", 5),
        "hoh-2019-failed": _run(engine, HOH, {"year": "2019"}, "failed", 2, reason="time_budget"),
        "os-all": _run(engine, OS, {}, "finished", 1),
        "ho-range": _run(engine, HO, {"year": "2015-2019"}, "finished", 4),
        "ho-2017-failed": _run(engine, HO, {"year": "2017"}, "failed", 3, errors=4),
        "hoh-url": _run(engine, HOH, {"url": "http://127.0.0.1:9/x"}, "finished", 0.5),
        "bad-year": _run(engine, OS, {"year": "19x9"}, "failed", 0.4, reason="bad_argument"),
        "hoh-2024-running": _run(engine, HOH, {"year": "2024"}, "running", 0.1),
    }
    engine.dispose()
    return catalog


@pytest.fixture(scope="module")
def catalog(admin_engine, template_database) -> Iterator[WebCatalog]:
    name = f"xmas_web_{uuid.uuid4().hex[:12]}"
    with admin_engine.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
    yield seed(_url_for(name))
    with admin_engine.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def client(catalog: WebCatalog, tmp_path_factory) -> Iterator[FlaskClient]:
    app = create_app(catalog.settings(tmp_path_factory.mktemp("web")))
    yield app.test_client()
    app.extensions["christmas_db"].dispose()


def page(client: FlaskClient, url: str, status: int = 200, **params: Any) -> lxml.html.HtmlElement:
    response = client.get(url, query_string=params or None)
    assert response.status_code == status, response.get_data(as_text=True)[:2000]
    assert response.mimetype == "text/html"
    return lxml.html.fromstring(response.get_data(as_text=True))


def text(element: lxml.html.HtmlElement) -> str:
    return " ".join(element.text_content().split())


def result_rows(tree: lxml.html.HtmlElement) -> list[dict[str, Any]]:
    """The search results: SKU (or name), and each shop's offers as (price, stock)."""
    rows = []
    for row in tree.cssselect("table.results tr.ornament"):
        cells = {
            cell.get("data-vendor"): [
                (text(offer.cssselect(".price")[0]), text(offer.cssselect(".stock")[0]))
                for offer in cell.cssselect(".offer")
            ]
            for cell in row.cssselect("td.offer-cell")
        }
        number = text(row.cssselect("td.sku")[0])
        year = text(row.cssselect("td")[1])
        name = text(row.cssselect("td a")[0])
        rows.append({"key": f"{number if number != '—' else name}/{year}", **cells})
    return rows


def walk(client: FlaskClient, **params: Any) -> list[dict[str, Any]]:
    """Every result row, following the Next links (which must keep the filters)."""
    found, pages = [], 0
    tree = page(client, "/", **params)
    while True:
        found += result_rows(tree)
        pages += 1
        assert pages < 10
        following = tree.cssselect('nav.pages a[rel="next"]')
        if not following:
            return found
        link = following[0].get("href")
        for name in params:
            assert f"{name}=" in link, (name, link)
        tree = page(client, link)


def ornament_key(item: dict[str, Any]) -> str:
    """A listing's ornament as result rows name it: item number (else name) and year."""
    return f"{item_number(item['sku']) or item['name']}/{item['release_year']}"


def ornament_keys(items: list[dict[str, Any]]) -> set[str]:
    return {ornament_key(item) for item in items}


# --- search ----------------------------------------------------------------------------------


def test_search_page_shows_each_shops_current_price(client, catalog) -> None:
    tree = page(client, "/")
    rows = result_rows(tree)
    assert len(rows) == views.PER_PAGE
    assert tree.cssselect('nav.pages a[rel="next"]')
    horse = next(row for row in rows if row["key"] == f"{SKU}/2019")
    assert horse[HOH] == [("$17.50", "in stock")]  # the boxed variant is delisted: not listed
    # Boxed and without its box, told apart: one line each.
    assert horse[OS] == [("$15.00", "out of stock"), ("$10.00", "in stock")]
    (no_box,) = tree.cssselect(f'td.offer-cell[data-vendor="{OS}"] .offer[data-condition="no_box"]')
    assert text(no_box.cssselect(".condition")[0]) == "no box"
    assert horse[HO] == [("$18.50", "in stock")]
    link = tree.cssselect(f'td.offer-cell[data-vendor="{HOH}"] a.price')[0]
    assert link.get("rel") == "noopener noreferrer"


def test_search_pages_visit_every_ornament_once_newest_year_first(client, catalog) -> None:
    rows = walk(client)
    assert len(rows) == len({row["key"] for row in rows})
    assert {row["key"] for row in rows} == ornament_keys(catalog.listed())
    years = {ornament_key(item): item["release_year"] for item in catalog.listed()}
    found_years = [years[row["key"]] for row in rows]
    assert found_years == sorted(found_years, reverse=True)


SEARCHES: list[tuple[dict[str, Any], Any]] = [
    ({"q": "rock hors"}, lambda i: "Rocking Horse" in i["name"]),
    ({"q": "FROSTY ornament"}, lambda i: "Frosty" in i["name"]),
    ({"sku": " qx1001 "}, lambda i: item_number(i["sku"]) == SKU),
    ({"sku": "2999qx1001nb"}, lambda i: item_number(i["sku"]) == SKU),  # any SKU form
    ({"sku": "QX3000"}, lambda i: i["sku"] == "QX3000"),  # two years, one number
    ({"series": "snow BUDDIES"}, lambda i: i["series"] == "Snow Buddies"),
    ({"year": "2019"}, lambda i: i["release_year"] == 2019),
    ({"shop": OS}, lambda i: i["vendor"] == OS),
    ({"in_stock": "1"}, lambda i: i["availability"] == "available"),
    (
        {"shop": HOH, "year": "2019", "in_stock": "on"},
        lambda i: (
            i["vendor"] == HOH and i["release_year"] == 2019 and i["availability"] == "available"
        ),
    ),
    ({"q": "mystery"}, lambda i: "Mystery" in i["name"]),
    (
        {"q": "ornament", "year": "2016"},
        lambda i: "Ornament" in i["name"] and i["release_year"] == 2016,
    ),
    ({"q": "ornament"}, lambda i: "Ornament" in i["name"]),  # two pages: Next keeps the filter
]


@pytest.mark.parametrize(("params", "wanted"), SEARCHES, ids=[str(p) for p, _ in SEARCHES])
def test_search_filters(client, catalog, params, wanted) -> None:
    expected = [item for item in catalog.listed() if wanted(item)]
    assert expected, "a filter test needs matches"
    rows = walk(client, **params)
    assert len(rows) == len(ornament_keys(expected))
    assert {row["key"] for row in rows} == ornament_keys(expected)
    shown = [offer for row in rows for vendor in (HOH, OS, HO) for offer in row[vendor]]
    assert len(shown) == len(expected)  # only the matching listings (one per shop and condition)
    if "shop" in params:
        assert all(row[v] == [] for row in rows for v in (HOH, OS, HO) if v != params["shop"])
    if "in_stock" in params:
        assert {stock for _, stock in shown} == {"in stock"}


def test_a_form_submitted_with_blank_fields_searches_everything(client) -> None:
    blank = page(client, "/", q="", sku=" ", series="", year="", shop="", page="")
    assert result_rows(blank) == result_rows(page(client, "/"))


def test_the_form_keeps_what_was_searched(client) -> None:
    tree = page(client, "/", q="rock", shop=OS, year="2019", in_stock="1")
    assert tree.get_element_by_id("q").get("value") == "rock"
    assert tree.get_element_by_id("year").get("value") == "2019"
    assert tree.cssselect("#shop option[selected]")[0].get("value") == OS
    assert tree.get_element_by_id("in_stock").get("checked") is not None
    assert tree.cssselect("form.search")[0].get("method") == "get"


def test_names_are_escaped(client, catalog) -> None:
    html = client.get("/", query_string={"q": "mystery"}).get_data(as_text=True)
    assert "<b>Mystery</b>" not in html
    assert "&lt;b&gt;Mystery&lt;/b&gt; &amp; &#34;Friends&#34;" in html


BAD_INPUT = [
    ({"year": "19x9"}, "year"),
    ({"year": "1066"}, "year"),
    ({"shop": "amazon_com"}, "shop"),
    ({"q": "x" * 10_000}, "q"),
    ({"q": "!!!"}, "q"),
    ({"sku": "QX\x00"}, "sku"),
    ({"page": "0"}, "page"),
    ({"page": "two"}, "page"),
    ({"in_stock": "maybe"}, "in_stock"),
    ({"colour": "red"}, "colour"),
]


@pytest.mark.parametrize(("params", "named"), BAD_INPUT, ids=[str(p)[:40] for p, _ in BAD_INPUT])
def test_bad_search_input_is_a_400_page_naming_the_parameter(client, params, named) -> None:
    tree = page(client, "/", 400, **params)
    message = text(tree.cssselect(".error-message")[0])
    assert message.startswith("invalid parameter")
    assert named in message
    assert tree.cssselect("h1")[0].text_content() == "400 Bad Request"


# Odd values of each search parameter, and what they give: a page of results (PAGE), or a
# 400 page whose message is "invalid parameter <name>: <reason>". Blank fields are ignored
# (a form sends them); text filters are bound, never formatted; shop and in_stock take nothing
# here (see ODD_SHOP_AND_IN_STOCK).
PAGE = None
NOT_INTEGER = "Not a valid integer."
CONTROL = "must not contain control characters."
NO_WORD = "must contain a letter or a digit."
YEARS = "Must be greater than or equal to 1900 and less than or equal to 2100."
PAGES = "Must be greater than or equal to 1 and less than or equal to 400."
ODD_SEARCH = [
    # value, q, sku, series, year, page
    ("", PAGE, PAGE, PAGE, PAGE, PAGE),
    (" ", PAGE, PAGE, PAGE, PAGE, PAGE),
    ("rocking horse", PAGE, PAGE, PAGE, NOT_INTEGER, NOT_INTEGER),
    ("ünïcödé ornament", PAGE, PAGE, PAGE, NOT_INTEGER, NOT_INTEGER),
    ("🎄" * 50, NO_WORD, PAGE, PAGE, NOT_INTEGER, NOT_INTEGER),
    ("日本語のオーナメント", PAGE, PAGE, PAGE, NOT_INTEGER, NOT_INTEGER),
    ("\u202eevil", PAGE, PAGE, PAGE, NOT_INTEGER, NOT_INTEGER),  # right-to-left override
    ("a\u0301", PAGE, PAGE, PAGE, NOT_INTEGER, NOT_INTEGER),  # a combining accent
    ("\x00", CONTROL, CONTROL, CONTROL, NOT_INTEGER, NOT_INTEGER),
    ("nul\x00byte", CONTROL, CONTROL, CONTROL, NOT_INTEGER, NOT_INTEGER),
    ("tab\there", CONTROL, CONTROL, CONTROL, NOT_INTEGER, NOT_INTEGER),
    (
        "x" * 10_000,
        "Length must be between 1 and 200.",
        "Length must be between 1 and 64.",
        "Length must be between 1 and 200.",
        NOT_INTEGER,
        NOT_INTEGER,
    ),
    ("' OR '1'='1", PAGE, PAGE, PAGE, NOT_INTEGER, NOT_INTEGER),
    ("1; DROP TABLE products; --", PAGE, PAGE, PAGE, NOT_INTEGER, NOT_INTEGER),
    ("%", NO_WORD, PAGE, PAGE, NOT_INTEGER, NOT_INTEGER),
    ("_", PAGE, PAGE, PAGE, NOT_INTEGER, NOT_INTEGER),  # _ is a word character
    ("%_%", PAGE, PAGE, PAGE, NOT_INTEGER, NOT_INTEGER),
    ("\\", NO_WORD, PAGE, PAGE, NOT_INTEGER, NOT_INTEGER),
    ("'':*", NO_WORD, PAGE, PAGE, NOT_INTEGER, NOT_INTEGER),
    ("a & b | !c", PAGE, PAGE, PAGE, NOT_INTEGER, NOT_INTEGER),
    ("<script>alert(1)</script>", PAGE, PAGE, PAGE, NOT_INTEGER, NOT_INTEGER),
    ("{{ 7*7 }}", PAGE, PAGE, PAGE, NOT_INTEGER, NOT_INTEGER),
    ("-1", PAGE, PAGE, PAGE, YEARS, PAGES),
    ("1e999", PAGE, PAGE, PAGE, NOT_INTEGER, NOT_INTEGER),
    ("9" * 40, PAGE, PAGE, PAGE, YEARS, PAGES),
    ("NaN", PAGE, PAGE, PAGE, NOT_INTEGER, NOT_INTEGER),
    ("2019.0", PAGE, PAGE, PAGE, NOT_INTEGER, NOT_INTEGER),
    ("２０１９", PAGE, PAGE, PAGE, PAGE, PAGES),  # full-width digits are digits: 2019
]
NASTY = [value for value, *_ in ODD_SEARCH]


def search_answer(client: FlaskClient, name: str, value: str) -> tuple[int, str | None]:
    """The status of a search with this one parameter, and the 400 page's message."""
    response = client.get("/", query_string={name: value})
    assert response.mimetype == "text/html"
    body = response.get_data(as_text=True)
    assert "<script>alert(1)</script>" not in body
    messages = lxml.html.fromstring(body).cssselect(".error-message")
    return response.status_code, text(messages[0]) if messages else None


@pytest.mark.parametrize(
    ("value", "q", "sku", "series", "year", "page_number"),
    ODD_SEARCH,
    ids=[ascii(value)[:30] for value, *_ in ODD_SEARCH],
)
def test_odd_search_input_gives_a_page_or_the_400_page_for_it(
    client, value, q, sku, series, year, page_number
) -> None:
    wanted = {"q": q, "sku": sku, "series": series, "year": year, "page": page_number}
    for name, reason in wanted.items():
        expected = (200, None) if reason is PAGE else (400, f"invalid parameter {name}: {reason}")
        assert search_answer(client, name, value) == expected, name


def test_odd_shop_and_in_stock_values_are_400_pages_unless_blank(client) -> None:
    for value in NASTY:
        blank = not value.strip()
        assert search_answer(client, "shop", value) == (
            (200, None) if blank else (400, f"invalid parameter shop: unknown shop {value!r}.")
        )
        assert search_answer(client, "in_stock", value) == (
            (200, None) if blank else (400, "invalid parameter in_stock: Not a valid boolean.")
        )


NOT_A_SKU = "is not a SKU: at most 64 printable characters, such as QX1234."


@pytest.mark.parametrize(
    ("value", "status", "message"),
    [
        ("rocking horse", 404, "No ornament has the SKU 'ROCKING HORSE'."),
        ("ünïcödé ornament", 404, "No ornament has the SKU 'ÜNÏCÖDÉ ORNAMENT'."),
        ("🎄" * 50, 404, f"No ornament has the SKU '{'🎄' * 50}'."),
        ("日本語のオーナメント", 404, "No ornament has the SKU '日本語のオーナメント'."),
        ("\u202eevil", 400, f"'\\u202eevil' {NOT_A_SKU}"),
        ("a\u0301", 404, "No ornament has the SKU 'A\u0301'."),
        ("\x00", 400, f"'\\x00' {NOT_A_SKU}"),
        ("nul\x00byte", 400, f"'nul\\x00byte' {NOT_A_SKU}"),
        ("tab\there", 404, "No ornament has the SKU 'TABHERE'."),  # URLs drop tabs
        ("x" * 10_000, 400, f"'{'x' * 40}…' {NOT_A_SKU}"),
        ("' OR '1'='1", 404, "No ornament has the SKU \"' OR '1'='1\"."),
        (
            "1; DROP TABLE products; --",
            404,
            "No ornament has the SKU '1; DROP TABLE PRODUCTS; --'.",
        ),
        ("%", 404, "No ornament has the SKU '%'."),
        ("_", 404, "No ornament has the SKU '_'."),
        ("%_%", 404, "No ornament has the SKU '%_%'."),
        ("\\", 404, "No ornament has the SKU '\\\\'."),
        ("'':*", 404, "No ornament has the SKU \"'':*\"."),
        ("a & b | !c", 404, "No ornament has the SKU 'A & B | !C'."),
        ("<script>alert(1)</script>", 404, "No ornament has the SKU '<SCRIPT>ALERT(1)</SCRIPT>'."),
        ("{{ 7*7 }}", 404, "No ornament has the SKU '{{ 7*7 }}'."),
        ("-1", 404, "No ornament has the SKU '-1'."),
        ("1e999", 404, "No ornament has the SKU '1E999'."),
        ("9" * 40, 404, f"No ornament has the SKU '{'9' * 40}'."),
        ("NaN", 404, "No ornament has the SKU 'NAN'."),
        ("2019.0", 404, "No ornament has the SKU '2019.0'."),
        ("２０１９", 404, "No ornament has the SKU '２０１９'."),
    ],
    ids=lambda value: ascii(value)[:30],
)
def test_odd_skus_give_the_404_or_400_page_for_them(client, value, status, message) -> None:
    response = client.get("/sku/" + value.replace("%", "%25").replace("/", "%2F"))
    assert (response.status_code, response.mimetype) == (status, "text/html")
    tree = lxml.html.fromstring(response.get_data(as_text=True))
    assert text(tree.cssselect(".error-message")[0]) == message
    assert "<script>" not in response.get_data(as_text=True).lower()  # escaped, if echoed


# --- one ornament, one SKU, one listing ------------------------------------------------------


def ornament_id(catalog: WebCatalog, key: str) -> int:
    engine = owner_engine(catalog.url)
    with engine.connect() as connection:
        found = connection.execute(
            sa.select(products.c.ornament_id).where(products.c.id == catalog.ids[key])
        ).scalar()
    engine.dispose()
    assert found is not None, key
    return found


@pytest.fixture(scope="module")
def horse_url(catalog: WebCatalog) -> str:
    return f"/ornaments/{ornament_id(catalog, 'h-horse')}"


@pytest.mark.parametrize("form", ["qx1001", "QX1001", "2999QX1001", "qx1001nb", " QX1001 "])
def test_any_sku_form_leads_to_its_ornament(client, horse_url, form) -> None:
    response = client.get(f"/sku/{form}")
    assert response.status_code == 302
    assert response.headers["Location"] == horse_url


def test_a_sku_of_two_years_leads_to_the_search_for_it(client, catalog) -> None:
    response = client.get("/sku/qx3000")
    assert response.status_code == 302
    assert response.headers["Location"] == "/?sku=QX3000"
    rows = result_rows(page(client, response.headers["Location"]))
    assert [row["key"] for row in rows] == ["QX3000/2010", "QX3000/2005"]


def test_ornament_page_lists_every_offer_cheapest_in_stock_first(client, horse_url) -> None:
    tree = page(client, horse_url)
    assert text(tree.cssselect("h1")[0]) == "2019 Nostalgic Rocking Horse"
    offers = [
        (
            row.get("data-vendor"),
            text(row.cssselect("td.condition")[0]),
            text(row.cssselect("td.price")[0]),
            text(row.cssselect(".stock")[0]),
        )
        for row in tree.cssselect("table.offers tbody tr")
    ]
    assert offers == [
        (OS, "no box", "$10.00", "in stock"),
        (HOH, "boxed", "$17.50", "in stock"),
        (HO, "boxed", "$18.50", "in stock"),
        (OS, "boxed", "$15.00", "out of stock"),
        (HOH, "boxed", "$12.00", "no longer listed"),
    ]
    for link in tree.cssselect("table.offers a"):
        assert link.get("rel") == "noopener noreferrer"
        assert link.get("href").startswith("http://127.0.0.1:9/")
    best = {
        div.get("class"): text(div.cssselect("dd")[0]) for div in tree.cssselect("dl.best > div")
    }
    assert best == {
        "cheapest": "$10.00 at Ornament Shop, no box",
        "cheapest-boxed": "$17.50 at Hooked on Hallmark",
    }
    facts = text(tree.cssselect("p.facts")[0])
    assert "2019" in facts and "QX1001" in facts and "Nostalgic Rocking Horse #5" in facts


def test_ornament_page_shows_its_series(client, horse_url) -> None:
    tree = page(client, horse_url)
    (section,) = tree.cssselect("section.in-series")
    link = section.cssselect("h2 a")[0]
    assert link.get("href") == "/series/Nostalgic%20Rocking%20Horse"
    assert text(section.cssselect("p")[0]) == (
        "Number 5 of 1–5: you can buy 1 of them today, cheapest total $10.00."
    )
    numbers = [item.get("data-number") for item in section.cssselect("ul.neighbours li")]
    assert numbers == ["3", "4", "5"]
    assert section.cssselect('li[aria-current="true"]')[0].get("data-number") == "5"


def figures(tree: lxml.html.HtmlElement) -> dict[tuple[str, int, str], str]:
    """(product id, or "" for any shop; window; lowest or highest) → the price shown."""
    return {
        (row.get("data-product"), int(cell.get("data-window")), cell.get("data-figure")): text(cell)
        for row in tree.cssselect("table.figures tbody tr")
        for cell in row.cssselect("td")
    }


def test_lowest_and_highest_over_90_and_365_days(client, catalog, horse_url) -> None:
    found = figures(page(client, horse_url))
    hoh, ho, os_ = (str(catalog.ids[key]) for key in ("h-horse", "m-horse", "o-horse"))
    # 90 days: the window opens at 17.00 (set 200 days ago), then 19.00 and 17.50.
    assert (found[(hoh, 90, "lowest")], found[(hoh, 90, "highest")]) == ("$17.00", "$19.00")
    # 365 days: it opens at 20.00 (the listing, 400 days ago).
    assert (found[(hoh, 365, "lowest")], found[(hoh, 365, "highest")]) == ("$17.00", "$20.00")
    assert found[(ho, 90, "lowest")] == found[(ho, 90, "highest")] == "$18.50"
    assert (found[(ho, 365, "lowest")], found[(ho, 365, "highest")]) == ("$18.00", "$18.50")
    assert found[(os_, 365, "lowest")] == found[(os_, 90, "highest")] == "$15.00"
    # Any shop: the no-box offer's 10.00, and the boxed variant's 12.00 (until its delisting).
    assert (found[("", 90, "lowest")], found[("", 365, "highest")]) == ("$10.00", "$20.00")


def test_the_chart_has_a_line_per_shop_and_condition(client, catalog, horse_url) -> None:
    tree = page(client, horse_url)
    (svg,) = tree.cssselect("svg.price-chart.wide")
    assert svg.get("role") == "img"
    title_id, desc_id = svg.get("aria-labelledby").split()
    assert "2019 Nostalgic Rocking Horse at 3 shops" in text(svg.get_element_by_id(title_id))
    assert "Hooked on Hallmark" in text(svg.get_element_by_id(desc_id))
    lines = {
        text(group.cssselect("title")[0]): group for group in svg.cssselect("g.series[data-vendor]")
    }
    points = {label: len(group.cssselect(".point")) for label, group in lines.items()}
    # Hooked on Hallmark's two boxed listings are one line: the best of them at each moment
    # (20.00; the second listing's 12.00 from its listing; 19.00 once it was delisted; 17.50).
    assert points == {
        "Hooked on Hallmark": 4,
        "Ornament Shop": 1,
        "Ornament Shop, no box": 1,
        "The Ornament Factory (hallmarkornaments.com)": 2,
    }
    hoh = lines["Hooked on Hallmark"]
    prices = [
        title.text_content().split(":")[1].split(" from")[0]
        for title in hoh.cssselect(".point title")
    ]
    assert [price.strip() for price in prices] == ["$20.00", "$12.00", "$19.00", "$17.50"]
    # In stock all along: the second listing covered the first one's stock-out.
    assert not hoh.cssselect(".stockout") and not hoh.cssselect("path.line.out")
    assert len(lines["Ornament Shop"].cssselect(".stockout")) == 1  # out of stock all along
    no_box = lines["Ornament Shop, no box"]
    assert "hollow" in no_box.get("class").split()
    assert no_box.get("data-product") == str(catalog.ids["o-horse-nb"])
    labels = [text(t) for t in svg.cssselect("g.legend text")]
    assert "Ornament Shop, no box" in labels
    assert {"Price (USD)", "Date (UTC)"} <= {text(t) for t in svg.cssselect(".axis-label")}
    # The text alternative: one row per point.
    table = tree.cssselect("figure.chart details table tbody tr")
    assert len(table) == sum(points.values())
    # The phone's layout: the same lines and points, labelled apart from the wide one's.
    (narrow,) = tree.cssselect("svg.price-chart.narrow")
    assert {
        text(group.cssselect("title")[0]): len(group.cssselect(".point"))
        for group in narrow.cssselect("g.series[data-vendor]")
    } == points
    assert set(narrow.get("aria-labelledby").split()).isdisjoint({title_id, desc_id})


def test_ornament_page_lists_changes_newest_first(client, horse_url) -> None:
    rows = page(client, horse_url).cssselect("table.changes tbody tr")
    texts = [text(row.cssselect("td")[2]) for row in rows]
    assert texts[0] == "price $19.00 → $17.50 (−8 %)"
    assert "delisted" in texts
    assert "out of stock → in stock" in texts
    assert texts.count("listed at $20.00, in stock") == 1
    assert "listed at $10.00, in stock" in texts  # the no-box offer
    times = [row.cssselect("time")[0].get("datetime") for row in rows]
    assert times == sorted(times, reverse=True)


def test_listings_go_to_their_ornament(client, catalog, horse_url) -> None:
    response = client.get(f"/products/{catalog.ids['o-horse']}")
    assert response.status_code == 302
    assert response.headers["Location"] == f"{horse_url}#offer-{catalog.ids['o-horse']}"
    # A listing without a SKU has an ornament too (linked by name).
    mystery = client.get(f"/products/{catalog.ids['n-nosku']}")
    assert mystery.status_code == 302
    tree = page(client, mystery.headers["Location"].split("#")[0])
    assert text(tree.cssselect("h1")[0]) == '2022 <b>Mystery</b> & "Friends" Ornament'
    (line,) = tree.cssselect("svg.wide g.series")
    assert line.get("data-vendor") == HO


def test_a_listing_the_rules_cannot_link_has_its_own_page(client, catalog) -> None:
    tree = page(client, f"/products/{catalog.ids['v-vintage']}")
    assert text(tree.cssselect("h1")[0]) == "Vintage Glass Bell"
    assert "not linked to an ornament" in text(tree.cssselect("p.note")[0])
    (line,) = tree.cssselect("svg.wide g.series")
    assert line.get("data-vendor") == HO
    assert len(line.cssselect(".point")) == 1


def test_unknown_products_ornaments_and_skus_are_404_pages(client) -> None:
    assert "No ornament has the SKU 'NOPE42'." in text(page(client, "/sku/nope42", 404))
    assert "No product 424242." in text(page(client, "/products/424242", 404))
    assert "No ornament 424242." in text(page(client, "/ornaments/424242", 404))
    page(client, f"/products/{2**64}", 404)
    page(client, f"/ornaments/{2**64}", 404)
    page(client, f"/sku/{SKU}", 400, since="2026-01-01")  # the page takes no parameters


@pytest.mark.parametrize(
    ("method", "url", "status"),
    [
        ("GET", "/products/-1", 404),  # no route: the id is no (unsigned) integer
        ("GET", "/products/abc", 404),
        ("GET", "/ornaments/-1", 404),
        ("GET", "/no-such-page", 404),
        ("POST", "/changes", 405),
    ],
)
def test_urls_no_route_takes_are_html_error_pages(client, method, url, status) -> None:
    """Outside the JSON API a URL no route takes is a page's: the HTML error page (#20)."""
    response = client.open(url, method=method)
    assert response.status_code == status
    assert response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"] == security.CONTENT_SECURITY_POLICY
    tree = lxml.html.fromstring(response.get_data(as_text=True))
    assert text(tree.cssselect("h1")[0]).startswith(str(status))
    assert tree.cssselect("p.error-message") and tree.cssselect("header.site nav")
    api = client.get("/v1/products/-1")  # the API's stay JSON
    assert (api.status_code, api.get_json()["code"]) == (404, 404)


def test_the_ornament_factory_is_named_with_its_address(client, catalog) -> None:
    """hallmarkornaments.com calls itself The Ornament Factory: the pages name both (#20)."""
    name = "The Ornament Factory (hallmarkornaments.com)"
    search = page(client, "/")
    assert name in [text(th) for th in search.cssselect("table.results thead th")]
    assert name in [text(option) for option in search.cssselect("select#shop option")]
    assert name in text(search.cssselect("footer.site")[0])
    runs = page(client, "/runs")
    assert name in [text(th) for th in runs.cssselect("table.run-grid thead th")]


# --- series ----------------------------------------------------------------------------------


def test_series_page_works_through_every_number(client, catalog) -> None:
    tree = page(client, "/series/nostalgic ROCKING horse")
    assert text(tree.cssselect("h1")[0]) == "Nostalgic Rocking Horse"
    assert text(tree.cssselect("p.completion")[0]) == (
        "Numbers 1–5: you can buy 1 of them today, cheapest total $10.00 (1 boxed, $17.50 in all)."
    )
    assert text(tree.cssselect("ul.gaps li.missing")[0]) == "No shop lists #1, #2, #3, #4."
    rows = {
        int(row.get("data-number")): row for row in tree.cssselect("table.series-numbers tbody tr")
    }
    assert list(rows) == [1, 2, 3, 4, 5]
    assert [rows[n].get("class").split()[-1] for n in rows] == ["missing"] * 4 + ["in-stock"]
    five = rows[5]
    (ornament,) = five.cssselect("div.ornament a")
    assert ornament.get("href") == f"/ornaments/{ornament_id(catalog, 'h-horse')}"
    assert text(five.cssselect("td.cheapest")[0]) == "$10.00 at Ornament Shop, no box"
    assert text(five.cssselect("td.cheapest-boxed")[0]) == "$17.50 at Hooked on Hallmark"


def test_a_series_without_numbers_lists_its_ornaments(client, catalog) -> None:
    tree = page(client, "/series/Snow Buddies")
    assert not tree.cssselect("table.series-numbers")
    listed = tree.cssselect("ul.unnumbered li")
    expected = {ornament_key(item) for item in catalog.listed() if item["series"] == "Snow Buddies"}
    assert len(listed) == len(expected)


def test_series_list(client) -> None:
    rows = {
        row.get("data-series"): row for row in page(client, "/series").cssselect("table tbody tr")
    }
    assert list(rows) == ["Frosty Friends", "Nostalgic Rocking Horse", "Snow Buddies"]
    horse = rows["Nostalgic Rocking Horse"]
    assert [text(cell) for cell in horse.cssselect("td")] == ["2019", "1–5", "1", "1"]
    assert horse.cssselect("a")[0].get("href") == "/series/Nostalgic%20Rocking%20Horse"


def test_unknown_series_is_a_404_page(client) -> None:
    assert "No series 'Nope'." in text(page(client, "/series/Nope", 404))
    page(client, "/series", 400, page="2")


# --- recent changes --------------------------------------------------------------------------


def recent(tree: lxml.html.HtmlElement) -> list[tuple[str, str, str]]:
    return [
        (row.get("data-vendor"), text(row.cssselect("td")[2]), text(row.cssselect("td")[3]))
        for row in tree.cssselect("table.changes tbody tr")
    ]


def test_recent_changes_are_the_last_weeks_drops_and_restocks(client, catalog) -> None:
    # Not the suspicious 30.00 → 3.00 of yesterday, nor yesterday's sell-out.
    assert recent(page(client, "/changes")) == [
        (HOH, "2019 Nostalgic Rocking Horse", "price $19.00 → $17.50 (−8 %)"),
        (OS, "2024 Snow Buddies Sled", "out of stock → in stock"),
    ]
    assert recent(page(client, "/changes", event="restock")) == [
        (OS, "2024 Snow Buddies Sled", "out of stock → in stock")
    ]
    assert [row[0] for row in recent(page(client, "/changes", shop=HOH))] == [HOH]
    assert recent(page(client, "/changes", days="1")) == []


def test_recent_changes_over_a_year_and_their_pages(client, catalog) -> None:
    year = recent(page(client, "/changes", days="365"))
    assert [change for _, _, change in year] == [
        "price $19.00 → $17.50 (−8 %)",
        "out of stock → in stock",  # the sled
        "out of stock → in stock",  # the horse, 60 days ago
        "price $20.00 → $17.00 (−15 %)",
    ]
    tree = page(client, "/changes", days="365")
    first_id = max(
        row[0]
        for row in catalog_changes(catalog)
        if row[1] == catalog.ids["h-horse"] and row[2] == "17.50"
    )
    older = recent(page(client, "/changes", days="365", before=str(first_id)))
    assert older == recent(tree)[1:]


def catalog_changes(catalog: WebCatalog) -> list[tuple[int, int, str | None]]:
    engine = owner_engine(catalog.url)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(
                product_changes.c.id, product_changes.c.product_id, product_changes.c.new_value
            )
        ).all()
    engine.dispose()
    return [tuple(row) for row in rows]


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"days": "0"}, "days"),
        ({"days": "week"}, "days"),
        ({"event": "bargain"}, "event"),
        ({"shop": "ebay"}, "shop"),
        ({"before": "-3"}, "before"),
    ],
)
def test_bad_changes_input_is_a_400_page(client, params, named) -> None:
    assert named in text(page(client, "/changes", 400, **params).cssselect(".error-message")[0])


# --- crawl status ----------------------------------------------------------------------------


def test_crawl_grid_shows_the_last_run_per_shop_and_year(client, catalog) -> None:
    tree = page(client, "/runs")
    cells = {}
    for row in tree.cssselect("table.run-grid tbody tr"):
        for vendor, cell in zip((HOH, OS, HO), row.cssselect("td"), strict=True):
            cells[(vendor, int(row.get("data-year")))] = cell
    failed = cells[(HOH, 2019)]
    assert failed.get("data-run") == str(catalog.runs["hoh-2019-failed"])
    assert "failed" in failed.get("class") and "(time_budget)" in text(failed)
    assert cells[(HOH, 2024)].get("data-status") == "running"
    assert cells[(HOH, 2018)].get("data-run") is None  # HooH was never asked for 2018
    assert cells[(OS, 2019)].get("data-run") == str(catalog.runs["os-all"])  # every year
    assert cells[(OS, 2024)].get("data-run") == str(catalog.runs["os-all"])
    assert cells[(HO, 2017)].get("data-run") == str(catalog.runs["ho-2017-failed"])
    assert cells[(HO, 2016)].get("data-run") == str(catalog.runs["ho-range"])
    assert cells[(HO, 2023)].get("data-run") is None and text(cells[(HO, 2023)]) == "never crawled"
    assert text(cells[(HO, 2024)]) == "—"  # HO lists nothing of 2024
    years = [int(row.get("data-year")) for row in tree.cssselect("table.run-grid tbody tr")]
    assert years == sorted(years, reverse=True) and years[0] == 2024


def test_latest_runs_highlight_failures(client, catalog) -> None:
    rows = page(client, "/runs").cssselect("table.runs tbody tr")
    assert [int(row.get("data-run")) for row in rows] == sorted(catalog.runs.values(), reverse=True)
    failed = {int(row.get("data-run")) for row in rows if "failed" in row.get("class").split()}
    assert failed == {catalog.runs[k] for k in ("hoh-2019-failed", "ho-2017-failed", "bad-year")}
    crawled = {int(row.get("data-run")): text(row.cssselect("td")[2]) for row in rows}
    assert crawled[catalog.runs["os-all"]] == "every year"
    assert crawled[catalog.runs["ho-range"]] == "years 2015-2019"
    assert crawled[catalog.runs["hoh-url"]] == "one page: http://127.0.0.1:9/x"


# --- headers, routes, the key setting --------------------------------------------------------

PAGES = [
    "/",
    "/?q=horse",
    f"/sku/{SKU}",  # the ornament's page
    "/products/{v-vintage}",  # a listing's own page
    "/series",
    "/series/Nostalgic Rocking Horse",
    "/changes",
    "/runs",
]


@pytest.mark.parametrize("url", PAGES)
def test_pages_are_self_contained_with_a_strict_policy(client, catalog, url) -> None:
    response = client.get(
        url.replace("{v-vintage}", str(catalog.ids["v-vintage"])), follow_redirects=True
    )
    assert response.status_code == 200
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "style-src 'self'" in policy
    assert "script-src" not in policy  # no script at all: default-src 'none'
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    tree = lxml.html.fromstring(response.get_data(as_text=True))
    assert not tree.cssselect("script") and not tree.cssselect("[style]")
    for element in tree.cssselect("link[href], img[src]"):
        assert (element.get("href") or element.get("src")).startswith("/assets/")
    assert tree.cssselect("html")[0].get("lang") == "en"
    for asset in ("style.css", "favicon.svg"):
        with client.get(f"/assets/{asset}") as asset_response:
            assert asset_response.status_code == 200


def test_the_api_and_its_docs_are_unchanged(client) -> None:
    assert client.get("/v1/vendors").status_code == 401  # the JSON API always needs a key
    assert client.get("/v1/vendors").get_json()["code"] == 401
    assert client.get("/healthz").get_json()["status"] == "ok"
    assert client.get("/docs").status_code == 200
    paths = set(client.get("/openapi.json").get_json()["paths"])
    assert all(path.startswith(("/v1/", "/healthz")) for path in paths)


@pytest.fixture(scope="module")
def keys(catalog: WebCatalog) -> dict[str, str]:
    engine = owner_engine(catalog.url)
    with engine.begin() as connection:
        _, valid = auth.create_key(connection, f"web-{uuid.uuid4().hex[:6]}")
        revoked_name = f"web-revoked-{uuid.uuid4().hex[:6]}"
        _, revoked = auth.create_key(connection, revoked_name)
        auth.revoke_key(connection, revoked_name)
    engine.dispose()
    return {"valid": valid, "revoked": revoked}


@pytest.fixture(scope="module")
def keyed_client(catalog: WebCatalog, tmp_path_factory) -> Iterator[FlaskClient]:
    settings = catalog.settings(tmp_path_factory.mktemp("keyed"), CHRISTMAS_WEB_REQUIRES_KEY="true")
    assert settings.web_requires_key
    app = create_app(settings)
    yield app.test_client()
    app.extensions["christmas_db"].dispose()


def test_with_the_key_setting_pages_ask_for_a_key(keyed_client) -> None:
    response = keyed_client.get("/sku/QX1001?")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="christmas"'
    tree = lxml.html.fromstring(response.get_data(as_text=True))
    (form,) = tree.cssselect("form.key-form")
    assert form.get("method") == "post" and form.get("action") == "/key"
    assert form.cssselect('input[name="key"]')[0].get("type") == "password"
    assert form.cssselect('input[name="next"]')[0].get("value") == "/sku/QX1001"
    with keyed_client.get("/assets/style.css") as style:
        assert style.status_code == 200


def test_with_the_key_setting_a_key_opens_the_pages(keyed_client, keys) -> None:
    for headers in ({"Authorization": f"Bearer {keys['valid']}"}, {"X-API-Key": keys["valid"]}):
        response = keyed_client.get("/runs", headers=headers)
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "private, no-cache"
    for key, reason in ((keys["revoked"], "revoked"), ("xmas_00000000_" + "A" * 43, "unknown")):
        response = keyed_client.get("/runs", headers={"X-API-Key": key})
        assert response.status_code == 401
        assert f"The API key is {reason}." in response.get_data(as_text=True)


def test_the_key_form_keeps_the_key_in_a_cookie(catalog, keys, tmp_path) -> None:
    app = create_app(catalog.settings(tmp_path, CHRISTMAS_WEB_REQUIRES_KEY="true"))
    try:
        browser = app.test_client()
        wrong = browser.post("/key", data={"key": "nope", "next": "/runs"})
        assert wrong.status_code == 401 and "Set-Cookie" not in wrong.headers
        entered = browser.post("/key", data={"key": keys["valid"], "next": "/runs?x=1"})
        assert entered.status_code == 303
        assert entered.headers["Location"] == "/runs?x=1"
        cookie = entered.headers["Set-Cookie"]
        assert cookie.startswith(f"{security.KEY_COOKIE}=") and "HttpOnly" in cookie
        assert "SameSite=Lax" in cookie and "Max-Age=2592000" in cookie
        assert browser.get("/runs").status_code == 200  # the cookie is sent back
        assert browser.get("/v1/vendors").status_code == 401  # the API takes no cookie
        elsewhere = browser.post("/key", data={"key": keys["valid"], "next": "//evil.example/"})
        assert elsewhere.headers["Location"] == "/"
    finally:
        app.extensions["christmas_db"].dispose()


# --- the chart module on its own -------------------------------------------------------------


def test_a_chart_without_prices_or_with_one_point_still_draws() -> None:
    now = datetime(2026, 11, 28, tzinfo=UTC)
    empty = charts.price_chart("c", "t", [], now)
    assert empty.empty and empty.y_ticks and empty.x_ticks
    one = charts.Series(
        "ornament_shop_com",
        "Ornament Shop",
        1,
        [charts.PricePoint(now, Decimal("12.95"))],
        [charts.StockPoint(now, False)],
    )
    chart = charts.price_chart("c", "t", [one], now)
    (drawn,) = chart.series
    assert len(drawn.points) == 1
    assert chart.left <= drawn.points[0].x <= chart.right
    assert chart.top <= drawn.points[0].y <= chart.bottom
    no_price = charts.Series("ornament_shop_com", "OS", 1, [charts.PricePoint(now, None)], [])
    assert charts.price_chart("c", "t", [no_price], now).series[0].in_stock_path == ""


def test_chart_ticks_are_round_prices_and_dates() -> None:
    start = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
    series = charts.Series(
        "hookedonhallmark_com",
        "HooH",
        1,
        [
            charts.PricePoint(start, Decimal("17.95")),
            charts.PricePoint(start + timedelta(days=100), Decimal("43.10")),
        ],
        [],
    )
    chart = charts.price_chart("c", "t", [series], start + timedelta(days=400))
    labels = [tick.label for tick in chart.y_ticks]
    assert labels == ["10.00", "20.00", "30.00", "40.00", "50.00"]
    assert [tick.label for tick in chart.x_ticks] == [
        "2025-04",
        "2025-07",
        "2025-10",
        "2026-01",
        "2026-04",
    ]
    assert all(re.fullmatch(r"\d{4}-\d{2}", tick.label) for tick in chart.x_ticks)
    # Steps: flat until the change, then straight up.
    (drawn,) = chart.series
    assert drawn.in_stock_path.count("V") == 1 and drawn.out_of_stock_path == ""


def test_the_narrow_layout_keeps_its_text_inside_a_phone_sized_chart() -> None:
    """The phone's layout (about 1:1 on a 390 px screen, so its 12-unit text stays legible):
    fewer date ticks, far enough apart for their labels; a legend label too long for one line
    on several lines, every line inside the chart; the plot below the legend."""
    start = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
    long_label = "The Ornament Factory (hallmarkornaments.com), no box"
    series = [
        charts.Series(
            vendor,
            label,
            index,
            [charts.PricePoint(start, Decimal("17.95"))],
            [],
            style=index,
        )
        for index, (vendor, label) in enumerate(
            [(HOH, "Hooked on Hallmark"), (OS, "Ornament Shop"), (HO, long_label)]
        )
    ]
    chart = charts.price_chart("c", "t", series, start + timedelta(days=400))
    narrow = chart.narrow
    assert narrow is not None and (narrow.layout, narrow.id) == ("narrow", "c-narrow")
    assert (chart.width, narrow.width) == (charts.WIDE.width, charts.NARROW.width) == (800, 380)
    assert len(chart.x_ticks) > len(narrow.x_ticks) >= 2
    assert len(narrow.x_ticks) <= charts.NARROW.x_ticks
    gaps = [b.at - a.at for a, b in itertools.pairwise(narrow.x_ticks)]
    assert min(gaps) >= 70  # a 10-character date label is about 65 units wide
    (wrapped,) = [entry for entry in narrow.legend if entry.label == long_label]
    assert len(wrapped.lines) == 2 and " ".join(wrapped.lines) == long_label
    for entry in narrow.legend:
        right = entry.x + 36 + max(len(line) for line in entry.lines) * 7
        assert entry.x >= 0 and right <= narrow.width, entry
        assert entry.y + (len(entry.lines) - 0.5) * charts.LEGEND_ROW <= narrow.top, entry
    # The wide layout keeps every label on one line.
    assert all(entry.lines == (entry.label,) for entry in chart.legend)
