"""/v1/market/years and /v1/market/years/<year>: the chain-linked price index of the ornaments
of each year of release (issue #21, see year_index), every year on one chart's data or one
year, as JSON or CSV."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import marshmallow as ma
from flask import Response
from flask_smorest import abort
from marshmallow import fields, validate

from webapi import csv_export, db, schemas, v1
from webapi.market import common, year_index

blueprint = v1.Blueprint(
    "market_years", __name__, description="The market: a price index per year of release."
)


# The years compared when none are named (as the years page does): a chart stays readable.
NEWEST_YEARS = 10


class YearIndexArgs(schemas.Query):
    condition = common.condition_field("The condition priced: only offers in it count.")
    days = common.days_field(2, "How many days back, today included (100 on the first).")


def _year_field(**kwargs: Any) -> fields.Integer:
    return fields.Integer(validate=validate.Range(schemas.YEAR_MIN, schemas.YEAR_MAX), **kwargs)


class YearsArgs(YearIndexArgs):
    year = fields.List(
        _year_field(),
        metadata={
            "description": "These years (repeatable); else, without `from` and `to`, the newest "
            f"{NEWEST_YEARS} years with an ornament priced in the window."
        },
    )
    from_ = _year_field(data_key="from", metadata={"description": "Years from this one."})
    to = _year_field(metadata={"description": "Years up to this one."})

    @ma.validates_schema
    def _one_way(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if "year" in data and ("from_" in data or "to" in data):
            raise ma.ValidationError("give `year`, or `from` and `to`, not both.", "year")
        if data.get("from_", schemas.YEAR_MIN) > data.get("to", schemas.YEAR_MAX):
            raise ma.ValidationError("must not be after `to`.", "from")


def _as_of() -> fields.DateTime:
    return fields.DateTime(
        allow_none=True,
        metadata={"description": "When the steps were last refreshed (null: never, no points)."},
    )


class IndexPoint(ma.Schema):
    day = fields.Date()
    index = schemas.Money(metadata={"description": "100 on the first day."})
    ornaments = fields.Integer(metadata={"description": "Ornaments priced that day."})
    matched = fields.Integer(
        metadata={"description": "Ornaments priced that day and the day before: the step's."}
    )


class YearPoints(ma.Schema):
    year = fields.Integer()
    points = fields.List(fields.Nested(IndexPoint))


class YearIndex(YearPoints):
    condition = fields.String()
    as_of = _as_of()


class YearIndexes(ma.Schema):
    condition = fields.String()
    days = fields.Integer()
    as_of = _as_of()
    years = fields.List(fields.Nested(YearPoints))


def _indexes(args: dict[str, Any], years: list[int] | None) -> dict[int, list[Any]]:
    named_range = "from_" in args or "to" in args
    return year_index.year_indexes(
        db.reader(),
        years,
        args["condition"],
        args["days"],
        datetime.now(UTC),
        args.get("from_", schemas.YEAR_MIN),
        args.get("to", schemas.YEAR_MAX),
        newest=None if years is not None or named_range else NEWEST_YEARS,
    )


def _check_year(year: int) -> None:
    if not schemas.YEAR_MIN <= year <= schemas.YEAR_MAX:
        abort(404, message=f"no year {year}.")


@blueprint.route("/market/years")
@blueprint.arguments(YearsArgs(), location="query")
@blueprint.response(200, YearIndexes)
def get_year_indexes(args: dict[str, Any]):
    """The price index of every year of release (or of `year`, or `from`–`to`) on the same
    days, for one chart: each 100 on the window's first day, with the ornaments behind each
    point. Without `year`, the newest ten years with an ornament priced in the window (with
    `from`/`to`, every such year in that range)."""
    found = _indexes(args, args.get("year"))
    return {
        "condition": args["condition"],
        "days": args["days"],
        "as_of": year_index.as_of(db.reader()),
        "years": [{"year": year, "points": rows} for year, rows in found.items()],
    }


@blueprint.route("/market/years.csv")
@blueprint.arguments(YearsArgs(), location="query")
@blueprint.response(200, **csv_export.answer("year,day,index,ornaments,matched: long form."))
def export_year_indexes(args: dict[str, Any]):
    """Every year's index as CSV, a line per year and day (oldest first within each year)."""
    rows = [row._mapping for rows in _indexes(args, args.get("year")).values() for row in rows]
    return csv_export.download("index-years.csv", ("year", *CSV_COLUMNS), rows)


@blueprint.route("/market/years/<int:year>")
@blueprint.arguments(YearIndexArgs(), location="query")
@blueprint.response(200, YearIndex)
def get_year_index(args: dict[str, Any], year: int):
    """The price index of the ornaments released in `year`, one point a day: chain-linked over
    matched ornaments (each step compares only ornaments priced at both ends, so appearing,
    selling out or disappearing does not move it), 100 on the first day, with the ornaments
    behind each point."""
    _check_year(year)
    return {
        "year": year,
        "condition": args["condition"],
        "as_of": year_index.as_of(db.reader()),
        "points": _indexes(args, [year]).get(year, []),
    }


@blueprint.route("/market/years/<int:year>.csv")
@blueprint.arguments(YearIndexArgs(), location="query")
@blueprint.response(200, **csv_export.answer("day,index,ornaments,matched: a line a day."))
def export_year_index(args: dict[str, Any], year: int):
    """The year index as CSV, to set beside any other daily series."""
    _check_year(year)
    return csv_response(year, args)


def csv_response(year: int, args: dict[str, Any]) -> Response:
    """The index of `year` for `args` (YearIndexArgs) as a CSV download (the API's and the
    web page's)."""
    rows = [row._mapping for row in _indexes(args, [year]).get(year, [])]
    return csv_export.download(f"index-{year}.csv", CSV_COLUMNS, rows)


CSV_COLUMNS = ("day", "index", "ornaments", "matched")
