"""The replica of the three shops (tests/replica/): routes, markup, ground truth, options.

Real HTTP against the replica subprocess; the HO grid in real headless Chromium.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import time
import unicodedata
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
import requests
from parsel import Selector

from tests.replica.catalog import generate
from tests.replica.client import Replica
from tests.replica.models import (
    EDGE_CASES,
    EXPECT_ITEM,
    HO,
    HOOH,
    OS,
    UNAVAILABLE,
    VENDORS,
    Product,
)
from tests.replica.names import ordinal
from tests.replica.process import PROJECT_ROOT, ReplicaProcess

LIVE_HOSTS = ("hookedonhallmark.com", "ornament-shop.com", "hallmarkornaments.com")
MAX_PAGES = 50  # bound on every paging loop
SCHEMA = {"available": "InStock", "unavailable": "OutOfStock", "preorder": "PreOrder"}
# Fixtures whose structured data is broken or disagrees on purpose (E23, C3).
BROKEN_DATA = {"truncated_3d_item", "no_name", "bcdata_not_json", "price_disagree"}
BROKEN_DATA |= {"jsonld_trailing_comma"}


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def get(session: requests.Session, url: str, **options: object) -> requests.Response:
    options.setdefault("allow_redirects", False)
    options.setdefault("timeout", 30)
    return session.get(url, **options)  # type: ignore[arg-type]


def page(session: requests.Session, url: str) -> Selector:
    response = get(session, url)
    assert response.status_code == 200, url
    return Selector(text=response.text)


def clean(text: str | None) -> str | None:
    value = " ".join(unicodedata.normalize("NFC", text or "").split())
    return value or None


def money(text: str | None) -> Decimal | None:
    match = re.search(r"[\d,]+\.\d{2}", text or "")
    if not match:
        return None
    amount = Decimal(match.group().replace(",", ""))
    return amount or None


def number(value: float | int | str | None) -> Decimal | None:
    amount = Decimal(str(value or 0)).quantize(Decimal("0.01"))
    return amount or None


def js_object(html: str, name: str) -> dict | None:
    """`var <name> = {...};` parsed as JSON, or None when missing or not JSON."""
    match = re.search(rf"var {name}\s*=\s*(\{{.*?\}});", html, re.S)
    if not match:
        return None
    try:
        return json.loads(match.group(1))
    except ValueError:
        return None


def json_ld(selector: Selector) -> dict | None:
    for block in selector.css('script[type="application/ld+json"]::text').getall():
        try:
            return json.loads(block)
        except ValueError:
            return None
    return None


def fixture_with(replica: Replica, vendor: str, case: str) -> Product:
    for product in replica.shop(vendor).products():
        if case in product.edge_cases:
            return product
    raise AssertionError(f"{vendor} has no fixture for {case}")


def fixture_with_quirk(replica: Replica, vendor: str, quirk: str) -> Product:
    return next(p for p in replica.shop(vendor).products() if quirk in p.quirks)


def normal_products(replica: Replica, vendor: str) -> list[Product]:
    return [
        product
        for product in replica.shop(vendor).products()
        if product.expect == EXPECT_ITEM
        and not product.quirks & BROKEN_DATA
        and product.listed_path == product.path
    ]


def follow_next(
    session: requests.Session, url: str, next_css: str, item_css: str
) -> tuple[list[str], list[str]]:
    """Follow Next links with a seen-set and a page bound: (page URLs, item hrefs)."""
    seen: list[str] = []
    items: list[str] = []
    while url and url not in seen and len(seen) < MAX_PAGES:
        seen.append(url)
        selector = page(session, url)
        items += [urljoin(url, href) for href in selector.css(item_css).getall()]
        url = selector.css(next_css).get()
    return seen, items


# --- the generated catalog ----------------------------------------------------------------


def test_same_seed_gives_the_same_catalog() -> None:
    first, again, other = generate(7, "small"), generate(7, "small"), generate(8, "small")
    for vendor in VENDORS:
        assert list(first[vendor].products()) == list(again[vendor].products())
        assert [p.name for p in first[vendor].products()] != [
            p.name for p in other[vendor].products()
        ]


@pytest.mark.slow
def test_large_catalog_has_20000_products_per_shop() -> None:
    catalog = generate(1, "large")
    for shop in catalog:
        assert len(shop) == 20_000
        leaves = [c for c in shop.categories.values() if c.role in ("year", "segment")]
        listed = sorted(i for c in leaves for i in c.indices())
        assert listed == list(range(20_000))  # every product in exactly one year list
        assert {c.year for c in shop.year_categories()} == set(range(1973, 2026))
        for index in (0, 9_999, 19_999):
            product = shop.product(index)
            assert shop.by_id(product.product_id) == product


def test_ids_and_catids_are_not_sequential() -> None:
    shop = generate(1, "small")[HOOH]
    ids = [product.product_id for product in shop.products()]
    assert len(set(ids)) == len(ids)
    assert sorted(ids) != list(range(min(ids), min(ids) + len(ids)))
    assert ids != sorted(ids)
    catids = sorted(c.catid for c in shop.year_categories())
    assert any(b - a > 1 for a, b in itertools.pairwise(catids))


def test_names_follow_keepsake_style() -> None:
    names = [p.name for shop in generate(1, "small") for p in shop.products()]
    text = "\n".join(names)
    assert re.search(r"^\d{4} .+ \d+(st|nd|rd|th) in Series$", text, re.M)
    assert re.search(r"^\d{4} .*Miniature", text, re.M)
    assert re.search(r" NB$", text, re.M)
    for mark in ('"', "'", "&", "™", "é", "ñ", "\u2019", "\u2014"):
        assert mark in text, mark
    assert all(1973 <= int(name[:4]) <= 2025 for name in names)


def test_server_ground_truth_equals_the_python_catalog(replica: Replica) -> None:
    for vendor in VENDORS:
        live = replica.live_catalog(vendor)
        served = [p["expected_item"] for p in live["products"] if p["expect"] == EXPECT_ITEM]
        local = [item.as_json() for item in replica.expected_items(vendor)]
        assert served == local
        assert live["size"] == len(replica.shop(vendor))


def test_every_edge_case_is_in_the_small_catalog(replica: Replica) -> None:
    covered: dict[str, list[str]] = {case: [] for case in EDGE_CASES}
    for vendor in VENDORS:
        live = replica.live_catalog(vendor)
        for case, places in live["edge_cases"].items():
            covered.setdefault(case, []).extend(f"{vendor} {place}" for place in places)
        for record in live["products"]:
            if record["expect"] != EXPECT_ITEM:
                assert record["note"] and record["expected_item"] is None
    missing = [case for case in EDGE_CASES if not covered[case]]
    assert not missing


# --- routes, status codes, origins --------------------------------------------------------


def test_each_shop_on_its_own_loopback_origin(replica: Replica, http: requests.Session) -> None:
    origins = replica.base_urls
    assert set(origins) == set(VENDORS)
    assert len({urlsplit(url).port for url in origins.values()}) == 3
    for vendor, origin in origins.items():
        assert urlsplit(origin).hostname == "127.0.0.1"
        assert get(http, origin + "/__replica__/health").json()["vendor"] == vendor


@pytest.mark.parametrize(
    ("vendor", "path", "status"),
    [
        (HOOH, "/keepsake-hallmark-ornaments-by-year.html", 200),
        (HOOH, "/robots.txt", 200),
        (HOOH, "/sitemap.xml", 200),
        (HOOH, "/No-Such-Ornament_p_1.html", 404),
        (HOOH, "/no/such/page", 404),
        (OS, "/hallmark-ornaments-by-year.html", 200),
        (OS, "/xmlsitemap.php", 200),
        (OS, "/xmlsitemap.php?type=products&page=1", 200),
        (OS, "/no-such-ornament/", 404),
        (HO, "/Hallmark-Ornaments-By-Year_c_200.html", 200),
        (HO, "/sitemap.xml", 200),
        (HO, "/No-Such-Ornament_p_1.html", 404),
    ],
)
def test_static_routes(
    replica: Replica, http: requests.Session, vendor: str, path: str, status: int
) -> None:
    response = get(http, replica.url(vendor, path))
    assert response.status_code == status
    if status == 404 and vendor == OS:
        assert "404 Error - Page not found" in response.text


def test_every_product_and_category_answers(replica: Replica, http: requests.Session) -> None:
    expected = {"ok": {200, 301}, "gone": {404}, "soft_404": {200}, "to_category": {301}}
    for vendor in VENDORS:
        shop = replica.shop(vendor)
        for category in shop.categories.values():
            assert get(http, replica.url(vendor, category.path)).status_code == 200
        for product in shop.products():
            status = get(http, replica.product_url(product)).status_code
            assert status in expected[product.status], (vendor, product.name)


@pytest.mark.parametrize("vendor", [HOOH, HO])
def test_3dcart_aliases_redirect(replica: Replica, http: requests.Session, vendor: str) -> None:
    product = normal_products(replica, vendor)[0]
    category = replica.shop(vendor).category(product.category)
    alias = get(http, replica.url(vendor, f"/product.asp?itemid={product.product_id}"))
    assert alias.status_code == 301
    assert alias.headers["Location"] == replica.url(vendor, product.path)
    listing = get(http, replica.url(vendor, f"/view_category.asp?cat={category.catid}"))
    assert listing.status_code == 301
    assert listing.headers["Location"] == replica.url(vendor, category.path)
    stale = get(http, replica.url(vendor, f"/Old-Name_p_{product.product_id}.html"))
    assert stale.headers["Location"] == replica.url(vendor, product.path)
    quick = get(http, replica.url(vendor, f"/product.asp?lt_c=1&itemid={product.product_id}&qv=1&"))
    assert quick.status_code == 200
    assert js_object(quick.text, "_3d_item")["catalogid"] == product.product_id  # type: ignore[index]


def test_os_aliases_redirect(replica: Replica, http: requests.Session) -> None:
    product = normal_products(replica, OS)[0]
    legacy = get(http, replica.url(OS, f"/products.php?productId={product.product_id}"))
    assert (legacy.status_code, legacy.headers["Location"]) == (301, replica.url(OS, product.path))
    bare = get(http, replica.url(OS, product.path.rstrip("/")))
    assert (bare.status_code, bare.headers["Location"]) == (301, replica.url(OS, product.path))


def test_links_are_absolute_with_the_replica_origin(
    replica: Replica, http: requests.Session
) -> None:
    for vendor in VENDORS:
        origin = replica.base_urls[vendor]
        shop = replica.shop(vendor)
        product = normal_products(replica, vendor)[0]
        urls = [shop.index.path, shop.category(product.category).path, product.path]
        for url in urls:
            selector = page(http, replica.url(vendor, url))
            hrefs = selector.css("a::attr(href), link:not([itemprop])::attr(href)").getall()
            assert hrefs
            for href in hrefs:
                assert not any(host in href for host in LIVE_HOSTS), href
                if href.startswith("http"):
                    assert href.startswith(origin + "/"), href


# --- listings and paging ------------------------------------------------------------------


def test_hooh_year_index_lists_years_and_a_tile_without_year(
    replica: Replica, http: requests.Session
) -> None:
    shop = replica.shop(HOOH)
    selector = page(http, replica.url(HOOH, shop.index.path))
    labels = [
        (li.css("span img::attr(alt)").get() or li.css("span::text").get() or "").split()[0]
        for li in selector.css("ul.columns-5 > li")
    ]
    years = {int(label) for label in labels if re.fullmatch(r"(19|20)\d\d", label)}
    assert years == {c.year for c in shop.year_categories()}
    assert any(not re.fullmatch(r"\d{4}", label) for label in labels)  # E18


def test_hooh_segmented_years(replica: Replica, http: requests.Session) -> None:
    shop = replica.shop(HOOH)
    with_view_all = page(http, replica.url(HOOH, shop.category("y2019").path))
    first_tile = with_view_all.css(".sub-categories a")[0]
    assert re.search("view-all", first_tile.attrib["href"], re.I)
    assert with_view_all.css("#featureBlock .product-item")
    listing = with_view_all.css("section.category-products:not(#featureBlock) .product-item")
    assert not listing  # E17: the segmented page itself lists nothing but featured items
    without = page(http, replica.url(HOOH, shop.category("y2020").path))
    tiles = without.css(".sub-categories a::attr(href)").getall()
    assert tiles and not any(re.search("view-all", t, re.I) for t in tiles)
    found = set()
    for tile in tiles:
        _, items = follow_next(
            http,
            tile,
            ".paging a:contains('Next')::attr(href)",
            "section.category-products:not(#featureBlock) .name a::attr(href)",
        )
        found.update(items)
    expected = {replica.product_url(p) for p in shop.products() if p.year == 2020}
    assert found == expected


def test_hooh_paging_ends_and_self_loop(replica: Replica, http: requests.Session) -> None:
    shop = replica.shop(HOOH)
    view_all = shop.category("y2019-all")
    first = replica.url(HOOH, view_all.path)
    selector = page(http, first)
    assert len(selector.css(".paging")) == 2  # rendered twice
    pages, items = follow_next(
        http,
        first,
        ".paging a:contains('Next')::attr(href)",
        "section.category-products .product-item .name a::attr(href)",
    )
    assert len(pages) == 2  # page 2's Next points to itself (E14): the seen-set stops it
    last = page(http, pages[-1])
    assert last.css(".paging a:contains('Next')::attr(href)").get() == pages[-1]
    assert len(items) == len(set(items)) == view_all.count
    plain = shop.category("y2018")
    plain_page = page(http, replica.url(HOOH, plain.path))
    assert not plain_page.css(".paging a:contains('Next')")
    assert not plain_page.css(".paging a.category-viewall")
    past_end = page(http, replica.url(HOOH, view_all.path.replace(".html", "-99-3.html")))
    assert past_end.css(".paging strong::text").get() == "1"  # E15: page 1 again
    everything = page(http, first + "?viewall=1")
    assert len(everything.css("section.category-products .product-item")) == view_all.count
    assert everything.css(".paging a:contains('Exit View All')")


def test_os_paging(replica: Replica, http: requests.Session) -> None:
    category = replica.shop(OS).category("g1-2019")
    first = replica.url(OS, category.path)
    pages, items = follow_next(
        http,
        first,
        ".pagination-item--next a::attr(href)",
        "ul.productGrid article.card .card-title a::attr(href)",
    )
    assert len(pages) == 3
    assert len(items) == len(set(items)) == category.count
    head_next = page(http, first).css('link[rel="next"]::attr(href)').get()
    assert head_next == pages[1]
    past_end = get(http, first + "?page=99")
    assert past_end.status_code == 200
    assert "There are no products listed under this category." in past_end.text  # E15


def test_os_year_index_has_miniatures_and_price_trap(
    replica: Replica, http: requests.Session
) -> None:
    selector = page(http, replica.url(OS, replica.shop(OS).index.path))
    hrefs = selector.css(".sidebarBlock .navList-item a.navList-action::attr(href)").getall()
    segments = [urlsplit(href).path.split("/")[1] for href in hrefs]
    years = [s.split("-")[0] for s in segments if re.fullmatch(r"\d{4}", s.split("-")[0])]
    assert years.count("1994") == 2  # g1 and g2 (E18)
    assert any("price_min" in href for href in hrefs)
    assert "&amp;price_max" in get(http, replica.url(OS, replica.shop(OS).index.path)).text


def test_ho_paging_is_server_side(replica: Replica, http: requests.Session) -> None:
    category = replica.shop(HO).category("y2019")
    first = page(http, replica.url(HO, category.path))
    count = int(re.findall(r"\d+", first.css(".product-count::text").get())[-1])
    assert count == category.count
    second = first.css(".paging a:contains('Next')::attr(href)").get()
    assert second.endswith("-2-3.html")
    last = page(http, second)
    assert not last.css(".paging a:contains('Next')")
    assert last.css("#productCategoryBlock::attr(data-page)").get() == "2"
    past_end = page(http, replica.url(HO, category.path.replace(".html", "-99-3.html")))
    assert past_end.css("#productCategoryBlock::attr(data-page)").get() == "1"  # E15
    links = page(http, replica.url(HO, replica.shop(HO).index.path)).css("a.subcat")
    assert any(not re.match(r"/\d{4}", urlsplit(a.attrib["href"]).path) for a in links)  # E18


def test_sitemaps_list_live_products(replica: Replica, http: requests.Session) -> None:
    for vendor in (HOOH, HO):
        locs = Selector(text=get(http, replica.url(vendor, "/sitemap.xml")).text, type="xml")
        urls = set(locs.xpath("//*[local-name()='loc']/text()").getall())
        live = {
            replica.url(vendor, p.path) for p in replica.shop(vendor).products() if p.status == "ok"
        }
        assert {u for u in urls if "_p_" in u} == live
    index = Selector(text=get(http, replica.url(OS, "/xmlsitemap.php")).text, type="xml")
    pages = index.xpath("//*[local-name()='loc']/text()").getall()
    assert any("type=products&page=1" in loc for loc in pages)


def _year_links(vendor: str, selector: Selector, base: str) -> list[str]:
    """Year list URLs of a year index, read the way the contract tells spiders to."""
    links = []
    if vendor == HOOH:
        for li in selector.css("ul.columns-5 > li"):
            label = li.css("span img::attr(alt)").get() or li.css("span::text").get() or ""
            if re.match(r"(19|20)\d\d\b", label):
                links.append(li.css("a::attr(href)").get())
    elif vendor == OS:
        for href in selector.css(".sidebarBlock .navList-item a.navList-action::attr(href)"):
            if re.fullmatch(r"\d{4}", urlsplit(href.get()).path.split("/")[1].split("-")[0]):
                links.append(href.get())
    else:
        links = [
            href
            for href in selector.css("a.subcat::attr(href)").getall()
            if re.match(r"/\d{4}", urlsplit(href).path)
        ]
    return [urljoin(base, link) for link in links]


def _crawl_year(http: requests.Session, vendor: str, url: str) -> list[str]:
    if vendor == OS:
        return follow_next(
            http, url, ".pagination-item--next a::attr(href)", ".card-title a::attr(href)"
        )[1]
    if vendor == HO:  # the grid script's data: this test reads what the browser would get
        catid = re.search(r"_c_(\d+)", url).group(1)  # type: ignore[union-attr]
        grid = get(http, urljoin(url, f"/ajax_category_items.asp?cat={catid}&page=1&viewall=1"))
        return [urljoin(url, item["url"]) for item in grid.json()["items"]]
    selector = page(http, url)
    tiles = selector.css(".sub-categories a::attr(href)").getall()
    view_all = [tile for tile in tiles if re.search("view-all", tile, re.I)]
    found: list[str] = []
    for listing in view_all[:1] or tiles or [url]:
        found += follow_next(
            http,
            listing,
            ".paging a:contains('Next')::attr(href)",
            "section.category-products:not(#featureBlock) .product-item .name a::attr(href)",
        )[1]
    return found


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_year_crawl_reaches_every_product_once_per_list(
    replica: Replica, http: requests.Session, vendor: str
) -> None:
    shop = replica.shop(vendor)
    index = replica.url(vendor, shop.index.path)
    years = _year_links(vendor, page(http, index), index)
    assert len(years) == len(shop.year_categories())
    found: list[str] = []
    for year in years:
        found += _crawl_year(http, vendor, year)
    assert sorted(found) == sorted(replica.product_url(p) for p in shop.products())


def test_prototype_absolute_xpaths_still_resolve(replica: Replica, http: requests.Session) -> None:
    """The contract keeps the 2020 prototype's XPaths working; check each one."""
    hooh = replica.shop(HOOH)
    segmented = page(http, replica.url(HOOH, hooh.category("y2019").path))
    view_all = segmented.xpath('//*[@id="category"]/div/div/div/section[3]/div/ul[1]/li[1]/a')
    assert view_all.attrib["href"] == replica.url(HOOH, hooh.category("y2019-all").path)
    product = normal_products(replica, HOOH)[0]
    hooh_page = page(http, replica.url(HOOH, product.path))
    assert hooh_page.xpath('//*[@id="add"]/input[1]/@value').get() == str(product.product_id)
    assert hooh_page.xpath('//*[@id="add"]/div[2]/div[2]/div[1]/h1/text()').get() == product.name

    product = normal_products(replica, OS)[0]
    os_page = page(http, replica.url(OS, product.path))
    base = "/html/body/div[3]/div[1]/div[2]/div/div[1]"
    assert os_page.xpath(f"{base}/section[2]/div/h1/text()").get() == product.name
    price = os_page.xpath(f"{base}/section[2]/div/dl/dd[3]/div/span/text()").get()
    assert money(price) == product.price
    assert os_page.xpath(f"{base}/section[2]/div/dl/dd[4]/a/span/text()").get() == "Hallmark"
    assert os_page.xpath(f"{base}/section[2]/div/dl/dd[5]/text()").get() == product.raw_sku
    assert os_page.xpath(f"{base}/section[3]/div[1]/form[1]/input[2]/@value").get() == str(
        product.product_id
    )

    ho = replica.shop(HO)
    ho_index = page(http, replica.url(HO, ho.index.path))
    first_year = ho_index.xpath('//*[@id="subcategoriesBlock"]/div[2]/ul/li[1]/div/div/a/@href')
    assert re.search(r"/19\d\d_c_\d+\.html$", first_year.get())
    product = normal_products(replica, HO)[0]
    quick = page(http, replica.url(HO, f"/product.asp?lt_c=1&itemid={product.product_id}&qv=1&"))
    assert "var _3d_item" in quick.xpath("/html/head/script[7]/text()").get()
    ho_page = page(http, replica.url(HO, product.path))
    assert ho_page.xpath('//*[@id="add"]/div[1]/div[2]/h1/text()').get() == product.name


