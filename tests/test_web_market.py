"""The market pages' year index (issue #21): `/market/years` (a chart comparing years, a small
chart per year) and `/market/years/<year>` (its chart with the ornaments behind each point),
on the hand-made histories of tests/test_market.py (the 2015 index: an ornament whose price
rises, one that sells out, one that appears); the charts' geometry on its own
(webapi/web/index_charts.py); every market table's cells named for the phone's cards."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from webapi.web import index_charts

from . import test_market
from .test_web import page, text

# The market tests' fixtures: their catalog and hand-made histories, and a client of the app.
catalog, client, histories = test_market.catalog, test_market.client, test_market.histories


def test_year_page_draws_the_index_and_the_ornaments_behind_it(client, histories) -> None:
    tree = page(client, "/market/years/2015", days=7)
    wide, narrow = tree.cssselect("svg.index-chart")
    assert (wide.get("class"), narrow.get("class")) == (
        "price-chart index-chart wide",
        "price-chart index-chart narrow",
    )
    for svg in (wide, narrow):
        (line,) = svg.cssselect('g.series[data-year="2015"]')
        points = line.cssselect("circle.point")
        assert len(points) == 7  # a priced ornament every day of the week
        assert "104.88 (2 priced, 2 matched)" in text(points[-1])
        assert len(svg.cssselect("g.counts rect.priced")) == 7
    # The table and its CSV stay.
    assert [text(td) for td in tree.cssselect("td[data-label=Index]")][-1] == "104.88"
    assert tree.cssselect('caption a[href^="/market/years/2015.csv"]')
    assert "Brought up to date after every crawl; as of" in text(tree.cssselect("main p")[0])
    (current,) = tree.cssselect('header nav a[aria-current="page"]')
    assert text(current) == "Year index"


def test_a_year_without_a_priced_ornament_says_so(client, histories) -> None:
    tree = page(client, "/market/years/1990", days=7)
    assert not tree.cssselect("svg.index-chart")
    assert "No 1990 ornament was priced boxed" in text(tree.cssselect("p.empty")[0])


def test_years_page_compares_the_newest_priced_years(client, histories) -> None:
    tree = page(client, "/market/years")
    wide = tree.cssselect("svg.index-chart.wide")[0]
    drawn = [g.get("data-year") for g in wide.cssselect("g.series")]
    assert "2015" in drawn and len(drawn) <= 10
    assert drawn == sorted(drawn, reverse=True)
    assert [text(entry) for entry in wide.cssselect("g.legend text")] == drawn
    rows = [row.get("data-year") for row in tree.cssselect("table.years tr.year")]
    smalls = tree.cssselect("ul.small-multiples a")
    assert rows == drawn == [link.get("href").split("?")[0].rsplit("/", 1)[1] for link in smalls]
    assert smalls[0].cssselect("svg.index-chart.small")
    checked = [box.get("value") for box in tree.cssselect("input[name=year][checked]")]
    assert checked == drawn


def test_years_page_compares_the_years_asked_for(client, histories) -> None:
    tree = page(client, "/market/years?year=2015&year=2014&days=7&condition=boxed")
    wide = tree.cssselect("svg.index-chart.wide")[0]
    assert [g.get("data-year") for g in wide.cssselect("g.series")] == ["2015", "2014"]
    (row,) = tree.cssselect('tr.year[data-year="2015"]')
    assert text(row.cssselect("td[data-label=Index]")[0]) == "104.88"
    (link,) = tree.cssselect('ul.small-multiples a[href^="/market/years/2015?"]')
    assert "days=7" in link.get("href")


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("year=20x5", "year"),
        ("year=1066", "year"),
        ("&".join(f"year={2000 + n}" for n in range(13)), "at most 12 years"),
        ("days=1", "days"),
        ("condition=mint", "condition"),
        ("colour=red", "colour"),
    ],
)
def test_bad_years_input_is_a_400_page(client, query, named) -> None:
    response = client.get(f"/market/years?{query}")
    assert response.status_code == 400
    assert named in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "url",
    ["/market/gaps", "/market/rare", "/market/years", "/market/years/2015?days=7"],
)
def test_every_market_table_cell_is_named_for_the_phone_cards(client, histories, url) -> None:
    tree = page(client, url)
    cells = tree.cssselect("main table td")
    assert cells and all(cell.get("data-label") for cell in cells)
    assert len(tree.cssselect("main table tbody tr")) == len(tree.cssselect("main tbody th"))


# --- the charts on their own -----------------------------------------------------------------


def _points(start: date, values: list[tuple[str, int]]) -> list[index_charts.IndexPoint]:
    return [
        index_charts.IndexPoint(start + timedelta(days=n), Decimal(index), priced, priced)
        for n, (index, priced) in enumerate(values)
    ]


def test_index_lines_break_where_nothing_was_priced_and_start_with_the_first_priced_day() -> None:
    start = date(2025, 11, 1)
    values = [("100", 0), ("100", 0), ("100", 3), ("101.5", 3), ("101.5", 0), ("99", 2)]
    series = index_charts.IndexSeries("2019", _points(start, values), style=12)
    chart = index_charts.year_chart("c", "t", series)
    (line,) = chart.lines
    assert line.style == 2  # styles wrap around the style sheet's ten
    assert line.path.count("M") == 1 and line.path.count("L") == 1  # the 3rd to the 4th day
    assert [mark.point.day.day for mark in line.marks] == [3, 4, 6]
    assert line.last is not None and line.last.index == Decimal("99")
    assert chart.start == date(2025, 11, 3) and chart.end == date(2025, 11, 6)
    assert [tick.label for tick in chart.y_ticks] == ["99", "100", "101", "102"]
    # A week of days at least, ticks on whole days; a bar a day from the first priced one.
    assert all(tick.label.startswith("2025-1") for tick in chart.x_ticks)
    assert len(chart.bars) == 4 and chart.bars_most == 3
    assert chart.bars[2].priced_y == chart.bars_bottom  # nothing priced: no bar
    assert chart.narrow is not None and len(chart.narrow.x_ticks) <= 4


def test_compared_years_share_one_scale_and_a_legend() -> None:
    start = date(2025, 9, 1)
    series = [
        index_charts.IndexSeries(str(year), _points(start, values), style=number)
        for number, (year, values) in enumerate(
            [(2024, [("100", 5), ("110", 5)]), (2023, [("100", 2), ("90", 2)])]
        )
    ]
    chart = index_charts.years_chart("c", "t", series)
    assert [entry.label for entry in chart.legend] == ["2024", "2023"]
    assert chart.top > chart.legend[0].y and not chart.bars
    low = max(tick.at for tick in chart.y_ticks)
    high = min(tick.at for tick in chart.y_ticks)
    for line in chart.lines:
        ys = [float(part.split(",")[1]) for part in line.path[1:].split("L")]
        assert all(high <= y <= low for y in ys)
    (up, down) = chart.lines
    assert up.path.split("L")[0] == down.path.split("L")[0]  # both start at 100
    assert "2024: 110 on 2025-09-02" in chart.description
