"""/v1/skus/<sku>: the ornaments of a SKU in any form, and every shop's offer of them."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask_smorest import abort

from christmas_spiders.catalog import rules
from christmas_spiders.storage.schema import ornaments, products
from webapi import db, errors, product_history, schemas, v1
from webapi.ornament_queries import sku_offers, sku_ornaments, wanted_sku
from webapi.ornaments import offer_moments, summary
from webapi.product_queries import OFFER_ORDER, product_rows

blueprint = v1.Blueprint("skus", __name__, description="One SKU across every shop.")

_p = products.c
_o = ornaments.c
_MAX_SKU = 64


@blueprint.route("/skus/<sku>")
@blueprint.arguments(schemas.HistoryArgs(), location="query")
@blueprint.response(200, schemas.SkuView)
def get_sku(args: dict[str, Any], sku: str):
    """The ornaments of a SKU and every shop's offer of them, each with its own history (same
    window as a product's).

    Any form of a Hallmark SKU finds its ornament: `2999QXM2797` (a price code in front),
    `qxm2797`, `QXM2797NB` (a condition suffix) all name item number QXM2797, and the offers of
    its ornament include listings with another SKU form or none. Item numbers are unique within
    a year only: a number Hallmark used in two years gives both ornaments, newest first. A SKU
    that is no item number (a shop's own) finds the ornaments of the listings that carry it.

    Offers: by ornament, then in stock by price (cheapest first), then pre-order, then out of
    stock, then delisted offers. A SKU longer than 64 characters is a 400.
    """
    if len(sku) > _MAX_SKU:  # not echoed: it could be any length
        errors.invalid({"sku": f"at most {_MAX_SKU} characters, not {len(sku):,}."})
    wanted = wanted_sku(sku)
    if not wanted or not wanted.isprintable():
        abort(404, message=f"no product has the SKU {sku!r}.")
    connection = db.reader()
    found = sku_ornaments(connection, wanted)
    query = (
        product_rows()
        .add_columns(_o.year.label("ornament_year"))
        .outerjoin(ornaments, _o.id == _p.ornament_id)
        .where(sku_offers(wanted, [ornament.id for ornament in found]))
        .order_by(sa.desc(_o.year).nulls_last(), _p.ornament_id, *OFFER_ORDER)
    )
    rows = connection.execute(query).all()
    if not rows:
        abort(404, message=f"no product has the SKU {wanted!r}.")
    v1.set_last_modified(max(offer_moments(rows) + [ornament.updated_at for ornament in found]))
    return {
        "sku": wanted,
        "item_number": rules.item_number(wanted),
        "ornaments": [
            summary(ornament, [row for row in rows if row.ornament_id == ornament.id])
            for ornament in found
        ],
        "offers": product_history.offers(connection, rows, args),
    }