# --- structured data agrees with the page ----------------------------------------------------


def _check_3dcart(product: Product, html: str, origin: str) -> None:
    selector = Selector(text=html)
    item = product.expected(origin)
    assert item is not None
    data = js_object(html, "_3d_item")
    assert data is not None
    assert list(data) == ["catalogid", "id", "name", "price", "availability", "currency"]
    assert data["catalogid"] == product.product_id
    assert clean(data["name"]) == clean(selector.css("h1[itemprop=name]::text").get()) == item.name
    assert number(data["price"]) == money(selector.css("#price::text").get()) == item.price
    sku = (selector.css("#product_id::text").get() or "").strip().upper() or None
    assert (data["id"].strip().upper() or None) == sku == item.sku
    assert data["availability"] == (0 if item.availability == UNAVAILABLE else 1)
    assert clean(selector.css("#availability::text").get()) == item.availability_text
    schema = selector.css(
        "[itemprop=availability]::attr(content), [itemprop=availability]::attr(href)"
    ).get()
    assert schema.endswith(SCHEMA[item.availability])
    assert selector.css("link[rel=canonical]::attr(href)").get() == item.link
    if item.regular_price:
        regular = selector.css("del.original-price::text, .retailprice span::text").get()
        assert money(regular) == item.regular_price


