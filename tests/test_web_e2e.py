"""The web view end to end: real crawls of the replica shops fill the database, the app runs
in a real HTTP server, and headless Chromium (Debian's, driven by Selenium as the rendering
middleware drives it) reads the pages.

Three crawl rounds of 2025 at the three shops stand for crawls on three days: between rounds the
replica changes the prices and stock of QX5426, an ornament all three shops sell, and after the
last round the history of the first two is moved back 60 and 25 days (ids, order and values stay
as the crawls wrote them), so that the chart spans weeks as it would in production.

Checks: no page logs a console error (CSP violations and failed loads included), the SKU leads
to its ornament's page, whose chart has a line per shop with one point per recorded price and
whose cheapest offer is the cheapest in stock of its table, the search form's filters work (one
row per ornament), and on a phone (390 px) no page scrolls sideways and the chart's text is at
least 11 px tall. The screenshots of `python -m demo screenshots` (docs/screenshots/) are taken
here too, of these crawls, into the test's temporary folder.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from christmas_spiders import config
from christmas_spiders.storage.schema import crawl_runs, product_changes, products
from christmas_spiders.vendors import VENDORS
from demo import screenshots
from webapi import create_app

from .conftest import PROJECT_ROOT, _url_for
from .crawl import scrapy_crawl
from .replica.client import Replica
from .test_api import owner_engine

HOH, OS, HO = "hookedonhallmark_com", "ornament_shop_com", "hallmark_ornaments_com"
YEAR = 2025
SKU = "QX5426"  # sold by all three shops in the replica's 2025 catalog
# What the replica changes before rounds 2 and 3 (the first round crawls it as generated).
ROUNDS: list[dict[str, dict[str, str]]] = [
    {},
    {HOH: {"price": "27.95"}, HO: {"price": "31.95"}, OS: {"availability": "unavailable"}},
    {HOH: {"price": "26.50"}, OS: {"availability": "available"}},
]
DAYS_AGO = (60, 25, 0)  # when each round is taken to have run
# One point per recorded price: the listing, then each price change.
POINTS = {HOH: 3, HO: 2, OS: 1}
FAST = {"AUTOTHROTTLE_ENABLED": "0", "RETRY_BACKOFF_BASE": "0.05", "RETRY_BACKOFF_MAX": "1"}
WAIT = 60  # seconds: generous, for a loaded machine; the waits end as soon as the page is there


@dataclass
class Crawled:
    url: str
    settings: config.Config
    offers: dict[str, str] = field(default_factory=dict)  # vendor → vendor_product_id of SKU
    # The ornaments of Ornament Shop's listings in stock after the rounds (the replica's truth),
    # as the search links them: "/ornaments/<id>" (or "/products/<id>" for one not linked).
    in_stock_at_os: set[str] = field(default_factory=set)


def _crawl_every_shop(replica: Replica, env: dict[str, str]) -> None:
    def crawl(vendor: str):
        arguments = {"year": str(YEAR), "base_url": replica.base_urls[vendor]}
        return scrapy_crawl(vendor, env=env, arguments=arguments, settings=FAST)

    with ThreadPoolExecutor(len(VENDORS)) as pool:
        for vendor, result in zip(VENDORS, pool.map(crawl, VENDORS), strict=True):
            assert result.returncode == 0, f"{vendor}:\n{result.stdout[-3000:]}"


def _high_marks(engine) -> tuple[int, int]:
    with engine.connect() as connection:
        return (
            connection.execute(
                sa.select(sa.func.coalesce(sa.func.max(product_changes.c.id), 0))
            ).scalar_one(),
            connection.execute(
                sa.select(sa.func.coalesce(sa.func.max(crawl_runs.c.id), 0))
            ).scalar_one(),
        )


def _move_back(engine, since: tuple[int, int], until: tuple[int, int], days: int) -> None:
    """Date one round's history and crawl runs `days` earlier."""
    shift = sa.func.make_interval(0, 0, 0, days)
    with engine.begin() as connection:
        connection.execute(
            sa.update(product_changes)
            .where(product_changes.c.id > since[0], product_changes.c.id <= until[0])
            .values(changed_at=product_changes.c.changed_at - shift)
        )
        connection.execute(
            sa.update(crawl_runs)
            .where(crawl_runs.c.id > since[1], crawl_runs.c.id <= until[1])
            .values(
                started_at=crawl_runs.c.started_at - shift,
                finished_at=crawl_runs.c.finished_at - shift,
            )
        )


