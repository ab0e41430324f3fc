"""Rarity (docs/market.md): per ornament, how many shops list it, the share of the last 90 and
365 days it was in stock at any shop, and its price trend. The SQL, every value bound; no Flask.

**In stock over time** comes from `product_changes`: an offer's `listed`/`relisted` snapshot
and its `changed` availability rows set its state (in stock: available or pre-order), a
`delisted` row ends it; each state lasts until the offer's next such row, the last one until
now. An ornament is in stock while any of its offers is: the union of their in-stock spans
(gaps and islands), so two shops at once count once. Offers belong to the ornament they are
linked to today.

**Price trend**: how its listed offers' prices moved since 90 days ago, matched offer by offer
(only offers priced then and now count): their sum now over their sum then, minus one, in
percent; `trend_offers` says how many offers stand behind it.

Computed when the materialized view `market_rarity` is refreshed (storage/sql/
0011_market_views.sql; storage.market refreshes it after crawls and daily), "now" being the
refresh: a request reads one row per ornament through the index of its sort.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from christmas_spiders.storage.market import market_rarity

SHORT_DAYS, LONG_DAYS = 90, 365

_r = market_rarity.c


def rarity(args: Mapping[str, Any]) -> sa.Subquery:
    """Every ornament with a linked offer and the filters of /v1/market/rare (`year`,
    `series`), its rarity figures as of the last refresh (one row each, `id` its ornament)."""
    query = sa.select(
        _r.ornament_id.label("id"), *(column for column in _r if column.name != "ornament_id")
    )
    if "year" in args:
        query = query.where(_r.year == args["year"])
    if "series" in args:
        query = query.where(sa.func.lower(_r.series) == args["series"].lower())
    return query.subquery("rarity")


def by_index(args: Mapping[str, Any]) -> bool:
    """Whether a page walks its sort's index (pagination.keyset_page): not when `year` or
    `series` keep few rows."""
    return not ("year" in args or "series" in args)