def test_hooh_structured_data_agrees_with_dom(replica: Replica, http: requests.Session) -> None:
    origin = replica.base_urls[HOOH]
    for product in normal_products(replica, HOOH):
        html = get(http, replica.url(HOOH, product.path)).text
        _check_3dcart(product, html, origin)
        selector = Selector(text=html)
        item = product.expected(origin)
        assert item is not None
        assert selector.css("#main-image img::attr(src)").get() == item.image_url
        crumbs = selector.css(".breadcrumb-section li [itemprop=name]::text").getall()
        assert crumbs[2] == f"{product.year} Hallmark Ornaments"
        if item.series:
            description = selector.css(".short-description::text").get()
            assert f"{ordinal(item.series_number or 0)} in the {item.series} series" in description


def test_ho_structured_data_agrees_with_dom(replica: Replica, http: requests.Session) -> None:
    origin = replica.base_urls[HO]
    for product in normal_products(replica, HO):
        html = get(http, replica.url(HO, product.path)).text
        _check_3dcart(product, html, origin)
        selector = Selector(text=html)
        item = product.expected(origin)
        assert item is not None
        head_scripts = selector.xpath("/html/head/script")
        assert "var _3d_item" in head_scripts[6].get()  # the 7th head script
        data = json_ld(selector)
        assert data is not None
        assert clean(data["name"]) == item.name
        assert ((data.get("sku") or "").strip().upper() or None) == item.sku
        assert number(data["offers"]["price"]) == item.price
        assert data["offers"]["availability"].endswith(SCHEMA[item.availability])
        specs = selector.css(".product-specs li::text").getall()
        assert (f"Series: {item.series}" in specs) == bool(item.series)
        assert (f"Artist: {item.artist}" in specs) == bool(item.artist)