@pytest.fixture(scope="module")
def crawled(
    admin_engine, template_database, replica: Replica, tmp_path_factory
) -> Iterator[Crawled]:
    name = f"xmas_web_e2e_{uuid.uuid4().hex[:10]}"
    with admin_engine.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
    data_dir = tmp_path_factory.mktemp("web-e2e")
    env = {
        "ENV": "",
        "CONFIG_PATH": str(PROJECT_ROOT / "config" / "default.json"),
        "DATABASE_URL": _url_for(name),
        "CHRISTMAS_DATA_DIR": str(data_dir / "data"),
    }
    result = Crawled(url=_url_for(name), settings=config.load(env))
    for vendor in VENDORS:
        (item,) = [i for i in replica.expected_items(vendor, {YEAR}) if i.sku == SKU]
        result.offers[vendor] = item.vendor_product_id
    engine = owner_engine(result.url)
    try:
        marks = [_high_marks(engine)]
        for changes in ROUNDS:
            for vendor, fields in changes.items():
                replica.set_product(vendor, result.offers[vendor], **fields)
            _crawl_every_shop(replica, env)
            marks.append(_high_marks(engine))
        for number, days in enumerate(DAYS_AGO):
            if days:
                _move_back(engine, marks[number], marks[number + 1], days)
        final = {**ROUNDS[1][OS], **ROUNDS[2][OS]}["availability"]
        in_stock = [
            item.vendor_product_id
            for item in replica.expected_items(OS, {YEAR})
            if (final if item.sku == SKU else item.availability) == "available"
        ]
        with engine.connect() as connection:
            rows = connection.execute(
                sa.select(products.c.id, products.c.ornament_id).where(
                    products.c.vendor == OS, products.c.vendor_product_id.in_(in_stock)
                )
            ).all()
        assert len(rows) == len(in_stock)
        result.in_stock_at_os = {
            f"/ornaments/{row.ornament_id}" if row.ornament_id else f"/products/{row.id}"
            for row in rows
        }
        yield result
    finally:
        replica.reset()
        engine.dispose()
        with admin_engine.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def site(crawled: Crawled) -> Iterator[str]:
    """The app in a real threaded HTTP server on a free port; its base URL."""
    app = create_app(crawled.settings)
    try:
        with screenshots.serve(app) as url:
            yield url
    finally:
        app.extensions["christmas_db"].dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """Headless Chromium as the rendering middleware starts it, the console log kept, on a
    desktop's screen (1200 × 900)."""
    driver = screenshots.start_browser()
    try:
        screenshots.use_screen(driver, screenshots.DESKTOP)
        yield driver
    finally:
        driver.quit()


def problems(driver: WebDriver) -> list[dict]:
    """What the console logged since the last call, warnings and errors."""
    return [entry for entry in driver.get_log("browser") if entry["level"] in ("WARNING", "SEVERE")]


def open_page(driver: WebDriver, url: str) -> None:
    driver.get(url)
    assert problems(driver) == [], url


def wait_for_page(driver: WebDriver, url_part: str) -> None:
    """After a form submit: the new page's URL, and that page fully loaded (elements found
    before it is would go stale)."""
    WebDriverWait(driver, WAIT).until(
        lambda d: (
            url_part in d.current_url
            and d.execute_script("return document.readyState") == "complete"
        )
    )


def test_every_page_loads_without_console_errors(browser, site, crawled) -> None:
    problems(browser)  # start clean
    for path in ("/", f"/?year={YEAR}&shop={OS}", f"/sku/{SKU}", "/series", *PAGES.values()):
        open_page(browser, site + path)
        assert browser.find_element(By.CSS_SELECTOR, "h1").text
        assert browser.title.endswith("· Keepsake prices")
        style = browser.find_element(By.CSS_SELECTOR, "header.site").value_of_css_property(
            "background-color"
        )
        assert style != "rgba(0, 0, 0, 0)", "the style sheet did not apply"
    # The last round's drop and restock are the week's changes.
    open_page(browser, site + "/changes")
    rows = browser.find_elements(By.CSS_SELECTOR, "table.changes tbody tr")
    events = {(r.get_attribute("data-vendor"), r.get_attribute("class")) for r in rows}
    assert events == {(HOH, "change price_drop"), (OS, "change restock")}


