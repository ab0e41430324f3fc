"""Price gaps between shops (docs/market.md): the SQL, every value bound. No Flask here.

A **gap** is one ornament in one condition with offers in stock at two or more shops: each
shop's cheapest offer of that condition stands for the shop, and the gap runs from the cheapest
shop to the dearest one. Offers of other conditions never enter it (a boxed offer is compared
with boxed offers only).

Computed per request over `products` (a grouped query on the `ornament_id` index's rows in
stock), not from a materialized view: the figures are always as fresh as the offers and there
is nothing to refresh after a crawl.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import distinct_on

from christmas_spiders.storage.schema import ornaments, products
from webapi.ornament_queries import IN_STOCK_NOW

_o = ornaments.c
_p = products.c


def shop_offers(args: Mapping[str, Any]) -> sa.Select:
    """Each shop's cheapest offer in stock of each ornament in the condition (ties: lower id),
    of the ornaments and shops the filters keep (filtering here, before any grouping)."""
    query = (
        sa.select(_p.ornament_id, _p.vendor, _p.id, _p.price, _p.link)
        .where(IN_STOCK_NOW, _p.ornament_id.is_not(None), _p.condition == args["condition"])
        .ext(distinct_on(_p.ornament_id, _p.vendor))
        .order_by(_p.ornament_id, _p.vendor, _p.price, _p.id)
    )
    if args.get("vendor"):
        query = query.where(_p.vendor.in_(args["vendor"]))
    kept = sa.select(_o.id)
    if "year" in args:
        kept = kept.where(_o.year == args["year"])
    if "series" in args:
        kept = kept.where(sa.func.lower(_o.series) == args["series"].lower())
    if "year" in args or "series" in args:
        query = query.where(_p.ornament_id.in_(kept))
    return query


def gaps(args: Mapping[str, Any]) -> sa.Subquery:
    """Every gap matching the filters of /v1/market/gaps (`args` as its schema loads them):
    one row per ornament, `id` its ornament id."""
    shop = shop_offers(args).subquery("shop_offers")
    s = shop.c
    # Each shop ranked from the cheapest and from the dearest (ties by shop id): two window
    # passes instead of a sorted aggregate per figure.
    ranked = sa.select(
        *s,
        sa.func.row_number()
        .over(partition_by=s.ornament_id, order_by=(s.price, s.vendor))
        .label("from_cheapest"),
        sa.func.row_number()
        .over(partition_by=s.ornament_id, order_by=(s.price.desc(), s.vendor))
        .label("from_dearest"),
        sa.func.count().over(partition_by=s.ornament_id).label("shops"),
    ).cte("ranked")
    cheap, dear = ranked.alias("cheapest"), ranked.alias("dearest")
    c, d = cheap.c, dear.c
    gap = (d.price - c.price).label("gap")
    # Percent of the cheapest price, one decimal; a free offer (never stored: $0 is no price)
    # would give NULL rather than a division by zero.
    percent = sa.func.round(100 * (d.price - c.price) / sa.func.nullif(c.price, 0), 1).label(
        "gap_percent"
    )
    query = (
        sa.select(
            _o.id,
            _o.year,
            _o.name,
            _o.series,
            _o.series_number,
            _o.item_number,
            sa.literal(args["condition"]).label("condition"),
            c.shops,
            c.id.label("cheapest_id"),
            c.vendor.label("cheapest_vendor"),
            c.link.label("cheapest_link"),
            c.price.label("cheapest_price"),
            d.id.label("dearest_id"),
            d.vendor.label("dearest_vendor"),
            d.link.label("dearest_link"),
            d.price.label("dearest_price"),
            gap,
            percent,
        )
        .select_from(cheap)
        .join(dear, sa.and_(d.ornament_id == c.ornament_id, d.from_dearest == 1))
        .join(ornaments, _o.id == c.ornament_id)
        .where(c.from_cheapest == 1, c.shops >= 2)
    )
    if "shop" in args:  # at one end of the gap
        query = query.where(sa.or_(c.vendor == args["shop"], d.vendor == args["shop"]))
    if "min_gap" in args:
        query = query.where(gap >= args["min_gap"])
    if "min_gap_percent" in args:
        query = query.where(percent >= args["min_gap_percent"])
    return query.subquery("gaps")