def test_os_structured_data_agrees_with_dom(replica: Replica, http: requests.Session) -> None:
    origin = replica.base_urls[OS]
    for product in normal_products(replica, OS):
        html = get(http, replica.url(OS, product.path)).text
        selector = Selector(text=html)
        item = product.expected(origin)
        assert item is not None
        attributes = js_object(html, "BCData")["product_attributes"]  # type: ignore[index]
        rows = {
            clean(dt.xpath("string()").get()): dd
            for dt, dd in zip(
                selector.css("dl.productView-info dt"),
                selector.css("dl.productView-info dd"),
                strict=True,
            )
        }
        assert clean(selector.css("h1.productView-title::text").get()) == item.name
        assert ((attributes["sku"] or "").strip().upper() or None) == item.sku
        assert (rows["SKU:"].xpath("string()").get().strip().upper() or None) == item.sku
        shown = money(rows["Price:"].css("[data-product-price-without-tax]::text").get())
        bc_price = attributes["price"].get("without_tax", {}).get("value")
        assert shown == number(bc_price) == item.price
        assert attributes["instock"] == (item.availability != UNAVAILABLE)
        assert clean(rows["Availability:"].xpath("string()").get()) == item.availability_text
        assert rows["Release Year:"].xpath("string()").get().strip() == str(item.release_year)
        if item.price is not None:
            schema = selector.css("meta[itemprop=availability]::attr(content)").get()
            assert schema.endswith(SCHEMA[item.availability])
        if item.regular_price:
            was = rows["Price:"].css("[data-product-non-sale-price-without-tax]::text").get()
            assert money(was) == item.regular_price
            assert number(attributes["price"]["non_sale_price_without_tax"]["value"]) == (
                item.regular_price
            )
        assert ("Artist:" in rows) == bool(item.artist)
        assert selector.css("input[name=product_id]::attr(value)").get() == item.vendor_product_id
        assert selector.css("link[rel=canonical]::attr(href)").get() == item.link


