"""/v1/ornaments: the catalog of ornaments (one Keepsake design of one year, issue #15), each
with its offers at the shops: filtered, a page at a time; one ornament with every offer and its
history."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import marshmallow as ma
import sqlalchemy as sa
from flask_smorest import abort
from marshmallow import fields, validate
from sqlalchemy.engine import Connection, Row

from christmas_spiders.catalog import rules
from christmas_spiders.storage.schema import ornaments, products
from christmas_spiders.vendors import VENDORS
from webapi import db, ornament_queries, pagination, product_history, schemas, v1
from webapi.ornament_queries import ORNAMENTS_MODIFIED, Best
from webapi.pagination import SortKey
from webapi.product_queries import OFFER_ORDER, product_rows

blueprint = v1.Blueprint(
    "ornaments", __name__, description="Ornaments: one Keepsake design of one year, at every shop."
)

_o = ornaments.c
_p = products.c
SORTS: dict[str, SortKey] = {
    "id": SortKey(_o.id, _o.id, pagination.SORT_PARSERS["int"]),
    "name": SortKey(_o.name, _o.id, pagination.SORT_PARSERS["text"]),
    "year": SortKey(_o.year, _o.id, pagination.SORT_PARSERS["int"]),
}
SORT_CHOICES = [*SORTS, *(f"-{name}" for name in SORTS)]
_NOT_A_NUMBER = (
    "must be a Hallmark item number such as QX5216, in any SKU form (2999QX5216, qx5216nb)."
)


class ItemNumber(fields.String):
    """A Hallmark item number given in any SKU form, loaded as the item number."""

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        number = rules.item_number(text) if len(text) <= 64 else None
        if number is None:
            raise ma.ValidationError(_NOT_A_NUMBER)
        return number


class OrnamentListArgs(schemas.Query):
    q = schemas.text(
        metadata={"description": "Words of any shop's name of it, each a word prefix."}
    )
    year = fields.Integer(validate=validate.Range(schemas.YEAR_MIN, schemas.YEAR_MAX))
    series = schemas.text(metadata={"description": "Exact series name, any case."})
    item_number = ItemNumber(
        metadata={"description": "Hallmark item number, any SKU form (2999QXM2797, qxm2797nb)."}
    )
    in_stock = fields.Boolean(
        metadata={
            "description": "true: with an offer in stock (available or pre-order, at one of "
            "`vendor` when given); false: without one."
        }
    )
    vendor = schemas.vendor_ids(metadata={"description": "Listed at one of these shops."})
    sort = fields.String(
        load_default="id",
        validate=validate.OneOf(SORT_CHOICES),
        metadata={"description": "A field, `-` in front for descending; ties go by id."},
    )
    limit = pagination.limit_field()
    cursor = pagination.CursorField(SORTS)

    @ma.validates_schema
    def _check(self, data: dict[str, Any], **_kwargs) -> None:
        schemas.require_word(data, "q")
        pagination.check_cursor(data.get("cursor"), data.get("sort", "id"))


def summary(ornament: Any, offers: Sequence[Any], found: Best | None = None) -> dict[str, Any]:
    """An ornament as schemas.OrnamentSummary answers it, from its offers (any order; delisted
    ones do not count)."""
    listed = [offer for offer in offers if offer.delisted_at is None]
    found = found or ornament_queries.best(listed)
    shops = {offer.vendor for offer in listed}
    return {
        **{name: getattr(ornament, name) for name in _ORNAMENT_FIELDS},
        "listed_offers": len(listed),
        "vendors": [vendor for vendor in VENDORS if vendor in shops],
        "cheapest": found.cheapest,
        "cheapest_boxed": found.cheapest_boxed,
    }


_ORNAMENT_FIELDS = (
    "id",
    "year",
    "item_number",
    "name",
    "series",
    "series_number",
    "flags",
    "updated_at",
)


@blueprint.route("/ornaments")
@blueprint.arguments(OrnamentListArgs(), location="query")
@blueprint.response(200, schemas.OrnamentPage)
def list_ornaments(args: dict[str, Any]):
    """Ornaments, filtered, a page at a time, each with its cheapest offers in stock.

    Pages follow `next_cursor` until it is null; a cursor works only with the `sort` it was
    made for.
    """
    connection = db.reader()
    sort = args["sort"]
    key = SORTS[sort.lstrip("-")]
    rows, next_cursor = pagination.keyset_page(
        connection,
        ornament_queries.filtered(args).add_columns(ORNAMENTS_MODIFIED.label("modified")),
        key,
        sort,
        args.get("cursor"),
        args["limit"],
        value_of=lambda row: row._mapping[key.column.key],
    )
    offers = ornament_queries.listed_offers(connection, [row.id for row in rows])
    if rows:
        v1.set_last_modified(rows[0].modified)
    else:
        v1.set_last_modified(connection.execute(sa.select(ORNAMENTS_MODIFIED)).scalar())
    return {
        "items": [summary(row, offers.get(row.id, [])) for row in rows],
        "limit": args["limit"],
        "next_cursor": next_cursor,
    }


@blueprint.route("/ornaments/<int:ornament_id>")
@blueprint.arguments(schemas.HistoryArgs(), location="query")
@blueprint.response(200, schemas.OrnamentDetail)
def get_ornament(args: dict[str, Any], ornament_id: int):
    """One ornament: every offer at every shop (its condition, price, availability and history;
    in stock cheapest first, then pre-order, out of stock, delisted), and its cheapest offer in
    stock, boxed and in any condition."""
    connection = db.reader()
    found = ornament_or_404(connection, ornament_id)
    rows = connection.execute(
        product_rows().where(_p.ornament_id == ornament_id).order_by(*OFFER_ORDER)
    ).all()
    v1.set_last_modified(max([found.updated_at, *offer_moments(rows)]))
    return {
        **summary(found, rows),
        "series_numbers": found.series_numbers,
        "created_at": found.created_at,
        "offers": product_history.offers(connection, rows, args),
    }


def ornament_or_404(connection: Connection, ornament_id: int) -> Row:
    """The ornament `ornament_id`, or a 404 naming it (the ornament page, a gap's history)."""
    found = None
    if ornament_id <= schemas.BIGINT_MAX:
        found = ornament_queries.ornament(connection, ornament_id)
    if found is None:
        abort(404, message=f"no ornament {ornament_id}.")
    return found


def offer_moments(rows: Sequence[Any]) -> list:
    """When each offer row last changed, was synced or delisted (for Last-Modified)."""
    return [
        moment
        for row in rows
        for moment in (row.updated_at, row.last_synced_at, row.delisted_at, row.last_changed_at)
        if moment is not None
    ]
