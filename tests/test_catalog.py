"""Ornaments, not listings (issue #15): the linking rules, the offline linker, its measurement
and its command, on hand-written items and the hand-labelled set tests/files/ornaments/."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from christmas_spiders.catalog import rules
from christmas_spiders.catalog.linker import (
    ITEM_NUMBER,
    NAME,
    InvalidListing,
    Ornament,
    link,
    link_all,
    listing_from_item,
    ornament_key,
)
from christmas_spiders.catalog.measure import pairwise_scores
from tests.files.ornaments import render

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LABELLED = PROJECT_ROOT / "tests" / "files" / "ornaments" / "labelled.jsonl"
HOOH, OS, HO = "hookedonhallmark_com", "ornament_shop_com", "hallmark_ornaments_com"


def item(name: str, sku: str | None = None, year: int = 2019, **fields: Any) -> dict[str, Any]:
    """A §C2 item as a feed export writes it; the link is unique per name, SKU and shop."""
    vendor = fields.pop("vendor", OS)
    return {
        "vendor": vendor,
        "vendor_product_id": "1",
        "sku": sku,
        "name": name,
        "price": "19.95",
        "release_year": year,
        "link": f"https://{vendor}/{name}/{sku}",
        "series_number": None,
        **fields,
    }


def keys(*items: dict[str, Any]) -> list[str]:
    """Each item's ornament key after linking them all together."""
    return [found.ornament.key for found in link_all([listing_from_item(i) for i in items])]


def labelled() -> list[dict[str, Any]]:
    return [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines()]


# --- rules: item number, condition, year, series number, kind, comparable name ---------------


@pytest.mark.parametrize(
    ("sku", "number"),
    [
        ("2999QXM2797", "QXM2797"),
        ("3799QXI7109", "QXI7109"),
        ("QX1571NB", "QX1571"),
        ("QX1571NT", "QX1571"),
        ("QX1571DB", "QX1571"),
        ("QX1571SDB", "QX1571"),
        ("QX1571MIB", "QX1571"),
        (" qx1571-nb ", "QX1571"),
        ("XHD1102", "XHD1102"),
    ],
)
def test_item_number_is_the_sku_without_price_code_and_condition_suffix(sku, number):
    assert rules.item_number(sku) == number


@pytest.mark.parametrize("sku", [None, "", "OS-11402", "12345", "QX12"])
def test_a_sku_that_is_no_hallmark_number_gives_no_item_number(sku):
    assert rules.item_number(sku) is None


@pytest.mark.parametrize(
    ("name", "sku", "condition"),
    [
        ("1975 Betsey Clark (Adorable)", "QX1571", rules.BOXED),
        ("1975 Betsey Clark (Adorable) NB", "QX1571", rules.NO_BOX),
        ("1975 Betsey Clark (Adorable) - No Box", None, rules.NO_BOX),
        ("1975 Betsey Clark (Adorable)", "QX1571NB", rules.NO_BOX),
        ("1982 Clothespin Soldier No Tag", None, rules.NO_TAG),
        ("1982 Clothespin Soldier", "QX4583NT", rules.NO_TAG),
        ("1978 Thimble Mouse - Damaged Box", None, rules.DAMAGED_BOX),
        ("1978 Thimble Mouse", "QX1336SDB", rules.DAMAGED_BOX),
        ("2000 Toymaker Santa - Mint in Box", "QX8024MIB", rules.BOXED),
        ("1980 Frosty Friends No Box, No Tag", None, rules.NO_BOX),
    ],
)
def test_condition_comes_from_the_name_and_the_sku_suffix(name, sku, condition):
    assert rules.condition(name, sku) == condition


@pytest.mark.parametrize(
    ("name", "release_year", "year"),
    [
        ("2015 Star Wars Darth Vader Helmet", 2016, 2015),
        ("Yuletide Central 1994", 1995, 1994),
        ("Hallmark 1994 Yuletide Central NB", 1995, 1994),
        ("Star Wars Darth Vader Helmet", 2016, 2016),
        ("1955 Murray Champion", 1994, 1994),  # 1955 is before the first Keepsake year
    ],
)
def test_the_year_is_the_one_the_name_starts_or_ends_with_else_the_release_year(
    name, release_year, year
):
    assert listing_from_item(item(name, year=release_year)).year == year