def test_jsonld_option_adds_the_os_json_ld_block(
    start_replica: Callable[..., Replica], http: requests.Session
) -> None:
    replica = start_replica(jsonld=True)
    product = normal_products(replica, OS)[0]
    item = product.expected(replica.base_urls[OS])
    assert item is not None
    data = json_ld(page(http, replica.url(OS, product.path)))
    assert data is not None
    assert (clean(data["name"]), number(data["offers"]["price"])) == (item.name, item.price)
    broken = fixture_with_quirk(replica, OS, "jsonld_trailing_comma")
    assert json_ld(page(http, replica.url(OS, broken.path))) is None  # E23


# --- edge cases in the markup ---------------------------------------------------------------


def test_hooh_edge_case_markup(replica: Replica, http: requests.Session) -> None:
    def html(case: str) -> str:
        return get(http, replica.product_url(fixture_with(replica, HOOH, case))).text

    sale = Selector(text=html("E1"))
    assert sale.css(".saleprice del.original-price") and sale.css("#price.sale-price")
    assert js_object(html("E2"), "_3d_item")["price"] == 1299  # type: ignore[index]
    retail = Selector(text=html("E3"))
    assert retail.css(".retailprice span::text").get() and not retail.css(".saleprice")
    assert Selector(text=html("E4")).css("#waitinglist-btn")
    preorder = html("E5")
    assert js_object(preorder, "_3d_item")["availability"] == 1  # type: ignore[index]
    assert "schema.org/PreOrder" in preorder
    assert js_object(html("E8"), "_3d_item")["id"] == ""  # type: ignore[index]
    quoted = next(p for p in replica.shop(HOOH).products() if '"' in p.name)
    quoted_html = get(http, replica.product_url(quoted)).text
    assert js_object(quoted_html, "_3d_item")["name"] == quoted.raw_name  # type: ignore[index]
    assert f'content="{quoted.name.replace(chr(34), "&quot;")}"' in quoted_html
    assert Selector(text=html("E25")).css(".product-id.hide #product_id::text").get()
    truncated = get(
        http, replica.product_url(fixture_with_quirk(replica, HOOH, "truncated_3d_item"))
    ).text
    assert js_object(truncated, "_3d_item") is None and "var _3d_item" in truncated
    assert Selector(text=truncated).css("h1[itemprop=name]::text").get()
    assert Selector(text=html("E24")).css("#price::text").get() == "$0.00"
    gone = fixture_with(replica, HOOH, "E22")
    assert get(http, replica.product_url(gone)).status_code == 404
    retired = fixture_with(replica, HOOH, "E21")
    moved = get(http, replica.product_url(retired))
    category = replica.shop(HOOH).category(retired.category)
    assert (moved.status_code, moved.headers["Location"]) == (301, replica.url(HOOH, category.path))
    relative = fixture_with(replica, HOOH, "E20")
    listing = page(http, replica.url(HOOH, replica.shop(HOOH).category(relative.category).path))
    assert relative.listed_path.lstrip("/") in listing.css(".name a::attr(href)").getall()
    assert listing.css(".img img::attr(src)").get().startswith("thumbnail.asp?file=")
    names = [p for p in replica.shop(HOOH).products() if "E11" in p.edge_cases]
    raw = "".join(get(http, replica.product_url(p)).text for p in names)
    assert "e\u0308" in raw and "&nbsp;" in raw and "Mickey &amp; Minnie; Holiday" in raw