def test_the_chart_has_one_series_per_shop_with_every_price_point(browser, site) -> None:
    open_page(browser, f"{site}/sku/{SKU}")
    assert "/ornaments/" in browser.current_url  # the SKU's ornament
    chart = browser.find_element(By.CSS_SELECTOR, "svg.price-chart.wide")
    assert chart.is_displayed() and chart.size["width"] > 600
    series = chart.find_elements(By.CSS_SELECTOR, "g.series")
    points = {
        group.get_attribute("data-vendor"): len(group.find_elements(By.CSS_SELECTOR, ".point"))
        for group in series
    }
    assert len(series) == len(points) == 3
    assert points == POINTS
    stockouts = {
        group.get_attribute("data-vendor"): len(group.find_elements(By.CSS_SELECTOR, ".stockout"))
        for group in series
    }
    assert stockouts == {HOH: 0, HO: 0, OS: 1}  # Ornament Shop sold out between rounds 2 and 3
    offers = browser.find_elements(By.CSS_SELECTOR, "table.offers tbody tr")
    assert [row.get_attribute("data-vendor") for row in offers] == [HOH, HO, OS]
    assert offers[0].find_element(By.CSS_SELECTOR, "td.price").text == "$26.50"
    name = browser.find_element(By.CSS_SELECTOR, "h1").text
    title = chart.find_element(By.CSS_SELECTOR, "title").get_attribute("textContent")
    assert title == f"Price history of {name} at 3 shops"


def test_the_ornament_page_names_its_cheapest_offer(browser, site) -> None:
    """The ornament page as a collector reads it: its item number, each offer's condition, and
    the cheapest offer in stock, which is the cheapest in stock of the offers table."""
    open_page(browser, f"{site}/sku/{SKU.lower()}")
    facts = browser.find_element(By.CSS_SELECTOR, "p.facts").text
    assert SKU in facts and str(YEAR) in facts
    rows = browser.find_elements(By.CSS_SELECTOR, "table.offers tbody tr")
    conditions = {row.find_element(By.CSS_SELECTOR, "td.condition").text for row in rows}
    assert conditions <= {"boxed", "no box", "no tag", "damaged box"} and conditions
    in_stock = [
        row.find_element(By.CSS_SELECTOR, "td.price").text
        for row in rows
        if row.find_element(By.CSS_SELECTOR, ".stock").text in ("in stock", "pre-order")
    ]
    cheapest = browser.find_element(By.CSS_SELECTOR, "dl.best .cheapest dd a.price").text
    assert cheapest == min(in_stock, key=lambda price: float(price.strip("$").replace(",", "")))


def test_search_form_filters_in_the_browser(browser, site, crawled) -> None:
    open_page(browser, site + "/")
    year = browser.find_element(By.ID, "year")
    year.clear()
    year.send_keys(str(YEAR))
    Select(browser.find_element(By.ID, "shop")).select_by_value(OS)
    browser.find_element(By.ID, "in_stock").click()
    browser.find_element(By.CSS_SELECTOR, "form.search button[type=submit]").click()
    wait_for_page(browser, "shop=")
    assert problems(browser) == []
    rows = browser.find_elements(By.CSS_SELECTOR, "table.results tr.ornament")
    found = set()
    for row in rows:
        for vendor in VENDORS:
            cell = row.find_element(By.CSS_SELECTOR, f'td.offer-cell[data-vendor="{vendor}"]')
            stock = [s.text for s in cell.find_elements(By.CSS_SELECTOR, ".stock")]
            if vendor == OS:  # its best offer boxed, and without the box if it has one
                assert stock and set(stock) == {"in stock"}, row.text
            else:
                assert stock == [], (vendor, row.text)
        link = row.find_element(By.CSS_SELECTOR, "td a").get_attribute("href")
        found.add(link.removeprefix(site))
    assert found == crawled.in_stock_at_os
    # Then a word of one of the names, with the other filters kept.
    word = rows[0].find_element(By.CSS_SELECTOR, "td a").text.split()[-1]
    name = browser.find_element(By.ID, "q")
    name.send_keys(word)
    name.submit()
    wait_for_page(browser, "q=")
    names = [
        a.text for a in browser.find_elements(By.CSS_SELECTOR, "table.results tr td:first-child a")
    ]
    assert names and all(word.lower() in found_name.lower() for found_name in names)