@pytest.mark.parametrize(
    "name",
    [
        "2025 Frosty Friends #46",
        "2025 Frosty Friends No. 46",
        "2025 Frosty Friends 46th in Series",
        "2025 Frosty Friends 46th in Frosty Friends Series",
        "2025 Frosty Friends #46 in the Frosty Friends Series",
        "2025 Frosty Friends (46th in Series)",
        "2025 Hallmark Keepsake Frosty Friends Ornament 46th",
    ],
)
def test_series_number_forms_read_alike(name):
    parts = rules.parse_name(name)
    assert (parts.series_number, parts.form.words, parts.year) == (46, ("frosty", "friends"), 2025)


def test_the_series_number_stated_on_the_page_comes_first():
    listing = listing_from_item(item("2019 Nostalgic Rocking Horse", series_number=5))
    assert listing.series_number == 5


@pytest.mark.parametrize(
    ("name", "sku", "flags"),
    [
        ("1994 Rocking Horse Miniature", None, {rules.MINIATURE}),
        ("1994 Mini Rocking Horse", None, {rules.MINIATURE}),
        ("1994 Rocking Horse", "QXM5116", {rules.MINIATURE}),
        ("2017 Millennium Falcon with Light & Sound", None, {rules.LIGHT_AND_SOUND}),
        ("2017 Millennium Falcon Magic", None, {rules.MAGIC}),
        ("2012 Polar Express Locomotive", "QLX7204", {rules.MAGIC}),
        ("2008 Toymaker Santa Artist Signed", None, {rules.SIGNED}),
        ("2014 Darth Vader Limited Edition", None, {rules.LIMITED}),
        ("2010 Here Comes Santa - Keepsake Ornament Club", None, {rules.CLUB}),
        ("1996 Holiday Barbie", "QXC4181", {rules.CLUB}),
        ("2019 Frosty Friends", "QX9197", set()),
    ],
)
def test_kind_flags_come_from_name_words_and_item_number_prefixes(name, sku, flags):
    assert listing_from_item(item(name, sku)).flags == flags


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("1994 Mrs. Claus' Cupboard", "1994 Mrs Claus's Cupboard"),
        ("2019 Mickey & Minnie; Holiday Sweethearts", "2019 Mickey and Minnie Holiday Sweethearts"),
        ("2018 Feliz Navidad Piñata — Llama", "2018 Feliz Navidad Pinata Llama"),
        ("2019 Star Wars™: Darth Vader™", "2019 Star Wars Darth Vader Hallmark Keepsake Ornament"),
        ("2013 Mary's Angels", "2013 Marys Angels"),
        ("2018 Mickey and Donald's Sleigh Ride", "2018 Mickey and Donald Sleigh Ride"),
        ("2019 Gift Wrap Penguin", "2019 Giftwrap Penguin"),
        ("2019 Elf Buddy the Elf", "2019 Buddy the Elf™ Elf"),
        ("2012 Baby's First Christmas", "2012 Baby's 1st Christmas"),
        ("1998 Disney Mulan, Mushu & Cri-Kee", "1998 Mulan Mushu and Cri Kee"),
        ("1975 Betsey Clark (Adorable) NB", "1975 Betsey Clark Adorable"),
    ],
)
def test_names_written_differently_by_shops_are_one_name(one, other):
    first, second = keys(item(one), item(other))
    assert first == second


def test_a_name_that_adds_a_word_is_another_ornament():
    first, second = keys(item("2016 Snowman"), item("2016 Snowman Photo Holder"))
    assert first != second


# --- the linker ------------------------------------------------------------------------------


def test_same_year_and_item_number_is_one_ornament_across_shops():
    found = keys(
        item("2019 Frosty Friends", "QX9197", vendor=HOOH),
        item("2019 Frosty Friends 40th in Series", "QX9197", vendor=OS),
        item("2019 Frosty Friends 40th in Frosty Friends Series", "1999QX9197", vendor=HO),
    )
    assert found == ["2019:QX9197"] * 3


def test_item_numbers_are_unique_within_a_year_not_across_years():
    first, second = keys(
        item("1994 Holiday Barbie", "QX5216", year=1994),
        item("2004 Snow Angel", "QX5216", year=2004),
    )
    assert (first, second) == ("1994:QX5216", "2004:QX5216")