def test_os_edge_case_markup(replica: Replica, http: requests.Session) -> None:
    def html(case: str) -> str:
        return get(http, replica.product_url(fixture_with(replica, OS, case))).text

    sale = Selector(text=html("E1"))
    was = sale.css(".non-sale-price--withoutTax")
    assert was and "display: none" not in (was.attrib.get("style") or "")
    sold_out = html("E4")
    assert "alertBox-message-text" in sold_out and "form-action-addToCart" not in sold_out
    assert js_object(sold_out, "BCData")["product_attributes"]["instock"] is False  # type: ignore[index]
    preorder = Selector(text=html("E5"))
    assert preorder.css("#form-action-addToCart::attr(value)").get() == "Pre-Order Now"
    assert "Expected release date" in preorder.css(".productView-options p::text").get()
    no_sku = Selector(text=html("E8"))
    assert "display: none" in no_sku.css("dt.sku-label::attr(style)").get()
    assert js_object(html("E8"), "BCData")["product_attributes"]["sku"] is None  # type: ignore[index]
    broken = get(http, replica.product_url(fixture_with_quirk(replica, OS, "bcdata_not_json"))).text
    assert "var BCData" in broken and js_object(broken, "BCData") is None
    assert "Call for pricing" in html("E24")
    hidden = Selector(text=html("E25")).css(".rrp-price--withoutTax::attr(style)").get()
    assert hidden == "display: none;"
    gone = get(http, replica.product_url(fixture_with(replica, OS, "E22")))
    assert gone.status_code == 404 and "404 Error - Page not found" in gone.text
    moved = fixture_with(replica, OS, "E21")
    answer = get(http, replica.product_url(moved))
    assert (answer.status_code, answer.headers["Location"]) == (301, replica.url(OS, moved.path))
    empty = get(http, replica.url(OS, replica.shop(OS).category("g1-1975").path))
    assert "There are no products listed under this category." in empty.text  # E16
    card = page(http, replica.url(OS, replica.shop(OS).category("g1-2018").path))
    sold_out_card = card.css(
        f'article[data-entity-id="{fixture_with(replica, OS, "E4").product_id}"]'
    )
    assert "Sold Out" in sold_out_card.css(".card-figcaption-button::text").getall()


