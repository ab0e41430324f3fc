"""Price gaps between shops (docs/market.md): the SQL, every value bound. No Flask here.

A **gap** is one ornament in one condition with offers in stock at two or more shops: each
shop's cheapest offer of that condition stands for the shop, and the gap runs from the cheapest
shop to the dearest one. Offers of other conditions never enter it (a boxed offer is compared
with boxed offers only).

Read from the materialized view `market_gaps` (storage/sql/0011_market_views.sql; refreshed by
storage.market after crawls), so the figures are as of its last refresh. It holds each gap once
per set of shops that may count (`shop_set`): the `vendor` filter picks its set, no filter the
set of every shop; each sort has an index on (condition, shop_set, sort column, ornament id).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by

from christmas_spiders.storage.market import market_gaps
from christmas_spiders.storage.schema import vendors

_g = market_gaps.c
_v = vendors.c
_HIDDEN = ("shop_set", "ornament_id")


def shop_set(vendor_ids: list[str] | None) -> sa.ScalarSelect:
    """The `shop_set` of market_gaps for the `vendor` filter (None: every shop)."""
    ids = sa.cast(_v.id, sa.Text)
    query = sa.select(sa.cast(sa.func.array_agg(aggregate_order_by(ids, ids)), ARRAY(sa.Text)))
    if vendor_ids:
        query = query.where(_v.id.in_(vendor_ids))
    return query.scalar_subquery()


def gaps(args: Mapping[str, Any]) -> sa.Subquery:
    """Every gap matching the filters of /v1/market/gaps (`args` as its schema loads them):
    one row per ornament, `id` its ornament id."""
    query = sa.select(
        _g.ornament_id.label("id"), *(column for column in _g if column.name not in _HIDDEN)
    ).where(_g.condition == args["condition"], _g.shop_set == shop_set(args.get("vendor")))
    if "year" in args:
        query = query.where(_g.year == args["year"])
    if "series" in args:
        query = query.where(sa.func.lower(_g.series) == args["series"].lower())
    if "shop" in args:  # at one end of the gap
        query = query.where(
            sa.or_(_g.cheapest_vendor == args["shop"], _g.dearest_vendor == args["shop"])
        )
    if "min_gap" in args:
        query = query.where(_g.gap >= args["min_gap"])
    if "min_gap_percent" in args:
        query = query.where(_g.gap_percent >= args["min_gap_percent"])
    return query.subquery("gaps")


def by_index(args: Mapping[str, Any]) -> bool:
    """Whether a page walks its sort's index (pagination.keyset_page): not when `year` or
    `series` keep few rows (sorting those few is cheaper than walking past the rest)."""
    return not ("year" in args or "series" in args)
