"""The pages of ornaments and series (issue #15): one ornament with every shop's offers, their
chart (a line per shop and condition) and the series it belongs to; every series; one series a
collector can work through (series completion, `webapi.series_queries`)."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import render_template
from werkzeug.exceptions import NotFound

from christmas_spiders.storage import history
from webapi import db, ornament_queries, schemas, series_queries
from webapi.series_queries import Completion, Number
from webapi.web import queries
from webapi.web.forms import arguments
from webapi.web.offer_history import WINDOWS, offer_history
from webapi.web.views import PRODUCT_CHANGES, blueprint

NEIGHBOURS = 2  # series numbers shown on each side of an ornament's own
_MAX_SERIES_NAME = 200


@blueprint.get("/ornaments/<int:ornament_id>")
def ornament_page(ornament_id: int):
    """One ornament: its cheapest offers, every offer at every shop with its condition, the
    price chart, lowest and highest prices, its place in its series, and its changes."""
    arguments(schemas.Query())
    connection = db.reader()
    found = None
    if ornament_id <= schemas.BIGINT_MAX:
        found = ornament_queries.ornament(connection, ornament_id)
    if found is None:
        raise NotFound(f"No ornament {ornament_id}.")
    offers = queries.ornament_offers(connection, ornament_id)
    ids = [offer.id for offer in offers]
    page = None
    if offers:
        histories = history.product_histories(connection, ids)
        page = offer_history(offers, histories, datetime.now(UTC), found.name)
    series = None
    if found.series:
        series = series_queries.read_completion(connection, found.series)
    changes, _ = queries.recent_changes(connection, limit=PRODUCT_CHANGES, product_ids=ids)
    return render_template(
        "web/ornament.html",
        ornament=found,
        best=ornament_queries.best(offers),
        offers=page.offers if page else [],
        chart=page.chart if page else None,
        overall=page.overall if page else {},
        windows=WINDOWS,
        series=series,
        neighbours=_neighbours(series, found.series_number) if series else [],
        changes=changes,
        changes_limit=PRODUCT_CHANGES,
    )


def _neighbours(series: Completion, number: int | None) -> list[Number]:
    """The numbers around `number` in its series (none without a number)."""
    if number is None:
        return []
    return [n for n in series.numbers if abs(n.number - number) <= NEIGHBOURS]


@blueprint.get("/series")
def series_list():
    """Every series: its years, its numbers, how many a shop lists and how many are in stock."""
    arguments(schemas.Query())
    return render_template("web/series_list.html", series=series_queries.series_list(db.reader()))


@blueprint.get("/series/<path:name>")
def series_page(name: str):
    """One series worked through: every number from 1 to the highest known, the ornament of
    each, its cheapest offer in stock today, and what no shop has."""
    arguments(schemas.Query())
    wanted = name.strip()
    found = None
    if wanted and len(wanted) <= _MAX_SERIES_NAME and wanted.isprintable():
        found = series_queries.read_completion(db.reader(), wanted)
    if found is None:
        shown = name if len(name) <= 40 else name[:40] + "…"
        raise NotFound(f"No series {shown!r}.")
    return render_template("web/series.html", series=found)