PAGES = {
    "search": "/",
    "ornament": f"/sku/{SKU}",
    "changes": "/changes",
    "runs": "/runs",
    "gaps": "/market/gaps",
    "rare": "/market/rare",
    "years": "/market/years",
    "year": f"/market/years/{YEAR}",
}
_WIDTHS = "return [window.innerWidth, document.documentElement.scrollWidth]"
_TEXT_HEIGHTS = (
    "return [...arguments[0].querySelectorAll('text')]"
    ".map(text => text.getBoundingClientRect().height)"
)
_LABEL = "return getComputedStyle(arguments[0], '::before').content"


def test_pages_fit_a_phone_and_the_chart_stays_legible(browser, site) -> None:
    """On a phone (390 px, as a phone lays pages out) no page is wider than the screen: the
    tables become cards, each cell named by its column; the chart shows its narrow layout,
    whose text is drawn at least 11 px tall. On a desktop the wide layout shows, as legible."""
    try:
        for screen in screenshots.SCREENS:
            screenshots.use_screen(browser, screen)
            for name, path in PAGES.items():
                open_page(browser, site + path)
                inner, scroll = browser.execute_script(_WIDTHS)
                assert inner == screen.width and scroll <= inner, (screen.name, name, scroll)
            open_page(browser, f"{site}/sku/{SKU}")
            (chart,) = [
                svg
                for svg in browser.find_elements(By.CSS_SELECTOR, "svg.price-chart")
                if svg.is_displayed()
            ]
            layout = "narrow" if screen is screenshots.PHONE else "wide"
            assert chart.get_attribute("class") == f"price-chart {layout}"
            least = 0.8 * screen.width if layout == "narrow" else 600
            assert chart.size["width"] > least, (screen.name, chart.size)
            heights = browser.execute_script(_TEXT_HEIGHTS, chart)
            assert len(heights) > 10 and min(heights) >= 11, (screen.name, sorted(heights)[:5])
            price = browser.find_element(By.CSS_SELECTOR, "table.offers tbody td.price")
            label = browser.execute_script(_LABEL, price)
            assert label == ('"Price"' if layout == "narrow" else "none"), screen.name
            # The year index: its chart in the same layout, a small chart per year, as legible.
            open_page(browser, f"{site}/market/years/{YEAR}")
            (index,) = [
                svg
                for svg in browser.find_elements(By.CSS_SELECTOR, "svg.index-chart")
                if svg.is_displayed()
            ]
            assert index.get_attribute("class") == f"price-chart index-chart {layout}"
            heights = browser.execute_script(_TEXT_HEIGHTS, index)
            open_page(browser, f"{site}/market/years")
            small = browser.find_element(By.CSS_SELECTOR, "ul.small-multiples svg.small")
            heights += browser.execute_script(_TEXT_HEIGHTS, small)
            assert min(heights) >= 11, (screen.name, sorted(heights)[:5])
    finally:
        screenshots.use_screen(browser, screenshots.DESKTOP)


def test_screenshots_of_every_page_at_both_widths(browser, site, tmp_path) -> None:
    """What `python -m demo screenshots` takes: each page at each width, a PNG as wide as the
    screen (in device pixels) and no taller than the screen's max_height."""
    try:
        taken = screenshots.shoot(browser, site, PAGES, tmp_path)
    finally:
        screenshots.use_screen(browser, screenshots.DESKTOP)
    expected = {
        f"{name}-{screen.name}.png": screen for name in PAGES for screen in screenshots.SCREENS
    }
    assert sorted(path.name for path in taken) == sorted(expected)
    for path in taken:
        header = path.read_bytes()[:24]
        assert header[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", header[16:24])
        screen = expected[path.name]
        assert width == screen.width * screen.scale, path.name
        assert screen.height * screen.scale <= height <= screen.max_height * screen.scale
