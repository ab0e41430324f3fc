"""/v1/series: every series with how far the shops cover it; one series worked through (series
completion, see webapi.series_queries)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask_smorest import abort

from webapi import db, schemas, series_queries, v1
from webapi.ornament_queries import ORNAMENTS_MODIFIED
from webapi.ornaments import summary

blueprint = v1.Blueprint(
    "series", __name__, description="Series: every number, and which of them you can buy."
)

_MAX_NAME = 200


@blueprint.route("/series")
@blueprint.arguments(schemas.Query(), location="query")
@blueprint.response(200, schemas.SeriesSummary(many=True))
def list_series(_args: dict[str, Any]):
    """Every series, by name: its ornaments, years, highest number, how many of its numbers
    1 to the highest a shop lists, and how many an offer in stock has."""
    connection = db.reader()
    v1.set_last_modified(connection.execute(sa.select(ORNAMENTS_MODIFIED)).scalar())
    return [row._mapping for row in series_queries.series_list(connection)]


@blueprint.route("/series/<path:name>")
@blueprint.arguments(schemas.Query(), location="query")
@blueprint.response(200, schemas.SeriesDetail)
def get_series(_args: dict[str, Any], name: str):
    """Series completion: every number from 1 to the highest known, each with its ornaments
    and the cheapest offer in stock (boxed, and in any condition); the numbers no shop lists
    (`missing`) and those in stock nowhere (`not_in_stock`); how many numbers you can buy today
    and what buying each at its cheapest costs in all.

    The name is matched in any case.
    """
    wanted = name.strip()
    connection = db.reader()
    found = None
    if wanted and len(wanted) <= _MAX_NAME and wanted.isprintable():
        found = series_queries.read_completion(connection, wanted)
    if found is None:
        abort(404, message=f"no series {name!r}.")
    v1.set_last_modified(connection.execute(sa.select(ORNAMENTS_MODIFIED)).scalar())
    return {
        "name": found.name,
        "first_number": found.first_number,
        "last_number": found.last_number,
        "numbers": [
            {
                "number": number.number,
                "ornaments": [
                    summary(member.ornament, member.offers, member.best)
                    for member in number.members
                ],
                "cheapest": number.best.cheapest,
                "cheapest_boxed": number.best.cheapest_boxed,
            }
            for number in found.numbers
        ],
        "missing": found.missing,
        "not_in_stock": found.not_in_stock,
        "in_stock": found.in_stock,
        "in_stock_boxed": found.in_stock_boxed,
        "cheapest_total": found.cheapest_total,
        "cheapest_boxed_total": found.cheapest_boxed_total,
        "unnumbered": [
            summary(member.ornament, member.offers, member.best) for member in found.unnumbered
        ],
    }