def test_two_item_numbers_are_never_one_ornament_whatever_the_names():
    first, second = keys(
        item("1995 Cheerful Santa", "QX5149"), item("1995 Cheerful Santa", "QX5147")
    )
    assert first != second


def test_boxed_and_unboxed_listings_are_two_offers_of_one_ornament():
    items = [
        item("1975 Betsey Clark (Adorable)", "QX1571", year=1975, vendor=HOOH),
        item("1975 Betsey Clark (Adorable) NB", "QX1571NB", year=1975, vendor=HO),
        item("1975 Betsey Clark Adorable No Box", None, year=1975, vendor=OS),
    ]
    listings = [listing_from_item(i) for i in items]
    found = link_all(listings)
    assert {made.ornament.key for made in found} == {"1975:QX1571"}
    assert [listing.condition for listing in listings] == [rules.BOXED, rules.NO_BOX, rules.NO_BOX]


def test_a_listing_without_item_number_joins_by_name_year_and_series_number():
    with_number = item("2025 Frosty Friends", "QX9107", year=2025, series_number=46, vendor=HOOH)
    without = item("2025 Frosty Friends #46", None, year=2025, vendor=OS)
    found = link_all([listing_from_item(with_number), listing_from_item(without)])
    assert [(made.ornament.key, made.method) for made in found] == [
        ("2025:QX9107", ITEM_NUMBER),
        ("2025:QX9107", NAME),
    ]


def test_the_year_in_the_name_decides_which_ornament_a_listing_joins():
    found = keys(
        item("2015 Star Wars Darth Vader Helmet", "QXI2787", year=2015, vendor=HOOH),
        item("2015 Star Wars Darth Vader Helmet", None, year=2016, vendor=OS),
        item("Star Wars Darth Vader Helmet", "QXI2996", year=2016, vendor=HO),
    )
    assert found == ["2015:QXI2787", "2015:QXI2787", "2016:QXI2996"]


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (item("2018 Snowflake Ballerina", year=2018), item("2005 Snowflake Ballerina", year=2005)),
        (item("2013 Mary's Angels #26"), item("2013 Mary's Angels 27th in Mary's Angels Series")),
        (item("1994 Rocking Horse", "QX5016"), item("1994 Rocking Horse Miniature")),
        (item("1994 Rocking Horse"), item("1994 Rocking Horse", "QXM5116")),
        (item("2017 Millennium Falcon", "QXI3412"), item("2017 Millennium Falcon Light and Sound")),
        (item("2016 Darth Vader Helmet"), item("2016 Darth Vader Helmet Magic")),
        (item("2008 Toymaker Santa #9", "QXG4021"), item("2008 Toymaker Santa #9 Signed Edition")),
        (item("2014 Darth Vader", "QXI2953"), item("2014 Darth Vader Limited Edition")),
        (item("2010 Here Comes Santa #32", "QXG4033"), item("2010 Here Comes Santa Club")),
        (item("2016 Snowman", "QXG3051"), item("2016 Snowman Photo Holder")),
        (item("2015 Nephew", "QXG2337"), item("2015 Niece")),
        (item("2018 Mickey's Sleigh Ride"), item("2018 Mickey and Donald's Sleigh Ride")),
        (item("2019 Mailbox Kitten", "QX9237"), item("2019 Mailbox Kittens")),
        (item("2005 Little Drummer Mouse", "QX2171"), item("2005 Little Drummer Moose")),
        (item("2018 Snowman Family"), item("2018 Snowmen Family")),
        (item("2019 Pony Ride Santa"), item("2019 Pony Rider Santa")),
        (item("2016 Grandma"), item("2016 Grandpa")),
    ],
)
def test_hard_negatives_are_different_ornaments(one, other):
    first, second = keys(one, other)
    assert first != second


def test_a_one_letter_typo_still_links_by_name_with_a_lower_score():
    listings = [
        listing_from_item(item("2019 Harbor Lighthouse", "QX9179")),
        listing_from_item(item("2019 Harbor Ligthouse")),
    ]
    typo = link_all(listings)[1]
    assert (typo.ornament.key, typo.method) == ("2019:QX9179", NAME)
    assert 85 <= typo.score < 100


