"""The market pages (issue #21): price gaps between the shops (`/market/gaps`, and its CSV),
the rarest ornaments (`/market/rare`) and a year's price index (`/market/years/<year>`), read
through the API's own queries (webapi.market)."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import render_template, url_for
from werkzeug.exceptions import NotFound

from christmas_spiders.catalog.rules import CONDITIONS
from christmas_spiders.vendors import VENDORS
from webapi import db, schemas
from webapi.market import gaps, rare, year_index, years
from webapi.web.forms import arguments, page_url
from webapi.web.views import blueprint

GAPS_PER_PAGE = RARE_PER_PAGE = 50


@blueprint.get("/market/gaps")
def gaps_page():
    """Ornaments in stock at two or more shops in one condition, the cheapest and the dearest
    shop's offer, the largest gap first."""
    form = arguments(gaps.GapPageArgs(exclude=("vendor", "limit")))  # one shop: `shop`
    found, next_cursor = gaps.gap_page({**form, "limit": GAPS_PER_PAGE})
    shown = {name: value for name, value in form.items() if name != "cursor"}
    return render_template(
        "web/market_gaps.html",
        args=form,
        gaps=found,
        vendors=VENDORS,
        conditions=CONDITIONS,
        sorts=gaps.SORT_CHOICES,
        next_url=page_url("web.gaps_page", shown, cursor=next_cursor) if next_cursor else None,
        first_url=page_url("web.gaps_page", shown) if "cursor" in form else None,
        csv_url=page_url("web.gaps_csv", shown),
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
    rows, next_cursor = rare.rare_page({**form, "limit": RARE_PER_PAGE}, datetime.now(UTC))
    shown = {name: value for name, value in form.items() if name != "cursor"}
    return render_template(
        "web/market_rare.html",
        args=form,
        ornaments=rows,
        sorts=rare.SORT_CHOICES,
        next_url=page_url("web.rare_page", shown, cursor=next_cursor) if next_cursor else None,
        first_url=page_url("web.rare_page", shown) if "cursor" in form else None,
    )


@blueprint.get("/market/years/<int:year>")
def year_page(year: int):
    """The price index of one year's ornaments, a row a day, with its CSV."""
    args = arguments(years.YearIndexArgs())
    if not schemas.YEAR_MIN <= year <= schemas.YEAR_MAX:
        raise NotFound(f"No year {year}.")
    points = year_index.year_index(
        db.reader(), year, args["condition"], args["days"], datetime.now(UTC)
    )
    return render_template(
        "web/market_year.html",
        year=year,
        args=args,
        points=points,
        conditions=CONDITIONS,
        csv_url=url_for("web.year_csv", year=year, **args),
    )


@blueprint.get("/market/years/<int:year>.csv")
def year_csv(year: int):
    """The year index as CSV (the API's export)."""
    args = arguments(years.YearIndexArgs())
    if not schemas.YEAR_MIN <= year <= schemas.YEAR_MAX:
        raise NotFound(f"No year {year}.")
    return years.csv_response(year, args)
