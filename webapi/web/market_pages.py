"""The market pages (issue #21): price gaps between the shops (`/market/gaps`, and its CSV),
the rarest ornaments (`/market/rare`), the price index of every year compared
(`/market/years`) and of one year (`/market/years/<year>`, and its CSV), read through the
API's own queries (webapi.market); the index charts are drawn by `index_charts`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from flask import render_template, url_for
from marshmallow import fields, validate
from sqlalchemy.engine import Connection, Row
from werkzeug.exceptions import NotFound

from christmas_spiders.storage.schema import ornaments, products
from christmas_spiders.vendors import VENDORS
from webapi import db, schemas
from webapi.market import common, gaps, rare, year_index, years
from webapi.web import formatting, index_charts
from webapi.web.forms import arguments, page_url
from webapi.web.views import blueprint

GAPS_PER_PAGE = RARE_PER_PAGE = 50
MAX_YEARS = 12  # lines on one chart, at most


def _sort_names(choices: Sequence[str]) -> dict[str, str]:
    """A sort parameter's choices as the form shows them: "gap", "gap, descending"."""
    return {
        choice: choice.lstrip("-").replace("_", " ") + (", descending" if choice[0] == "-" else "")
        for choice in choices
    }


def _cursor_pages(endpoint: str, form: dict[str, Any], next_cursor: str | None) -> dict[str, Any]:
    """A cursor-paged page's links: to the next page, and past the first page to the first."""
    return {
        "next_url": page_url(endpoint, form, cursor=next_cursor) if next_cursor else None,
        "first_url": page_url(endpoint, form, cursor=None) if "cursor" in form else None,
    }


@blueprint.get("/market/gaps")
def gaps_page():
    """Ornaments in stock at two or more shops in one condition, the cheapest and the dearest
    shop's offer, the largest gap first."""
    form = arguments(gaps.GapPageArgs(exclude=("vendor", "limit")))  # one shop: `shop`
    found, next_cursor = gaps.gap_page({**form, "limit": GAPS_PER_PAGE})
    return render_template(
        "web/market_gaps.html",
        args=form,
        gaps=found,
        vendors=VENDORS,
        conditions=formatting.CONDITIONS,
        sorts=_sort_names(gaps.SORT_CHOICES),
        csv_url=page_url("web.gaps_csv", form, cursor=None),
        as_of=common.as_of(db.reader(), "market_gaps"),
        **_cursor_pages("web.gaps_page", form, next_cursor),
    )


@blueprint.get("/market/gaps.csv")
def gaps_csv():
    """Every gap the page's filters find, as CSV."""
    form = arguments(gaps.GapArgs(exclude=("vendor",)))
    return gaps.csv_response(form)


@blueprint.get("/market/rare")
def rare_page():
    """The rarest ornaments: the fewest days in stock at any shop over the last year first."""
    form = arguments(rare.RareArgs(exclude=("limit",)))
    rows, next_cursor = rare.rare_page({**form, "limit": RARE_PER_PAGE})
    return render_template(
        "web/market_rare.html",
        args=form,
        ornaments=rows,
        sorts=_sort_names(rare.SORT_CHOICES),
        as_of=common.as_of(db.reader(), "market_rarity"),
        **_cursor_pages("web.rare_page", form, next_cursor),
    )


class YearsArgs(years.YearIndexArgs):
    year = fields.List(
        fields.Integer(validate=validate.Range(schemas.YEAR_MIN, schemas.YEAR_MAX)),
        validate=validate.Length(max=MAX_YEARS, error=f"at most {MAX_YEARS} years."),
        metadata={"description": "The years compared (repeatable); else the newest priced."},
    )


@blueprint.get("/market/years")
def years_page():
    """The index of several years on one chart (100 on the window's first day), and a small
    chart of each year leading to its page."""
    args = arguments(YearsArgs())
    connection = db.reader()
    now = datetime.now(UTC)
    offered = _offered_years(connection, args["condition"])
    if "year" in args:
        chosen = sorted(set(args["year"]), reverse=True)
        indexes = _year_indexes(connection, chosen, args["condition"], args["days"], now)
    else:
        indexes = _newest_priced(connection, args["condition"], args["days"], now)
    shown = {"condition": args["condition"], "days": args["days"]}
    series = [
        index_charts.IndexSeries(
            str(year),
            [_point(row) for row in rows],
            link=url_for("web.year_page", year=year, **shown),
            style=number,
        )
        for number, (year, rows) in enumerate(indexes.items())
    ]
    condition = formatting.condition_text(args["condition"])
    return render_template(
        "web/market_years.html",
        args=args,
        conditions=formatting.CONDITIONS,
        offered=offered,
        chosen=list(indexes),
        compared=index_charts.years_chart(
            "years", f"Price index of {condition} ornaments by year of release", series
        ),
        smalls=[
            (one, index_charts.small_chart(f"year-{one.label}", f"{one.label} index", one))
            for one in series
        ],
        shown=shown,
        as_of=year_index.as_of(connection),
    )


@blueprint.get("/market/years/<int:year>")
def year_page(year: int):
    """The price index of one year's ornaments: its chart with the ornaments behind each
    point, and a row a day, with its CSV."""
    args = arguments(years.YearIndexArgs())
    _check_year(year)
    connection = db.reader()
    rows = _year_indexes(connection, [year], args["condition"], args["days"], datetime.now(UTC))
    points = [_point(row) for row in rows[year]]
    condition = formatting.condition_text(args["condition"])
    return render_template(
        "web/market_year.html",
        year=year,
        args=args,
        points=points,
        chart=index_charts.year_chart(
            "index",
            f"Price index of the {year} ornaments, {condition}",
            index_charts.IndexSeries(str(year), points),
        ),
        conditions=formatting.CONDITIONS,
        csv_url=url_for("web.year_csv", year=year, **args),
        years_url=url_for("web.years_page", **args),
        as_of=year_index.as_of(connection),
    )


@blueprint.get("/market/years/<int:year>.csv")
def year_csv(year: int):
    """The year index as CSV (the API's export)."""
    args = arguments(years.YearIndexArgs())
    _check_year(year)
    return years.csv_response(year, args)


def _check_year(year: int) -> None:
    if not schemas.YEAR_MIN <= year <= schemas.YEAR_MAX:
        raise NotFound(f"No year {year}.")


def _point(row: Row) -> index_charts.IndexPoint:
    return index_charts.IndexPoint(row.day, row.index, row.ornaments, row.matched)


def _year_indexes(
    connection: Connection, wanted: Sequence[int], condition: str, days: int, now: datetime
) -> dict[int, list[Row]]:
    """The index of each year of `wanted`, in that order (no point for a year without one)."""
    found = year_index.year_indexes(connection, wanted, condition, days, now)
    return {year: found.get(year, []) for year in wanted}


def _newest_priced(
    connection: Connection, condition: str, days: int, now: datetime
) -> dict[int, list[Row]]:
    """The indexes of the newest years with an ornament priced in the window (years.NEWEST_YEARS),
    newest first."""
    found = year_index.year_indexes(
        connection, None, condition, days, now, newest=years.NEWEST_YEARS
    )
    return {year: found[year] for year in sorted(found, reverse=True)}


def _offered_years(connection: Connection, condition: str) -> list[int]:
    """The years of the ornaments some shop lists in `condition`, newest first."""
    query = (
        sa.select(ornaments.c.year)
        .distinct()
        .select_from(ornaments.join(products, products.c.ornament_id == ornaments.c.id))
        .where(products.c.condition == condition)
        .order_by(ornaments.c.year.desc())
    )
    return list(connection.execute(query).scalars())