def test_a_name_that_fits_two_ornaments_is_not_linked():
    found = keys(
        item("1995 Cheerful Santa", "QX5149"),
        item("1995 Cheerful Santa", "QX5147"),
        item("1995 Cheerful Santa"),
    )
    assert found[2] not in found[:2]


def test_a_listing_with_no_name_words_is_an_ornament_of_its_own():
    found = keys(item("2019 Hallmark Keepsake Ornament"), item("2019 Keepsake Ornament"))
    assert found[0] != found[1]


def test_ornament_key_of_a_name_only_listing_reads_year_words_and_series_number():
    listing = listing_from_item(item("1994 Yuletide Central 1st in Series", year=1994))
    assert ornament_key(listing) == "1994:name:central yuletide|1"


def test_link_picks_among_candidates_by_score_then_stated_series_number():
    def ornament(number: str, series_number: int | None) -> Ornament:
        found = listing_from_item(item("2019 Frosty Friends", number, series_number=series_number))
        return Ornament.founded(ornament_key(found), [found])

    listing = listing_from_item(item("2019 Frosty Friends #40"))
    made = link(listing, [ornament("QX9100", None), ornament("QX9197", 40)])
    assert made is not None
    assert (made.ornament.key, made.method, made.score) == ("2019:QX9197", NAME, 100.0)


def test_link_with_no_candidate_of_its_year_links_nothing():
    listing = listing_from_item(item("2019 Frosty Friends #40"))
    older = listing_from_item(item("2018 Frosty Friends", "QX9049", year=2018))
    assert link(listing, [Ornament.founded(ornament_key(older), [older])]) is None


# Name-only listings whose links depend on each other: numbered and unnumbered names, typos.
INTERLOCKED = [
    item(name, vendor=vendor)
    for name in (
        "2019 Frosty Friends #40",
        "2019 Frosty Friends #41",
        "2019 Frosty Friends",
        "2019 Frosty Freinds",
        "2019 Yuletide Central",
        "2019 Yuletide Centeral",
        "2019 Yuletide Cnetral #3",
        "2019 Snow Man",
        "2019 Snowman #3",
        "2019 Mary's Angels",  # one key with "Marys Angels", two readings
        "2019 Marys Angels",
    )
    for vendor in (HOOH, OS)
] + [item("2019 Mary Angels", "QX9001", vendor=HO)]
ALL_LISTINGS = [listing_from_item(found) for found in labelled() + INTERLOCKED]


@settings(max_examples=15, deadline=None, derandomize=True)
@given(st.permutations(range(len(ALL_LISTINGS))))
def test_link_all_does_not_depend_on_the_order_listings_arrive_in(order):
    in_order = link_all(ALL_LISTINGS)
    shuffled = dict(zip(order, link_all([ALL_LISTINGS[i] for i in order]), strict=True))
    assert [shuffled[i] for i in range(len(order))] == in_order


@settings(max_examples=15, deadline=None, derandomize=True)
@given(st.permutations(range(5)))
def test_link_does_not_depend_on_the_order_of_candidates(order):
    candidates = []
    for number in ("QX9100", "QX9101", "QX9102"):
        found = listing_from_item(item("2019 Frosty Friends Snowman", number))
        candidates.append(Ornament.founded(ornament_key(found), [found]))
    for name in ("2019 Frosty Friends Snowmen", "2019 Frosty Friend Snowman"):
        found = listing_from_item(item(name))
        candidates.append(Ornament.founded(ornament_key(found), [found]))
    listing = listing_from_item(item("2019 Frosty Friends Snowmen"))
    expected = link(listing, candidates)
    assert expected is not None and expected.ornament.key == candidates[3].key
    assert link(listing, [candidates[i] for i in order]) == expected


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": None}, "name is missing"),
        ({"name": "  "}, "name is missing"),
        ({"vendor": None}, "vendor is missing"),
        ({"name": "Snowman", "release_year": None}, "release_year is missing"),
        ({"release_year": "soon"}, "release_year must be a positive whole number"),
        ({"release_year": 1901, "name": "Snowman"}, "not a Keepsake year"),
        ({"sku": 1571}, "sku must be a string"),
        ({"series_number": True}, "series_number must be a positive whole number"),
    ],
)
def test_an_unusable_item_is_rejected_with_the_field_named(changes, message):
    with pytest.raises(InvalidListing, match=message):
        listing_from_item({**item("2019 Frosty Friends"), **changes})


