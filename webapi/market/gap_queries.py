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
from sqlalchemy.sql.expression import Grouping

from christmas_spiders.storage.schema import ornaments, products
from webapi.ornament_queries import IN_STOCK_NOW

_o = ornaments.c
_p = products.c


def shop_offers(condition: str, vendors: list[str] | None) -> sa.Subquery:
    """Each shop's cheapest offer in stock of each ornament in `condition` (ties: lower id)."""
    query = (
        sa.select(_p.ornament_id, _p.vendor, _p.id, _p.price, _p.link)
        .where(IN_STOCK_NOW, _p.ornament_id.is_not(None), _p.condition == condition)
        .ext(distinct_on(_p.ornament_id, _p.vendor))
        .order_by(_p.ornament_id, _p.vendor, _p.price, _p.id)
    )
    if vendors:
        query = query.where(_p.vendor.in_(vendors))
    return query.subquery("shop_offers")


def _first(column: Any, *order: Any) -> Any:
    # (array_agg(x ORDER BY …))[1]: PostgreSQL wants the aggregate in parentheses.
    return Grouping(sa.func.array_agg(column).aggregate_order_by(*order))[1]


def gaps(args: Mapping[str, Any]) -> sa.Subquery:
    """Every gap matching the filters of /v1/market/gaps (`args` as its schema loads them):
    one row per ornament, `id` its ornament id."""
    shop = shop_offers(args["condition"], args.get("vendor"))
    s = shop.c
    cheap, dear = (s.price, s.vendor), (s.price.desc(), s.vendor)
    per_ornament = (
        sa.select(
            s.ornament_id,
            sa.func.count().label("shops"),
            _first(s.id, *cheap).label("cheapest_id"),
            _first(s.vendor, *cheap).label("cheapest_vendor"),
            _first(s.link, *cheap).label("cheapest_link"),
            sa.func.min(s.price).label("cheapest_price"),
            _first(s.id, *dear).label("dearest_id"),
            _first(s.vendor, *dear).label("dearest_vendor"),
            _first(s.link, *dear).label("dearest_link"),
            sa.func.max(s.price).label("dearest_price"),
        )
        .group_by(s.ornament_id)
        .having(sa.func.count() >= 2)
        .subquery("per_ornament")
    )
    g = per_ornament.c
    gap = (g.dearest_price - g.cheapest_price).label("gap")
    # Percent of the cheapest price, one decimal; a free offer (never stored: $0 is no price)
    # would give NULL rather than a division by zero.
    percent = sa.func.round(
        100 * (g.dearest_price - g.cheapest_price) / sa.func.nullif(g.cheapest_price, 0), 1
    ).label("gap_percent")
    query = sa.select(
        _o.id,
        _o.year,
        _o.name,
        _o.series,
        _o.series_number,
        _o.item_number,
        sa.literal(args["condition"]).label("condition"),
        *(column for column in g if column.key != "ornament_id"),
        gap,
        percent,
    ).join(per_ornament, g.ornament_id == _o.id)
    if "year" in args:
        query = query.where(_o.year == args["year"])
    if "series" in args:
        query = query.where(sa.func.lower(_o.series) == args["series"].lower())
    if "shop" in args:  # at one end of the gap
        query = query.where(
            sa.or_(g.cheapest_vendor == args["shop"], g.dearest_vendor == args["shop"])
        )
    if "min_gap" in args:
        query = query.where(gap >= args["min_gap"])
    if "min_gap_percent" in args:
        query = query.where(percent >= args["min_gap_percent"])
    return query.subquery("gaps")
