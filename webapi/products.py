"""/v1/products: the filtered, sorted, paginated list; its CSV export; one product; its history."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import marshmallow as ma
from flask import jsonify
from flask_smorest import abort
from marshmallow import fields, validate
from sqlalchemy.engine import Connection

from christmas_spiders.domain import AVAILABILITY
from christmas_spiders.storage.schema import products
from webapi import csv_export, db, pagination, product_history, schemas, v1
from webapi.pagination import SortKey
from webapi.product_queries import (
    CATALOG_MODIFIED,
    catalog_modified,
    filtered,
    product_rows,
    selective,
)

blueprint = v1.Blueprint(
    "products", __name__, description="Products of every shop, their state and history."
)

_p = products.c
SORTS: dict[str, SortKey] = {
    "id": SortKey(_p.id, _p.id, pagination.SORT_PARSERS["int"]),
    "name": SortKey(_p.name, _p.id, pagination.SORT_PARSERS["text"]),
    "price": SortKey(_p.price, _p.id, pagination.SORT_PARSERS["price"], nullable=True),
    "release_year": SortKey(_p.release_year, _p.id, pagination.SORT_PARSERS["int"]),
    "updated_at": SortKey(_p.updated_at, _p.id, pagination.SORT_PARSERS["time"]),
}
SORT_CHOICES = [*SORTS, *(f"-{name}" for name in SORTS)]
_PRODUCT_FIELDS = schemas.Product().fields
# The CSV export's columns: a product's fields as /v1/products answers them, but for the shop's
# own id.
CSV_COLUMNS = tuple(name for name in _PRODUCT_FIELDS if name != "vendor_product_id")


class ProductFilters(schemas.Query):
    vendor = schemas.vendor_ids(metadata={"description": "Vendor ids; repeat for several."})
    release_year = fields.Integer(validate=validate.Range(schemas.YEAR_MIN, schemas.YEAR_MAX))
    release_year_min = fields.Integer(validate=validate.Range(schemas.YEAR_MIN, schemas.YEAR_MAX))
    release_year_max = fields.Integer(validate=validate.Range(schemas.YEAR_MIN, schemas.YEAR_MAX))
    sku = schemas.text(64, metadata={"description": "Exact Hallmark SKU, any case (QX1234)."})
    series = schemas.text(metadata={"description": "Exact series name, any case."})
    artist = schemas.text(metadata={"description": "Exact artist name, any case."})
    availability = schemas.choices(AVAILABILITY)
    price_min = schemas.price()
    price_max = schemas.price()
    q = schemas.text(
        metadata={
            "description": "Words of the name, each matched as a word prefix "
            "(`rock hors` finds “Rocking Horse”)."
        }
    )
    changed_since = schemas.moment(
        metadata={"description": "Products whose fields changed, or that were delisted, since."}
    )
    include_delisted = fields.Boolean(load_default=False)
    sort = fields.String(
        load_default="id",
        validate=validate.OneOf(SORT_CHOICES),
        metadata={"description": "A field, `-` in front for descending; ties go by id."},
    )

    @ma.validates_schema
    def _check_ranges(self, data: dict[str, Any], **_kwargs) -> None:
        for low, high in (("release_year_min", "release_year_max"), ("price_min", "price_max")):
            if low in data and high in data and data[low] > data[high]:
                raise ma.ValidationError(f"must not be more than {high}.", low)
        schemas.require_word(data, "q")


class ProductListArgs(ProductFilters):
    limit = pagination.limit_field()
    cursor = pagination.CursorField(SORTS)

    @ma.validates_schema
    def _check_cursor(self, data: dict[str, Any], **_kwargs) -> None:
        pagination.check_cursor(data.get("cursor"), data.get("sort", "id"))


@blueprint.route("/products")
@blueprint.arguments(ProductListArgs(), location="query")
@blueprint.response(200, schemas.ProductPage)
def list_products(args: dict[str, Any]):
    """Products, filtered and sorted, a page at a time.

    Listed products only unless `include_delisted=true`. Pages follow `next_cursor` until it is
    null; a cursor works only with the `sort` it was made for.
    """
    connection = db.reader()
    sort = args["sort"]
    key = SORTS[sort.lstrip("-")]
    rows, next_cursor = pagination.keyset_page(
        connection,
        filtered(args).add_columns(CATALOG_MODIFIED.label("catalog_modified")),
        key,
        sort,
        args.get("cursor"),
        args["limit"],
        value_of=lambda row: row._mapping[key.column.key],
        by_index=not selective(args),
    )
    v1.set_last_modified(rows[0].catalog_modified if rows else catalog_modified(connection))
    # Built here rather than dumped by the schema (which still documents it, and the fuzz
    # tests hold the answer to it): dumping a page with marshmallow is ten times slower.
    return jsonify(
        items=[_as_json(row._mapping) for row in rows],
        limit=args["limit"],
        next_cursor=next_cursor,
    )


_TIME_FIELDS = tuple(
    name for name, field in _PRODUCT_FIELDS.items() if isinstance(field, ma.fields.DateTime)
)
_MONEY_FIELDS = tuple(
    name for name, field in _PRODUCT_FIELDS.items() if isinstance(field, schemas.Money)
)


def _as_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """A product as schemas.Product dumps it: prices as strings, times in ISO 8601."""
    item = {name: row[name] for name in _PRODUCT_FIELDS}
    for name in _TIME_FIELDS:
        if item[name] is not None:
            item[name] = item[name].isoformat()
    for name in _MONEY_FIELDS:
        if item[name] is not None:
            item[name] = str(item[name])
    return item


@blueprint.route("/products.csv")
@blueprint.arguments(ProductFilters(), location="query")
@blueprint.response(
    200,
    **csv_export.answer("Every matching product, one per line, in `sort` order (no pagination)."),
)
def export_products(args: dict[str, Any]):
    """The product list as CSV: the same filters and sort as /v1/products, every match."""
    sort = args["sort"]
    query = pagination.ordered_all(filtered(args), SORTS[sort.lstrip("-")], sort)
    engine = db.databases().reader  # its own connection: the stream outlives the request

    def rows() -> Iterator[Mapping[str, Any]]:
        with engine.connect() as connection:
            streaming = connection.execution_options(stream_results=True, yield_per=1000)
            for row in streaming.execute(query):
                yield row._mapping

    return csv_export.download("products.csv", CSV_COLUMNS, rows())


def _product(connection: Connection, product_id: int) -> dict[str, Any]:
    if product_id > schemas.BIGINT_MAX:
        abort(404, message=f"no product {product_id}.")
    row = connection.execute(product_rows().where(_p.id == product_id)).first()
    if row is None:
        abort(404, message=f"no product {product_id}.")
    return dict(row._mapping)


@blueprint.route("/products/<int:product_id>")
@blueprint.arguments(schemas.Query(), location="query")
@blueprint.response(200, schemas.ProductDetail)
def get_product(_args: dict[str, Any], product_id: int):
    """One product as it is now."""
    product = _product(db.reader(), product_id)
    v1.set_last_modified(
        max(
            moment
            for moment in (product["updated_at"], product["last_synced_at"], product["delisted_at"])
            if moment is not None
        )
    )
    return product


@blueprint.route("/products/<int:product_id>/history")
@blueprint.arguments(schemas.HistoryArgs(), location="query")
@blueprint.response(200, schemas.History)
def get_history(args: dict[str, Any], product_id: int):
    """A product's prices and availability over time, with lowest, highest and latest price.

    With `since`, the first point is the one in effect when the window opened. Prices flagged
    suspicious by the history trigger (a jump of 3× or more) are shown but not counted as
    lowest or highest unless `include_suspicious=true`.
    """
    connection = db.reader()
    v1.set_last_modified(_product(connection, product_id)["last_changed_at"])
    return product_history.product_history(
        connection,
        product_id,
        args.get("since"),
        args.get("until"),
        args["include_suspicious"],
    )
