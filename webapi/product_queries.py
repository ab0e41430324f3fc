"""Which products, in which order, with which columns: the SQL builders on `products` that the
/v1 blueprints and the web view share (every value bound, never formatted)."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from christmas_spiders.domain import AVAILABLE, PREORDER
from christmas_spiders.storage.schema import (
    NAME_SEARCH_CONFIG,
    name_search_vector,
    product_changes,
    products,
)
from christmas_spiders.storage.schema import vendors as vendor_table
from webapi.product_history import last_changed

_p = products.c
_WORD = re.compile(r"\w+")
_MAX_WORDS = 10

# In stock first (cheapest first), then pre-orders, then out of stock; delisted offers last.
OFFER_ORDER = (
    _p.delisted_at.is_not(None),
    sa.case((_p.availability == AVAILABLE, 0), (_p.availability == PREORDER, 1), else_=2),
    _p.price.asc().nulls_last(),
    _p.id,
)


def _tsquery(words: str) -> str:
    """`rock hors` → `'rock':* & 'hors':*` (words are \\w+, so there is nothing to escape)."""
    found = _WORD.findall(words.lower())[:_MAX_WORDS]
    return " & ".join(f"'{word}':*" for word in found)


def name_matches(words: str) -> sa.ColumnElement[bool]:
    """Products whose name has each of `words` as a word prefix (the name search index)."""
    tsquery = sa.func.to_tsquery(
        sa.literal_column(f"'{NAME_SEARCH_CONFIG}'::regconfig"), _tsquery(words)
    )
    return name_search_vector.op("@@")(tsquery)


def filtered(args: dict[str, Any]) -> sa.Select:
    """The products matching the filters of `args` (those of /v1/products)."""
    query = sa.select(products)
    if "vendor" in args:
        query = query.where(_p.vendor.in_(args["vendor"]))
    if "release_year" in args:
        query = query.where(_p.release_year == args["release_year"])
    if "release_year_min" in args:
        query = query.where(_p.release_year >= args["release_year_min"])
    if "release_year_max" in args:
        query = query.where(_p.release_year <= args["release_year_max"])
    if "sku" in args:
        query = query.where(_p.sku == args["sku"].strip().upper())
    if "series" in args:
        query = query.where(sa.func.lower(_p.series) == args["series"].lower())
    if "artist" in args:
        query = query.where(sa.func.lower(_p.artist) == args["artist"].lower())
    if "availability" in args:
        query = query.where(_p.availability.in_(args["availability"]))
    if "price_min" in args:
        query = query.where(_p.price >= args["price_min"])
    if "price_max" in args:
        query = query.where(_p.price <= args["price_max"])
    if "q" in args:
        query = query.where(name_matches(args["q"]))
    if "changed_since" in args:
        since = args["changed_since"]
        query = query.where(sa.or_(_p.updated_at >= since, _p.delisted_at >= since))
    if not args.get("include_delisted"):
        query = query.where(_p.delisted_at.is_(None))
    return query


# A year (or a few) holds ~2% of the catalog, found through the (vendor, release_year) index:
# sorting those few beats walking the sort order's index past thousands the year filter rejects,
# which PostgreSQL picks when it misjudges how vendor and year correlate. Other filters are left
# to the planner, which estimates them well.
_NARROW_YEARS = 3


def selective(args: dict[str, Any]) -> bool:
    """Whether the filters of `args` narrow the products to a few years (see above)."""
    if "release_year" in args:
        return True
    low, high = args.get("release_year_min"), args.get("release_year_max")
    return low is not None and high is not None and high - low < _NARROW_YEARS


# When any product last changed or was synced (the Last-Modified of product lists): a column
# of the page's own query (PostgreSQL computes it once), so it costs no statement of its own.
CATALOG_MODIFIED = sa.func.greatest(
    sa.select(sa.func.max(_p.updated_at)).scalar_subquery(),
    sa.select(sa.func.max(_p.last_synced_at)).scalar_subquery(),
    sa.select(sa.func.max(_p.delisted_at)).scalar_subquery(),
)


def catalog_modified(connection: Connection):
    return connection.execute(sa.select(CATALOG_MODIFIED)).scalar()


def product_rows() -> sa.Select:
    """Products as the product and SKU views show them: with their shop's name, their last
    change's id and when their history last grew (their Last-Modified)."""
    last_change = (
        sa.select(sa.func.max(product_changes.c.id))
        .where(product_changes.c.product_id == _p.id)
        .scalar_subquery()
    )
    return sa.select(
        products,
        vendor_table.c.display_name.label("vendor_name"),
        last_change.label("last_change_id"),
        last_changed(_p.id).label("last_changed_at"),
    ).join(vendor_table, vendor_table.c.id == _p.vendor)
