"""/v1/skus/<sku>: one Hallmark SKU across every shop, cheapest in-stock offer first."""

from __future__ import annotations

from typing import Any

from flask_smorest import abort

from christmas_spiders.storage.schema import products
from webapi import db, product_history, schemas, v1
from webapi.product_queries import OFFER_ORDER, product_rows

blueprint = v1.Blueprint("skus", __name__, description="One SKU across every shop.")

_p = products.c
_MAX_SKU = 64


@blueprint.route("/skus/<sku>")
@blueprint.arguments(schemas.HistoryArgs(), location="query")
@blueprint.response(200, schemas.SkuView)
def get_sku(args: dict[str, Any], sku: str):
    """Every shop's offer of one SKU, each with its own history (same window as a product's).

    Order: in stock by price (cheapest first), then pre-order, then out of stock, then
    delisted offers. The SKU is matched without regard to case or surrounding spaces.
    """
    wanted = sku.strip().upper()
    if not wanted or len(wanted) > _MAX_SKU or not wanted.isprintable():
        abort(404, message=f"no product has the SKU {sku!r}.")
    connection = db.reader()
    rows = connection.execute(product_rows().where(_p.sku == wanted).order_by(*OFFER_ORDER)).all()
    if not rows:
        abort(404, message=f"no product has the SKU {wanted!r}.")
    histories = product_history.product_histories(
        connection,
        [row.id for row in rows],
        args.get("since"),
        args.get("until"),
        args["include_suspicious"],
    )
    offers = [{**row._mapping, "history": histories[row.id]} for row in rows]
    v1.set_last_modified(
        max(
            moment
            for row in rows
            for moment in (row.updated_at, row.last_synced_at, row.delisted_at, row.last_changed_at)
            if moment is not None
        )
    )
    return {"sku": wanted, "offers": offers}