# --- measurement and the hand-labelled set ---------------------------------------------------


def test_pairwise_scores_count_pairs_of_listings():
    # truth: {0,1,2} {3}; predicted: {0,1} {2,3} → 1 of 2 predicted pairs right, 1 of 3 found
    scores = pairwise_scores(["a", "a", "b", "b"], ["x", "x", "x", "y"])
    assert (scores.predicted_pairs, scores.true_pairs, scores.correct_pairs) == (2, 3, 1)
    assert (scores.precision, round(scores.recall, 4), scores.f1) == (0.5, 0.3333, 0.4)


def test_the_labelled_set_is_its_source_rendered():
    assert labelled() == render.read()


def test_the_labelled_set_covers_three_shops_and_enough_listings():
    items = labelled()
    assert len(items) >= 300
    assert {found["vendor"] for found in items} == {HOOH, OS, HO}


def test_the_linker_meets_the_goal_on_the_labelled_set():
    items = labelled()
    found = link_all([listing_from_item(found) for found in items])
    scores = pairwise_scores([made.ornament.key for made in found], [i["truth"] for i in items])
    assert scores.precision >= 0.995, scores
    assert scores.f1 >= 0.99, scores


# --- the command -----------------------------------------------------------------------------


def run_link(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "christmas_spiders.catalog", "link", *map(str, paths)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def write_lines(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_the_link_command_prints_one_ornament_per_item_of_every_file(tmp_path):
    hooh = write_lines(
        tmp_path / "hooh.jsonl",
        json.dumps(item("1994 Yuletide Central", "QX5316", year=1994, vendor=HOOH)),
    )
    shop = write_lines(
        tmp_path / "os.jsonl",
        json.dumps(item("1994 Yuletide Central 1st in Series NB", None, year=1994, vendor=OS)),
        json.dumps(item("1995 Yuletide Central #2", None, year=1995, vendor=OS)),
    )
    result = run_link(hooh, shop)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [
        (line["vendor"], line["ornament"], line["condition"], line["method"]) for line in lines
    ] == [
        (HOOH, "1994:QX5316", "boxed", "item_number"),
        (OS, "1994:QX5316", "no_box", "name"),
        (OS, "1995:name:central yuletide|2", "boxed", "name"),
    ]
    assert lines[0]["link"] == item("1994 Yuletide Central", "QX5316", vendor=HOOH)["link"]
    assert [line["score"] for line in lines] == [100.0, 100.0, 100.0]


def test_the_link_command_reports_bad_lines_and_links_the_rest(tmp_path):
    path = write_lines(
        tmp_path / "items.jsonl",
        json.dumps(item("2019 Frosty Friends", "QX9197")),
        "{not json",
        json.dumps(item("", "QX9197")),
        "",
        json.dumps(item("2019 Frosty Friends #40", None)),
    )
    result = run_link(path)
    assert result.returncode == 1
    assert f"{path}:2: not JSON" in result.stderr
    assert f"{path}:3: name is missing" in result.stderr
    assert [json.loads(line)["ornament"] for line in result.stdout.splitlines()] == [
        "2019:QX9197",
        "2019:QX9197",
    ]


def test_the_link_command_stops_on_a_missing_file_before_any_output(tmp_path):
    good = write_lines(tmp_path / "good.jsonl", json.dumps(item("2019 Frosty Friends", "QX9197")))
    result = run_link(good, tmp_path / "missing.jsonl")
    assert (result.returncode, result.stdout) == (2, "")
    assert "missing.jsonl" in result.stderr


def test_the_bench_script_links_the_replica_listings_it_generates():
    from bench.ornament_linking import measure_rows

    labelled_row, as_generated, without_skus = measure_rows(quick=True, detail=lambda *_: None)
    assert labelled_row.met
    assert as_generated.ratio_goal == "P 1.0000 / R 1.0000 / F1 1.0000"
    assert without_skus.ratio_goal.startswith("P 1.0000")
