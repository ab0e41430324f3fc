"""Normalization table tests: every price, availability and name case of vendor-sites.md §4."""

from __future__ import annotations

from decimal import Decimal

import pytest

from christmas_spiders import normalize


@pytest.mark.parametrize(
    ("shown", "expected"),
    [
        ("$17.95", Decimal("17.95")),  # plain
        ("$1,299.00", Decimal("1299.00")),  # E2 thousands separator
        (1299, Decimal("1299.00")),  # E2 _3d_item.price / BCData value
        (24.95, Decimal("24.95")),  # JSON number
        ("24.95", Decimal("24.95")),  # microdata content
        ("\n  $24.95&nbsp;\n", Decimal("24.95")),  # E1 sale markup whitespace and &nbsp;
        ("Price:&nbsp;$28.95", Decimal("28.95")),  # HO grid hidden label
        ("$19.9", Decimal("19.90")),
        ("Call for pricing", None),  # E24
        ("$0.00", None),  # E24
        (0, None),
        ("", None),  # E3 hidden empty span
        (None, None),
    ],
)
def test_parse_price(shown: object, expected: Decimal | None) -> None:
    assert normalize.parse_price(shown) == expected


@pytest.mark.parametrize("shown", [-5, float("nan"), float("inf")])
def test_parse_price_rejects_impossible_numbers(shown: object) -> None:
    with pytest.raises(ValueError, match="not a price"):
        normalize.parse_price(shown)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("In Stock - Ships Next Business Day", "available"),  # HooH
        ("In Stock - Usually ships in 1 business day", "available"),  # OS
        ("New Release - In Stock", "available"),  # OS
        ("In Stock", "available"),
        ("Out of Stock", "unavailable"),  # E4
        ("Sold Out", "unavailable"),  # E4 OS alert
        ("Sold Out - Join the Waiting List", "unavailable"),  # E4 HooH
        ("Put me on the Waiting List", "unavailable"),  # E4 3dcart button
        ("Retired - Sold Out", "unavailable"),  # E6
        ("Currently not in stock", "unavailable"),  # E7: contains "in stock"
        ("Not available", "unavailable"),
        ("Pre-Order - Expected to ship October 2025", "preorder"),  # E5 HooH
        ("Pre-Order Now", "preorder"),  # E5 OS button
        ("PreOrder", "preorder"),
        ("New Release", None),  # E7: says nothing about stock
        ("https://schema.org/OutOfStock", "unavailable"),
        ("http://schema.org/InStock", "available"),
        ("available", "available"),
        ("", None),
        (None, None),
    ],
)
def test_availability_from_text(text: str | None, expected: str | None) -> None:
    assert normalize.availability_from_text(text) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://schema.org/PreOrder", "preorder"),
        ("http://schema.org/InStock", "available"),
        ("OutOfStock", "unavailable"),
        ("https://schema.org/SoldOut", "unavailable"),
        ("https://schema.org/Unknown", None),
    ],
)
def test_availability_from_schema(value: str, expected: str | None) -> None:
    assert normalize.availability_from_schema(value) == expected


@pytest.mark.parametrize(
    ("shown", "expected"),
    [
        (" qx1571nb ", "QX1571NB"),  # E9 whitespace / lower case
        ("QX1571", "QX1571"),  # E9 box variant stays distinct
        ("3799QXI7109", "3799QXI7109"),  # E9 price prefix kept as shown
        ("", None),  # E8
        (None, None),  # E8 BCData sku null
    ],
)
def test_clean_sku(shown: str | None, expected: str | None) -> None:
    assert normalize.clean_sku(shown) == expected


@pytest.mark.parametrize(
    ("shown", "expected"),
    [
        ("1994 Mrs. Claus&#39; Cupboard", "1994 Mrs. Claus' Cupboard"),  # E10
        ("&quot;Peanuts&quot; Charlie Brown", '"Peanuts" Charlie Brown'),  # E10
        ("1998 Santa\u2019s Sleigh", "1998 Santa\u2019s Sleigh"),  # E10 curly apostrophe kept
        ("Mickey &amp; Minnie", "Mickey & Minnie"),  # E11
        ("Star Wars™: Darth Vader™", "Star Wars™: Darth Vader™"),  # E11
        ("No\u0065\u0308l", "No\u00ebl"),  # E11 decomposed → NFC
        ("Pin\u0303ata", "Pi\u00f1ata"),  # E11
        ("Frosty\u00a0Friends \u2014  40th", "Frosty Friends \u2014 40th"),  # E11 nbsp, em dash
        ("  2019\n Nostalgic\tRocking Horse ", "2019 Nostalgic Rocking Horse"),
        ("   ", None),
    ],
)
def test_clean_text(shown: str, expected: str | None) -> None:
    assert normalize.clean_text(shown) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("2019 Frosty Friends 40th in Series", ("Frosty Friends", 40)),
        ("1995 Frosty Friends 16th in Frosty Friends Series", ("Frosty Friends", 16)),
        ("2003 Nostalgic Rocking Horse 23rd in the Series", ("Nostalgic Rocking Horse", 23)),
        ("1981 Rocking Horse 1st in Series", ("Rocking Horse", 1)),
        ("1975 Betsey Clark (Adorable) NB", None),
        ("Frosty Friends 40th in Series", None),  # the pattern starts with the year
    ],
)
def test_series_from_name(name: str, expected: tuple[str, int] | None) -> None:
    assert normalize.series_from_name(name) == expected


def test_series_from_text() -> None:
    text = "5th in the Nostalgic Rocking Horse series. Dated 2019."
    assert normalize.series_from_text(text) == ("Nostalgic Rocking Horse", 5)
    assert normalize.series_from_text("A lovely ornament.") is None


@pytest.mark.parametrize(
    ("name", "year"),
    [("1994 Mrs. Claus' Cupboard", 1994), ("2024 Jabba's Barge", 2024), ("Betsey Clark", None)],
)
def test_year_in_name(name: str, year: int | None) -> None:
    assert normalize.year_in_name(name) == year
