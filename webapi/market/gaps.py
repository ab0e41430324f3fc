"""/v1/market/gaps: price gaps between shops (issue #21, see gap_queries), a page at a time or
as CSV."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import marshmallow as ma
import sqlalchemy as sa
from flask import Response
from marshmallow import fields, validate

from christmas_spiders.catalog.rules import BOXED
from christmas_spiders.storage.market import market_gaps
from christmas_spiders.vendors import VENDORS
from webapi import csv_export, db, pagination, schemas, v1
from webapi.market import common, gap_history, gap_queries
from webapi.ornaments import ornament_or_404
from webapi.pagination import SortKey

blueprint = v1.Blueprint(
    "market_gaps", __name__, description="The market: price gaps between the shops."
)

_SORT_COLUMNS = {"id": "int", "name": "text", "year": "int", "gap": "price"}
_PERCENT = "gap_percent"


def sorts(table: sa.Subquery) -> dict[str, SortKey]:
    """The sort orders of the gaps `table` (gap_queries.gaps)."""
    found = {
        name: SortKey(table.c[name], table.c.id, pagination.SORT_PARSERS[kind])
        for name, kind in _SORT_COLUMNS.items()
    }
    found[_PERCENT] = SortKey(
        table.c[_PERCENT], table.c.id, pagination.SORT_PARSERS["price"], nullable=True
    )
    return found


# The sort names and cursor parsing do not depend on the filters: one table serves for both.
SORTS = sorts(gap_queries.gaps({"condition": BOXED}))
SORT_CHOICES = [*SORTS, *(f"-{name}" for name in SORTS)]


_CONDITION = "The condition compared: only offers in it count."


class GapArgs(schemas.Query):
    condition = common.condition_field(_CONDITION)
    year = fields.Integer(validate=validate.Range(schemas.YEAR_MIN, schemas.YEAR_MAX))
    series = schemas.text(metadata={"description": "Exact series name, any case."})
    vendor = schemas.vendor_ids(
        metadata={"description": "Only these shops' offers count (two at least to see a gap)."}
    )
    shop = fields.String(
        validate=validate.OneOf(list(VENDORS), error="unknown shop {input!r}."),
        metadata={"description": "Gaps with this shop at one end (cheapest or dearest)."},
    )
    min_gap = schemas.price(metadata={"description": "Gaps of at least this much money."})
    min_gap_percent = schemas.PriceParameter(
        validate=validate.Range(0, 10**6, error="must be from 0 to 1000000."),
        metadata={"description": "Gaps of at least this percent of the cheapest price."},
    )
    sort = fields.String(
        load_default="-gap",
        validate=validate.OneOf(SORT_CHOICES),
        metadata={"description": "A field, `-` in front for descending; ties go by id."},
    )


class GapPageArgs(GapArgs, pagination.keyset_args(SORTS, "-gap")):
    pass


class GapOffer(ma.Schema):
    product_id = fields.Integer()
    vendor = fields.String()
    price = schemas.Money()
    link = fields.String()


class Gap(common.OrnamentRow):
    condition = fields.String()
    shops = fields.Integer(metadata={"description": "Shops with an offer in stock."})
    cheapest = fields.Nested(GapOffer)
    dearest = fields.Nested(GapOffer)
    gap = schemas.Money(metadata={"description": "Dearest minus cheapest price."})
    gap_percent = schemas.Money(  # a decimal string too ("11.1")
        allow_none=True, metadata={"description": "The gap, % of the cheapest."}
    )


class GapPage(ma.Schema):
    items = fields.List(fields.Nested(Gap))
    limit = fields.Integer()
    next_cursor = fields.String(allow_none=True)
    as_of = common.as_of_field()


def _gap(row: Any) -> dict[str, Any]:
    found = dict(row._mapping)
    for end in ("cheapest", "dearest"):
        found[end] = {
            "product_id": found.pop(f"{end}_id"),
            "vendor": found.pop(f"{end}_vendor"),
            "price": found.pop(f"{end}_price"),
            "link": found.pop(f"{end}_link"),
        }
    return found


def gap_page(args: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """One page of gaps for `args` (GapPageArgs) and the cursor of the next (the API's and the
    web page's)."""
    table = gap_queries.gaps(args)
    rows, next_cursor = common.keyset_page(
        table, sorts(table), args, by_index=gap_queries.by_index(args)
    )
    return [_gap(row) for row in rows], next_cursor


@blueprint.route("/market/gaps")
@blueprint.arguments(GapPageArgs(), location="query")
@blueprint.response(200, GapPage)
def list_gaps(args: dict[str, Any]):
    """Price gaps: every ornament with offers in stock, in one condition, at two or more shops;
    each shop's cheapest such offer stands for the shop; the cheapest and dearest shop's offer
    and the gap between them, in money and percent of the cheapest. Largest gap first by
    default; pages follow `next_cursor`. Figures `as_of` the market views' last refresh (after
    each crawl that changed anything)."""
    return common.page_answer(*gap_page(args), args, market_gaps.name)


CSV_COLUMNS = (
    "id",
    "year",
    "name",
    "series",
    "series_number",
    "item_number",
    "condition",
    "shops",
    "cheapest_vendor",
    "cheapest_price",
    "cheapest_link",
    "dearest_vendor",
    "dearest_price",
    "dearest_link",
    "gap",
    "gap_percent",
)


@blueprint.route("/market/gaps.csv")
@blueprint.arguments(GapArgs(), location="query")
@blueprint.response(
    200, **csv_export.answer("Every matching gap, one per line, in `sort` order (no pagination).")
)
def export_gaps(args: dict[str, Any]):
    """The price gaps as CSV: the same filters and sort as /v1/market/gaps, every match."""
    return csv_response(args)


def csv_response(args: dict[str, Any]) -> Response:
    """Every gap matching `args` (GapArgs) as a CSV download (the API's and the web page's)."""
    table = gap_queries.gaps(args)
    sort = args["sort"]
    query = pagination.ordered_all(sa.select(table), sorts(table)[sort.lstrip("-")], sort)
    # Read whole within the request: the body is streamed after its connection is closed.
    rows = db.reader().execute(query).mappings().all()  # one per gap: 18,380 on the bench
    return csv_export.download("price-gaps.csv", CSV_COLUMNS, rows)


class GapHistoryArgs(schemas.Query):
    condition = common.condition_field(_CONDITION)
    days = common.days_field(1, "How many days back, today included.")


class GapDay(ma.Schema):
    day = fields.Date()
    shops = fields.Integer(metadata={"description": "Shops with an offer in stock that day."})
    cheapest = schemas.Money(allow_none=True)
    dearest = schemas.Money(allow_none=True)
    gap = schemas.Money(allow_none=True, metadata={"description": "NULL: fewer than 2 shops."})


class GapHistory(ma.Schema):
    ornament_id = fields.Integer()
    condition = fields.String()
    open_since = fields.Date(
        allow_none=True,
        metadata={"description": "First day of the gap open on the last day (NULL: closed)."},
    )
    days = fields.List(fields.Nested(GapDay))


@blueprint.route("/market/gaps/<int:ornament_id>/history")
@blueprint.arguments(GapHistoryArgs(), location="query")
@blueprint.response(200, GapHistory)
def get_gap_history(args: dict[str, Any], ornament_id: int):
    """A gap's history: the ornament's gap in one condition at the end of each of the last
    `days` days, rebuilt from the change history (each shop's cheapest offer in stock then),
    and since when the gap open on the last day has been open."""
    connection = db.reader()
    ornament_or_404(connection, ornament_id)
    rows = gap_history.gap_history(
        connection, ornament_id, args["condition"], args["days"], datetime.now(UTC)
    )
    return {
        "ornament_id": ornament_id,
        "condition": args["condition"],
        "open_since": rows[-1].open_since,
        "days": [row._mapping for row in rows],
    }
