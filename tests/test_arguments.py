"""Spider arguments (§C1): parsed and refused before any request."""

from __future__ import annotations

import pytest

from christmas_spiders import arguments
from christmas_spiders.arguments import ArgumentError, CrawlTarget

SHOP = ("http://127.0.0.1:8001", "https://www.ornament-shop.com")


@pytest.mark.parametrize(
    ("value", "years"),
    [
        ("2019", (2019,)),
        ("2015-2017", (2015, 2016, 2017)),
        ("2003,1998", (1998, 2003)),
        (" 1998 , 2001-2002 ", (1998, 2001, 2002)),
        ("1973", (1973,)),
    ],
)
def test_years(value: str, years: tuple[int, ...]) -> None:
    assert arguments.parse_years(value) == years


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("19x9", "'19x9' is not"),
        ("1972", "'1972' is not"),
        ("2019-2015", "runs backwards"),
        ("2019,", "'' is not"),
        ("3019", "'3019' is not"),
    ],
)
def test_bad_years(value: str, message: str) -> None:
    with pytest.raises(ArgumentError, match=message):
        arguments.parse_years(value)


def test_target_modes() -> None:
    assert arguments.parse_target({}, SHOP) == CrawlTarget()
    assert arguments.parse_target({"year": "2019"}, SHOP).mode == "years"
    url = "http://127.0.0.1:8001/1998-mulan/"
    assert arguments.parse_target({"url": url}, SHOP) == CrawlTarget(url=url)
    assert arguments.parse_target({"product_id": "42"}, SHOP) == CrawlTarget(product_id=42)
    quick = arguments.parse_target({"mode": "quick", "refresh": "Spread"}, SHOP)
    assert (quick.sync, quick.refresh) == ("quick", "spread")
    assert arguments.parse_target({"mode": "quick"}, SHOP).refresh is None  # the schedule's


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"year": "2019", "url": "http://127.0.0.1:8001/x"}, "at most one of"),
        ({"url": "https://www.hookedonhallmark.com/x_p_1.html"}, "is not on this shop"),
        ({"url": "ftp://127.0.0.1:8001/x"}, "must be an http"),
        ({"product_id": "abc"}, "must be a products.id number"),
        ({"mode": "quick", "refresh": "daily"}, "refresh must be spread or overdue"),
        ({"refresh": "spread"}, "add mode=quick"),
    ],
)
def test_bad_targets(given: dict[str, str], message: str) -> None:
    with pytest.raises(ArgumentError, match=message):
        arguments.parse_target(given, SHOP)


@pytest.mark.parametrize(
    ("value", "origin"),
    [("http://127.0.0.1:8001/", "http://127.0.0.1:8001"), ("https://x.test", "https://x.test")],
)
def test_base_url(value: str, origin: str) -> None:
    assert arguments.parse_base_url(value) == origin


@pytest.mark.parametrize("value", ["127.0.0.1:8001", "http://x.test/shop/", "file:///tmp"])
def test_bad_base_url(value: str) -> None:
    with pytest.raises(ArgumentError, match="base_url must be an origin"):
        arguments.parse_base_url(value)


def test_unknown_arguments_are_named() -> None:
    assert arguments.unknown_arguments({"yaer": "2019", "year": "2019"}) == ["yaer"]
