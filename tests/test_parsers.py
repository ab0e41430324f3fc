"""Parse functions on replica pages: selector in, fields out, for every product of each shop.

Pages are fetched once over HTTP from the session replica; the parsers themselves do no I/O.
"""

from __future__ import annotations

from decimal import Decimal
from functools import cache
from importlib import import_module
from types import ModuleType
from urllib.parse import urlsplit

import pytest
import requests
from parsel import Selector

from christmas_spiders import normalize
from christmas_spiders.parsers import hallmark_ornaments_com as ho
from christmas_spiders.parsers import hookedonhallmark_com as hooh
from christmas_spiders.parsers import ornament_shop_com as os_shop

from .replica.client import Replica

VENDORS = ("hookedonhallmark_com", "ornament_shop_com", "hallmark_ornaments_com")


@cache
def _fetch(url: str) -> tuple[int, str, str]:
    response = requests.get(url, timeout=30)
    return response.status_code, response.url, response.text


def page(url: str) -> tuple[int, Selector, str]:
    status, final_url, text = _fetch(url)
    return status, Selector(text=text), final_url


def parser(vendor: str) -> ModuleType:
    return import_module(f"christmas_spiders.parsers.{vendor}")


def as_stored(fields: dict) -> dict:
    """What the normalize pipeline makes of parsed fields (the parser leaves shop text)."""
    return {
        **fields,
        "sku": normalize.clean_sku(fields["sku"]),
        "name": normalize.clean_text(fields["name"]),
        "availability": normalize.availability_from_text(fields["availability"]),
        "artist": None if (fields["artist"] or "").upper() in ("NA", "N/A") else fields["artist"],
    }


@pytest.mark.parametrize("vendor", VENDORS)
def test_every_product_page_parses_to_its_ground_truth(vendor: str, replica: Replica) -> None:
    shop, origin = replica.shop(vendor), replica.base_urls[vendor]
    wrong, edge_cases = [], set()
    for product in shop.products():
        status, selector, url = page(replica.product_url(product))
        result = parser(vendor).parse_product(selector, url)
        expected = product.expected(origin)
        if expected is None:
            # Deleted, retired or unreadable: a 404, or no item from the page.
            assert status == 404 or result.fields is None, product.note
            edge_cases.update(product.edge_cases)
            continue
        assert status == 200 and result.fields is not None, f"{url}: {result}"
        fields = as_stored(result.fields)
        # Every field of the item but the vendor, which the spider adds: a parser that drops
        # a field, or returns one the item does not have, fails here.
        wanted = {name: value for name, value in expected.as_dict().items() if name != "vendor"}
        assert set(fields) == set(wanted), f"{url}: fields {sorted(set(fields) ^ set(wanted))}"
        for name, value in wanted.items():
            if fields[name] != value:
                wrong.append(f"{url} {name}: expected {value!r}, got {fields[name]!r}")
        edge_cases.update(product.edge_cases)
    assert wrong == []
    assert len(edge_cases) >= 8  # the product-level edge cases this shop carries


@pytest.mark.parametrize(
    ("shown", "expected"),
    [("$1,299.00", Decimal("1299.00")), ("Call for pricing", None)],
)
def test_prices_on_pages_go_through_the_shared_normalizer(shown: str, expected) -> None:
    selector = Selector(
        text=f'<form id="add"></form><h1 itemprop="name">X</h1><span id="price">{shown}</span>'
    )
    assert hooh.parse_product(selector, "http://x.test/p").fields["price"] == expected


def test_a_struck_price_is_the_pre_sale_price_beside_a_higher_retail_price() -> None:
    """HooH on sale with an MSRP block: the struck-through amount is the regular price (E3)."""
    selector = Selector(
        text='<form id="add"><h1 itemprop="name">X</h1><div class="saleprice price">On Sale: '
        '<del class="original-price">$37.95</del> <span id="price" class="sale-price">$36.95'
        '</span></div><div class="retailprice">Retail Price: <span>$47.95</span></div></form>'
    )
    fields = hooh.parse_product(selector, "http://x.test/p").fields
    assert (fields["price"], fields["regular_price"]) == (Decimal("36.95"), Decimal("37.95"))


def test_hooh_year_index_keeps_only_year_tiles(replica: Replica) -> None:
    _, selector, url = page(
        replica.url("hookedonhallmark_com", "/keepsake-hallmark-ornaments-by-year.html")
    )
    links = hooh.year_links(selector, url)
    years = [year for year, _ in links]
    expected = sorted({c.year for c in replica.shop("hookedonhallmark_com").year_categories()})
    assert sorted(set(years)) == expected
    assert all(link.startswith(replica.base_urls["hookedonhallmark_com"]) for _, link in links)


def test_hooh_segmented_year_offers_its_view_all_and_ignores_featured(replica: Replica) -> None:
    shop = replica.shop("hookedonhallmark_com")
    segmented = next(c for c in shop.year_categories() if c.year == 2019)
    _, selector, url = page(replica.url("hookedonhallmark_com", segmented.path))
    listing = hooh.parse_listing(selector, url)
    assert listing.view_all_category and "View-All" in listing.view_all_category
    assert listing.products == []  # the featured block is not the listing (E13)


def test_os_year_index_keeps_regular_and_miniature_lists(replica: Replica) -> None:
    _, selector, url = page(replica.url("ornament_shop_com", "/hallmark-ornaments-by-year.html"))
    links = os_shop.year_links(selector, url)
    assert all("price_min" not in link for _, link in links)  # Shop By Price is no year (E18)
    kinds = {("Miniature" in link, year) for year, link in links}
    assert any(mini for mini, _ in kinds) and any(not mini for mini, _ in kinds)
    years_with_both = {y for mini, y in kinds if mini} & {y for mini, y in kinds if not mini}
    assert years_with_both  # 1994 regular and 1994 miniature both crawl


def test_os_listing_stops_on_the_last_page(replica: Replica) -> None:
    shop = replica.shop("ornament_shop_com")
    category = max(shop.year_categories(), key=lambda c: len(shop.listing(c.key)))
    url = replica.url("ornament_shop_com", category.path)
    pages = 0
    while url:
        pages += 1
        _, selector, final = page(url)
        products, url = os_shop.parse_listing(selector, final)
        assert products
        assert pages < 50
    assert pages == -(-len(shop.listing(category.key)) // 12)


def test_ho_year_index_reads_year_from_path_not_port(replica: Replica) -> None:
    _, selector, url = page(
        replica.url("hallmark_ornaments_com", "/Hallmark-Ornaments-By-Year_c_200.html")
    )
    links = ho.year_links(selector, url)
    assert links and all(1973 <= year <= 2026 for year, _ in links)
    assert all(urlsplit(link).path.startswith(f"/{year}") for year, link in links)
    assert len({year for year, _ in links}) < len(links)  # a year with a miniature list too


def test_ho_grid_is_empty_without_a_browser(replica: Replica) -> None:
    shop = replica.shop("hallmark_ornaments_com")
    category = next(c for c in shop.year_categories() if shop.listing(c.key))
    _, selector, url = page(replica.url("hallmark_ornaments_com", category.path + "?viewall=1"))
    assert ho.grid_is_unfilled(selector)
    listing = ho.parse_listing(selector, url)
    assert listing.products == []
    assert listing.expected_count == len(shop.listing(category.key))
