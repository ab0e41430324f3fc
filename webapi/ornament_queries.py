"""Ornaments as the API, the web view and the audit worker read them (issue #15): the SQL
builders on `ornaments` and its offers (the products linked to it), every value bound.

An **offer** is one shop's listing of an ornament, with its condition (`boxed`, `no_box`,
`no_tag`, `damaged_box`). An offer is **in stock** when it is listed, priced and available or on
pre-order (domain.IN_STOCK): something a collector can buy today. No Flask here: the audit
worker imports this module too.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from christmas_spiders.catalog import rules
from christmas_spiders.domain import IN_STOCK
from christmas_spiders.storage.schema import ornaments, products
from christmas_spiders.storage.schema import vendors as vendor_table
from webapi.product_queries import OFFER_ORDER, name_matches

_o = ornaments.c
_p = products.c

BOXED = rules.BOXED
LISTED = _p.delisted_at.is_(None)
IN_STOCK_NOW = sa.and_(LISTED, _p.availability.in_(IN_STOCK), _p.price.is_not(None))


def wanted_sku(sku: str) -> str:
    """A SKU as products store it: trimmed and upper-case."""
    return sku.strip().upper()


def sku_ornament_ids(sku: str) -> sa.Select:
    """The ornaments a SKU names, in any form ('2999QXM2797', 'qxm2797', 'QXM2797NB'): those
    with its Hallmark item number, of every year (item numbers are unique within a year only,
    so a number Hallmark used again is one ornament per year), and those of the listings whose
    SKU is exactly this one (a shop's own SKU, which is no item number)."""
    wanted = wanted_sku(sku)
    by_listing = sa.select(_p.ornament_id).where(_p.sku == wanted, _p.ornament_id.is_not(None))
    number = rules.item_number(wanted)
    if number is None:
        return by_listing
    return sa.union(sa.select(_o.id).where(_o.item_number == number), by_listing)


def sku_ornaments(connection: Connection, sku: str) -> list[Row]:
    """The ornaments of a SKU in any form (sku_ornament_ids), newest year first."""
    query = sa.select(ornaments).where(_o.id.in_(sku_ornament_ids(sku)))
    return connection.execute(query.order_by(_o.year.desc(), _o.id)).all()


def sku_offers(sku: str, ornament_ids: Collection[int]) -> sa.ColumnElement[bool]:
    """Products that are offers of a SKU's ornaments (`ornament_ids`, found first: an OR with a
    subquery would read every product), or listings with exactly this SKU (one the rules could
    not link is still found by it)."""
    return sa.or_(_p.ornament_id.in_(sorted(ornament_ids)), _p.sku == wanted_sku(sku))


def filtered(args: Mapping[str, Any]) -> sa.Select:
    """The ornaments matching the filters of /v1/ornaments (`args` as its schema loads them)."""
    query = sa.select(ornaments)
    if "q" in args:  # the words of any shop's name of it
        named = sa.select(_p.ornament_id).where(name_matches(args["q"]))
        query = query.where(_o.id.in_(named))
    if "year" in args:
        query = query.where(_o.year == args["year"])
    if "series" in args:
        query = query.where(sa.func.lower(_o.series) == args["series"].lower())
    if "item_number" in args:
        query = query.where(_o.item_number == args["item_number"])
    offers = sa.select(_p.id).where(_p.ornament_id == _o.id, LISTED)
    if "vendor" in args:
        offers = offers.where(_p.vendor.in_(args["vendor"]))
        query = query.where(sa.exists(offers))
    if args.get("in_stock") is not None:
        in_stock = sa.exists(offers.where(IN_STOCK_NOW))
        query = query.where(in_stock if args["in_stock"] else sa.not_(in_stock))
    return query


# When any ornament or offer last changed: the Last-Modified of ornament lists.
ORNAMENTS_MODIFIED = sa.func.greatest(
    sa.select(sa.func.max(_o.updated_at)).scalar_subquery(),
    sa.select(sa.func.max(_p.updated_at)).scalar_subquery(),
    sa.select(sa.func.max(_p.last_synced_at)).scalar_subquery(),
    sa.select(sa.func.max(_p.delisted_at)).scalar_subquery(),
)


# --- offers ---------------------------------------------------------------------------------


_OFFER_COLUMNS = (
    _p.id,
    _p.ornament_id,
    _p.vendor,
    vendor_table.c.display_name.label("vendor_name"),
    _p.name,
    _p.sku,
    _p.condition,
    _p.price,
    _p.currency,
    _p.availability,
    _p.link,
    _p.delisted_at,
)


@dataclass(frozen=True)
class Best:
    """An ornament's cheapest offer in stock, and its cheapest boxed one (None: none)."""

    cheapest: Row | None = None
    cheapest_boxed: Row | None = None


NOTHING = Best()


def listed_offers(connection: Connection, ornament_ids: Collection[int]) -> dict[int, list[Row]]:
    """The listed offers of each ornament (summary columns), in OFFER_ORDER."""
    found: defaultdict[int, list[Row]] = defaultdict(list)
    if not ornament_ids:
        return found
    query = (
        sa.select(*_OFFER_COLUMNS)
        .join(vendor_table, vendor_table.c.id == _p.vendor)
        .where(_p.ornament_id.in_(sorted(ornament_ids)), LISTED)
        .order_by(*OFFER_ORDER)
    )
    for row in connection.execute(query):
        found[row.ornament_id].append(row)
    return found


def in_stock(offer: Any) -> bool:
    return offer.delisted_at is None and offer.availability in IN_STOCK and offer.price is not None


def best(offers: Iterable[Any]) -> Best:
    """The cheapest offer in stock and the cheapest boxed one, of offers in OFFER_ORDER (ties
    go to the one first in that order: available before pre-order, then the lower id)."""
    buyable = sorted((offer for offer in offers if in_stock(offer)), key=lambda o: o.price)
    boxed = [offer for offer in buyable if offer.condition == BOXED]
    return Best(buyable[0] if buyable else None, boxed[0] if boxed else None)


def best_by_ornament(offers: Mapping[int, Sequence[Row]]) -> dict[int, Best]:
    return {ornament_id: best(found) for ornament_id, found in offers.items()}


def ornament(connection: Connection, ornament_id: int) -> Row | None:
    return connection.execute(sa.select(ornaments).where(_o.id == ornament_id)).first()
