"""/v1/market/rare: the rarest ornaments (issue #21, see rarity_queries), a page at a time."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
import sqlalchemy as sa
from marshmallow import fields, validate

from christmas_spiders.storage.market import market_rarity
from webapi import pagination, schemas, v1
from webapi.market import common, rarity_queries
from webapi.pagination import SortKey

blueprint = v1.Blueprint("market_rare", __name__, description="The market: the rarest ornaments.")

_SORT_COLUMNS = {
    "in_stock_365": ("in_stock_percent_365", "price"),
    "in_stock_90": ("in_stock_percent_90", "price"),
    "shops": ("shops", "int"),
    "id": ("id", "int"),
}


def sorts(table: sa.Subquery) -> dict[str, SortKey]:
    """The sort orders of the rarity `table` (rarity_queries.rarity)."""
    return {
        name: SortKey(table.c[column], table.c.id, pagination.SORT_PARSERS[kind])
        for name, (column, kind) in _SORT_COLUMNS.items()
    }


SORTS = sorts(rarity_queries.rarity({}))
SORT_CHOICES = [*SORTS, *(f"-{name}" for name in SORTS)]
DEFAULT_SORT = "in_stock_365"


class RareArgs(schemas.Query, pagination.keyset_args(SORTS, DEFAULT_SORT)):
    year = fields.Integer(validate=validate.Range(schemas.YEAR_MIN, schemas.YEAR_MAX))
    series = schemas.text(metadata={"description": "Exact series name, any case."})
    sort = fields.String(
        load_default=DEFAULT_SORT,
        validate=validate.OneOf(SORT_CHOICES),
        metadata={
            "description": "A field, `-` in front for descending; ties go by id. The default, "
            "the share of the last 365 days in stock, lists the rarest first."
        },
    )


class Rarity(common.OrnamentRow):
    shops = fields.Integer(metadata={"description": "Shops listing it today."})
    in_stock_percent_90 = schemas.Money(
        metadata={"description": "Share of the last 90 days it was in stock at any shop, %."}
    )
    in_stock_percent_365 = schemas.Money(
        metadata={"description": "Share of the last 365 days it was in stock at any shop, %."}
    )
    trend_percent = schemas.Money(
        allow_none=True,
        metadata={"description": "Price change of its offers priced 90 days ago and now, %."},
    )
    trend_offers = fields.Integer(metadata={"description": "Offers behind trend_percent."})


class RarityPage(ma.Schema):
    items = fields.List(fields.Nested(Rarity))
    limit = fields.Integer()
    next_cursor = fields.String(allow_none=True)
    as_of = common.as_of_field()


def rare_page(args: dict[str, Any]) -> tuple[list[Any], str | None]:
    """One page of ornaments' rarity for `args` (RareArgs), and the next cursor."""
    table = rarity_queries.rarity(args)
    return common.keyset_page(table, sorts(table), args, by_index=rarity_queries.by_index(args))


@blueprint.route("/market/rare")
@blueprint.arguments(RareArgs(), location="query")
@blueprint.response(200, RarityPage)
def list_rare(args: dict[str, Any]):
    """Rarity: per ornament, how many shops list it, the share of the last 90 and 365 days it
    was in stock at any shop (from the change history), and its price trend over 90 days. The
    rarest (least in stock over the year) first by default; pages follow `next_cursor`.
    Figures `as_of` the market views' last refresh (after crawls that changed anything, and
    daily: the shares move with the clock)."""
    rows, next_cursor = rare_page(args)
    return common.page_answer([row._mapping for row in rows], next_cursor, args, market_rarity.name)