def test_ho_edge_case_markup(replica: Replica, http: requests.Session) -> None:
    def html(case: str) -> str:
        return get(http, replica.product_url(fixture_with(replica, HO, case))).text

    sale = Selector(text=html("E1"))
    assert sale.css(".saleprice #price::text").get() and sale.css(".retailprice span::text").get()
    prefixed = next(p for p in replica.shop(HO).products() if p.raw_sku == "3799QXI7109")
    shown = page(http, replica.product_url(prefixed)).css("#product_id::text").get()
    assert shown == "3799QXI7109"  # E9
    soft = get(http, replica.product_url(fixture_with(replica, HO, "E22")))
    assert soft.status_code == 200
    assert "no longer available" in soft.text and "_3d_item" not in soft.text
    unreadable = [p for p in replica.shop(HO).products() if "E23" in p.edge_cases]
    for product in unreadable:
        text = get(http, replica.product_url(product)).text
        if "no_name" in product.quirks:
            selector = Selector(text=text)
            assert not selector.css("h1") and js_object(text, "_3d_item") is None
            assert json_ld(selector) is None and product.name not in text
        else:
            assert "application/ld+json" in text and json_ld(Selector(text=text)) is None
    empty = page(http, replica.url(HO, replica.shop(HO).category("y1974").path))
    assert empty.css(".product-count::text").get().endswith(": 0")  # E16


# --- HO grid needs a browser ----------------------------------------------------------------


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from christmas_spiders.rendering.browser import CHROMIUM_FLAGS

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium'}"):  # as crawls run it
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_ho_grid_is_empty_without_a_browser(replica: Replica, http: requests.Session) -> None:
    category = replica.shop(HO).category("y2019")
    selector = page(http, replica.url(HO, category.path))
    assert selector.css("#itemsBlock") and not selector.css("#itemsBlock *")
    assert not selector.css("a[href*='_p_']")
    assert category.count > 0


def test_ho_grid_is_filled_in_chromium(replica: Replica, chromium: Any) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    category = replica.shop(HO).category("y2019")
    chromium.get(replica.url(HO, category.path) + "?viewall=1")
    count_text = chromium.find_element(By.CSS_SELECTOR, ".product-count").text
    expected = int(re.findall(r"\d+", count_text)[-1])
    WebDriverWait(chromium, 15).until(
        lambda driver: (
            len(driver.find_elements(By.CSS_SELECTOR, "#itemsBlock .product-item")) >= expected
        )
    )
    names = [a.text for a in chromium.find_elements(By.CSS_SELECTOR, ".product-item .name a")]
    assert expected == category.count
    assert [clean(n) for n in names] == [p.name for p in replica.shop(HO).listing("y2019")]
    hrefs = {
        a.get_attribute("href")
        for a in chromium.find_elements(By.CSS_SELECTOR, ".product-item .img > a")
    }
    assert hrefs == {replica.product_url(p) for p in replica.shop(HO).listing("y2019")}
    cell = '//*[@id="productCategoryBlock"]/div[4]/div/div/div[1]/div/div[1]/a'  # prototype
    assert chromium.find_element(By.XPATH, cell).get_attribute("href") in hrefs
    first = chromium.find_element(By.CSS_SELECTOR, ".product-item")
    quick = first.find_element(By.CSS_SELECTOR, "a.btn-quickview")
    assert quick.get_dom_attribute("href") is None  # set on mouseenter only
    ActionChains(chromium).move_to_element(first).perform()
    WebDriverWait(chromium, 5).until(lambda driver: quick.get_dom_attribute("href"))
    assert "product.asp?lt_c=1&itemid=" in quick.get_dom_attribute("href")


# --- control API, throttling, latency, options ----------------------------------------------


