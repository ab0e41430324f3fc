"""/v1/market/years/<year>: the chain-linked price index of one year's ornaments (issue #21,
see year_index), as JSON or CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

import marshmallow as ma
from flask import Response
from flask_smorest import abort
from marshmallow import fields, validate

from christmas_spiders.catalog.rules import BOXED, CONDITIONS
from webapi import db, schemas, v1
from webapi.market import year_index

blueprint = v1.Blueprint(
    "market_years", __name__, description="The market: a price index per year of release."
)


class YearIndexArgs(schemas.Query):
    condition = fields.String(
        load_default=BOXED,
        validate=validate.OneOf(CONDITIONS),
        metadata={"description": "The condition priced: only offers in it count."},
    )
    days = fields.Integer(
        load_default=90,
        validate=validate.Range(2, 365, error="must be from 2 to 365."),
        metadata={"description": "How many days back, today included (100 on the first)."},
    )


class IndexPoint(ma.Schema):
    day = fields.Date()
    index = schemas.Money(metadata={"description": "100 on the first day."})
    ornaments = fields.Integer(metadata={"description": "Ornaments priced that day."})
    matched = fields.Integer(
        metadata={"description": "Ornaments priced that day and the day before: the step's."}
    )


class YearIndex(ma.Schema):
    year = fields.Integer()
    condition = fields.String()
    points = fields.List(fields.Nested(IndexPoint))


def _points(year: int, args: dict[str, Any]) -> list[Any]:
    return year_index.year_index(
        db.reader(), year, args["condition"], args["days"], datetime.now(UTC)
    )


def _check_year(year: int) -> None:
    if not schemas.YEAR_MIN <= year <= schemas.YEAR_MAX:
        abort(404, message=f"no year {year}.")


@blueprint.route("/market/years/<int:year>")
@blueprint.arguments(YearIndexArgs(), location="query")
@blueprint.response(200, YearIndex)
def get_year_index(args: dict[str, Any], year: int):
    """The price index of the ornaments released in `year`, one point a day: chain-linked over
    matched ornaments (each step compares only ornaments priced at both ends, so appearing,
    selling out or disappearing does not move it), 100 on the first day, with the ornaments
    behind each point."""
    _check_year(year)
    rows = _points(year, args)
    return {"year": year, "condition": args["condition"], "points": [r._mapping for r in rows]}


@blueprint.route("/market/years/<int:year>.csv")
@blueprint.arguments(YearIndexArgs(), location="query")
@blueprint.response(
    200,
    {"type": "string"},
    content_type="text/csv",
    description="day,index,ornaments,matched: one line a day, oldest first.",
)
def export_year_index(args: dict[str, Any], year: int):
    """The year index as CSV, to set beside any other daily series."""
    _check_year(year)
    return csv_response(year, args)


def csv_response(year: int, args: dict[str, Any]) -> Response:
    """The index of `year` for `args` (YearIndexArgs) as a CSV download (the API's and the
    web page's)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for row in _points(year, args):
        writer.writerow([row._mapping[name] for name in CSV_COLUMNS])
    return Response(
        buffer.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="index-{year}.csv"'},
    )


CSV_COLUMNS = ("day", "index", "ornaments", "matched")