def test_control_api_changes_a_price(replica_reset: Replica, http: requests.Session) -> None:
    replica = replica_reset
    product = normal_products(replica, OS)[0]
    record = replica.set_product(OS, product.product_id, price="12.50", regular_price="15.00")
    assert record["expected_item"]["price"] == "12.50"
    assert record["expected_item"]["regular_price"] == "15.00"
    html = get(http, replica.url(OS, product.path)).text
    assert Selector(text=html).css("[data-product-price-without-tax]::text").get() == "$12.50"
    attributes = js_object(html, "BCData")["product_attributes"]  # type: ignore[index]
    assert attributes["price"]["without_tax"]["value"] == 12.5
    hooh = normal_products(replica, HOOH)[0]
    replica.set_product(HOOH, hooh.product_id, availability="unavailable")
    html = get(http, replica.url(HOOH, hooh.path)).text
    assert js_object(html, "_3d_item")["availability"] == 0  # type: ignore[index]
    assert "waitinglist-btn" in html
    replica.set_product(HO, normal_products(replica, HO)[0].product_id, gone=True)
    live = {p["vendor_product_id"]: p for p in replica.live_catalog(HO)["products"]}
    assert live[str(normal_products(replica, HO)[0].product_id)]["expect"] == "gone"
    replica.reset(OS)
    assert (
        page(http, replica.url(OS, product.path))
        .css("[data-product-price-without-tax]::text")
        .get()
        == f"${product.price:,.2f}"
    )


def test_control_api_rejects_bad_input(replica: Replica, http: requests.Session) -> None:
    url = replica.url(HOOH, "/__replica__/products/1")
    missing = http.post(url, json={"price": "1.00"}, timeout=30)
    assert missing.status_code == 404 and "error" in missing.json()
    product = normal_products(replica, HOOH)[0]
    url = replica.url(HOOH, f"/__replica__/products/{product.product_id}")
    assert http.post(url, json={"price": "abc"}, timeout=30).status_code == 400
    assert http.post(url, json={"colour": "red"}, timeout=30).status_code == 400


def test_throttling_answers_429_with_retry_after(
    replica_reset: Replica, http: requests.Session
) -> None:
    replica = replica_reset
    replica.throttle(HOOH, burst=2, retry_after=3)
    url = replica.url(HOOH, replica.shop(HOOH).index.path)
    answers = [get(http, url) for _ in range(3)]
    assert [a.status_code for a in answers] == [429, 429, 200]
    assert answers[0].headers["Retry-After"] == "3"
    replica.throttle(OS, every=2, status=503)
    statuses = [get(http, replica.url(OS, "/")).status_code for _ in range(4)]
    assert statuses == [200, 503, 200, 503]
    stats = replica.stats(OS)
    assert stats["throttled"] == 2 and stats["by_status"]["503"] == 2


def test_stats_count_requests_by_path_kind(replica_reset: Replica, http: requests.Session) -> None:
    replica = replica_reset
    product = normal_products(replica, HOOH)[0]
    get(http, replica.url(HOOH, product.path))
    get(http, replica.url(HOOH, replica.shop(HOOH).category(product.category).path))
    get(http, replica.url(HOOH, "/nothing-here"))
    stats = replica.stats(HOOH)
    assert stats["by_kind"] == {"product": 1, "category": 1, "not_found": 1}
    assert stats["by_status"] == {"200": 2, "404": 1}


def test_latency_is_added_to_every_response(replica_reset: Replica, http: requests.Session) -> None:
    replica = replica_reset
    replica.set_latency(150, HO)
    started = time.monotonic()
    assert get(http, replica.url(HO, "/")).status_code == 200
    assert time.monotonic() - started >= 0.15


@pytest.mark.slow
def test_large_replica_serves_lazily_and_stops_on_sigterm(
    start_replica: Callable[..., Replica], http: requests.Session
) -> None:
    replica = start_replica(size="large")
    index = Selector(text=get(http, replica.url(OS, "/xmlsitemap.php")).text, type="xml")
    product_pages = [
        u for u in index.xpath("//*[local-name()='loc']/text()").getall() if "type=products" in u
    ]
    assert len(product_pages) == 20
    last = Selector(text=get(http, product_pages[-1]).text, type="xml")
    assert len(last.xpath("//*[local-name()='loc']")) > 0
    shop = replica.shop(HOOH)
    biggest = max(
        (c for c in shop.categories.values() if c.role != "year" or not c.children),
        key=lambda c: c.count,
    )
    last_page = -(-biggest.count // 24)
    tail = page(http, replica.url(HOOH, biggest.path.replace(".html", f"-{last_page}-3.html")))
    assert len(tail.css("section.category-products .product-item")) == biggest.count - 24 * (
        last_page - 1
    )
    assert len(replica.live_catalog(HO, offset=19_990)["products"]) == 10
    assert replica.process is not None
    assert replica.process.stop() == 0


def test_cli_refuses_a_non_loopback_host() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.replica", "--host", "192.0.2.1"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "loopback" in result.stderr


def test_serves_100_concurrent_requests(replica: Replica) -> None:
    urls = [replica.product_url(p) for vendor in VENDORS for p in normal_products(replica, vendor)]
    urls = (urls * 2)[:100]

    def fetch(url: str) -> int:
        return requests.get(url, timeout=60).status_code

    with ThreadPoolExecutor(max_workers=100) as pool:
        statuses = list(pool.map(fetch, urls))
    assert statuses == [200] * 100


def test_replica_exits_when_its_parent_goes_away() -> None:
    process = ReplicaProcess.start(size="small")
    try:
        assert process.popen.stdin is not None
        process.popen.stdin.close()  # what a killed parent leaves behind
        assert process.popen.wait(timeout=30) == 0
    finally:
        process.stop()
