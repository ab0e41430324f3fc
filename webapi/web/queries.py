"""The queries of the web view that the /v1 API has no twin for, written once, so the API can
use them too. Each takes a connection and returns rows or plain dataclasses; every value is
bound. Product filters, offer order and product rows are the API's own (`webapi.product_queries`),
the history and its figures come from `storage.history`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.engine import Connection, Row

from christmas_spiders.arguments import ArgumentError, parse_years
from christmas_spiders.domain import PRICE_DROP, RESTOCK, STOCK_EVENTS
from christmas_spiders.storage import history
from christmas_spiders.storage.schema import crawl_runs, ornaments, product_changes, products
from christmas_spiders.storage.schema import vendors as vendor_table
from webapi.ornament_queries import BOXED, sku_offers, sku_ornament_ids
from webapi.product_queries import OFFER_ORDER, filtered, product_rows

_p = products.c
_c = product_changes.c
_r = crawl_runs.c

EVENTS = (PRICE_DROP, RESTOCK)  # the events the changes page shows


def _ornament_key(columns) -> sa.ColumnElement[int]:
    """What makes listings one ornament: their ornament; a listing the rules could not link
    stands alone (its product id, negated: ids are positive)."""
    return sa.func.coalesce(columns.ornament_id, -columns.id)


# --- search ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ornament:
    """One search result: an ornament (or a listing the rules could not link) and its matching
    listings."""

    key: int  # the ornament's id; a listing not linked: its product id, negated
    ornament_id: int | None
    item_number: str | None  # the ornament's; a SKU for a listing not linked
    name: str
    year: int
    series: str | None
    series_number: int | None
    offers: list[Row] = field(default_factory=list)  # in OFFER_ORDER

    def best_at(self, vendor: str) -> list[Row]:
        """The shop's best offer in each condition (boxed first): the first in OFFER_ORDER."""
        best: dict[str, Row] = {}
        for offer in self.offers:
            if offer.vendor == vendor:
                best.setdefault(offer.condition or BOXED, offer)
        return sorted(best.values(), key=lambda offer: (offer.condition or BOXED) != BOXED)


def search(
    connection: Connection,
    filters: Mapping[str, Any],
    page: int,
    per_page: int,
    sku: str | None = None,
) -> tuple[list[Ornament], bool]:
    """One page of ornaments with a listing that matches `filters` (the filters of
    /v1/products) and `sku` in any form (ornament_queries.sku_offers), newest year first, then
    by name; and whether a next page exists.

    Each ornament carries its matching listings only, cheapest in stock first.
    """
    query = filtered(dict(filters))
    if sku is not None:
        found = connection.execute(sku_ornament_ids(sku)).scalars().all()
        query = query.where(sku_offers(sku, found))
    matching = query.subquery()
    key = _ornament_key(matching.c)
    # Grouped first, then joined to the ornaments: one join per result, not per listing.
    grouped = (
        sa.select(
            key.label("key"),
            sa.func.min(matching.c.ornament_id).label("ornament_id"),
            sa.func.min(matching.c.sku).label("sku"),
            sa.func.min(matching.c.name).label("name"),
            sa.func.max(matching.c.release_year).label("year"),
            sa.func.min(matching.c.series).label("series"),
            sa.func.min(matching.c.series_number).label("series_number"),
        )
        .group_by(key)
        .subquery()
    )
    _o = ornaments.c
    year = sa.func.coalesce(_o.year, grouped.c.year)
    name = sa.func.coalesce(_o.name, grouped.c.name)
    found = connection.execute(
        sa.select(
            grouped.c.key,
            grouped.c.ornament_id,
            sa.func.coalesce(_o.item_number, grouped.c.sku).label("item_number"),
            name.label("name"),
            year.label("year"),
            sa.func.coalesce(_o.series, grouped.c.series).label("series"),
            sa.func.coalesce(_o.series_number, grouped.c.series_number).label("series_number"),
        )
        .select_from(grouped.outerjoin(ornaments, _o.id == grouped.c.ornament_id))
        .order_by(year.desc(), name, grouped.c.key)
        .offset((page - 1) * per_page)
        .limit(per_page + 1)
    ).all()
    results = {row.key: Ornament(**row._mapping) for row in found[:per_page]}
    if results:
        offers = query.where(_ornament_key(_p).in_(list(results)))
        for offer in connection.execute(offers.order_by(*OFFER_ORDER)):
            results[_key_of(offer)].offers.append(offer)
    return list(results.values()), len(found) > per_page


def _key_of(row: Row) -> int:
    return row.ornament_id if row.ornament_id is not None else -row.id


# --- one SKU, one product --------------------------------------------------------------------


def sku_listings(connection: Connection, sku: str) -> list[Row]:
    """Every listing with exactly this SKU (as stored: trimmed and upper-case), delisted ones
    included, in OFFER_ORDER, each with its shop's `vendor_name`."""
    return connection.execute(product_rows().where(_p.sku == sku).order_by(*OFFER_ORDER)).all()


def ornament_offers(connection: Connection, ornament_id: int) -> list[Row]:
    """Every offer of an ornament, delisted ones included, in OFFER_ORDER (product rows)."""
    query = product_rows().where(_p.ornament_id == ornament_id).order_by(*OFFER_ORDER)
    return connection.execute(query).all()


def product(connection: Connection, product_id: int) -> Row | None:
    return connection.execute(product_rows().where(_p.id == product_id)).first()


# --- changes, newest first -----------------------------------------------------------------


_CHANGE_COLUMNS = (
    _c.id,
    _c.product_id,
    _c.kind,
    _c.field,
    _c.old_value,
    _c.new_value,
    _c.changed_at,
    _c.crawl_run_id,
    _c.flags,
    _p.vendor,
    vendor_table.c.display_name.label("vendor_name"),
    _p.name,
    _p.sku,
    _p.link,
    _p.currency,
    _p.price,
    _p.availability,
)


def _price_of(column: sa.ColumnElement) -> sa.ColumnElement:
    # CASE keeps the cast away from rows of other fields (PostgreSQL may evaluate the
    # conditions of a WHERE in any order).
    return sa.case((_c.field == "price", sa.cast(column, _p.price.type)))


def _stock_event(event: str) -> sa.ColumnElement[bool]:
    before, after = STOCK_EVENTS[event]
    return sa.and_(
        _c.kind == "changed",
        _c.field == "availability",
        _c.old_value.in_(before),
        _c.new_value.in_(after),
    )


_EVENT_CONDITIONS = {
    # The events of domain.change_event, in SQL; a price flagged suspicious by the history
    # trigger is never a drop.
    PRICE_DROP: sa.and_(
        _c.kind == "changed",
        _c.field == "price",
        sa.not_(sa.literal(history.SUSPICIOUS) == sa.any_(_c.flags)),
        _price_of(_c.new_value) > 0,  # zero is no price (domain.price_of)
        _price_of(_c.new_value) < _price_of(_c.old_value),
    ),
    RESTOCK: _stock_event(RESTOCK),
}


def recent_changes(
    connection: Connection,
    *,
    limit: int,
    since: datetime | None = None,
    events: Iterable[str] | None = None,
    vendors: Sequence[str] | None = None,
    product_ids: Sequence[int] | None = None,
    before_id: int | None = None,
) -> tuple[list[history.Change], int | None]:
    """Changes newest first, at most `limit`, and the `before_id` of the next (older) page.

    `events` keeps price drops and/or restocks only (see EVENTS); `vendors` and `product_ids`
    keep changes of those products. Unlike `history.change_feed` this is a display order, not
    a delivery cursor: a change that commits late with a lower id may land on a page already
    read, which a reader of a web page does not mind.
    """
    query = (
        sa.select(*_CHANGE_COLUMNS)
        .join(products, _p.id == _c.product_id)
        .join(vendor_table, vendor_table.c.id == _p.vendor)
        .order_by(_c.id.desc())
        .limit(limit + 1)
    )
    if since is not None:
        query = query.where(_c.changed_at >= since)
    if events is not None:
        query = query.where(sa.or_(*(_EVENT_CONDITIONS[event] for event in events)))
    if vendors is not None:
        query = query.where(_p.vendor.in_(vendors))
    if product_ids is not None:
        query = query.where(_c.product_id.in_(product_ids))
    if before_id is not None:
        query = query.where(_c.id < before_id)
    rows = connection.execute(query).all()
    changes = [
        history.Change(**{**row._mapping, "flags": tuple(row.flags)}) for row in rows[:limit]
    ]
    return changes, changes[-1].id if len(rows) > limit else None


# --- crawl status ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RunGrid:
    """The last crawl run that covered each vendor × year (None: never crawled)."""

    vendors: tuple[str, ...]
    years: list[int]  # newest first
    cells: dict[tuple[str, int], Row]
    listed: dict[str, set[int]]  # the years each vendor has products of, or was asked to crawl

    def run(self, vendor: str, year: int) -> Row | None:
        return self.cells.get((vendor, year))

    def lists(self, vendor: str, year: int) -> bool:
        return year in self.listed.get(vendor, set())


def run_grid(connection: Connection, vendors: Sequence[str]) -> RunGrid:
    """For each vendor and each year it lists (or a crawl was asked for), its latest run whose
    years included that year: a run of that year, of a range or list holding it, or of every
    year. Runs of one URL or one product are left out."""
    spec = _r.arguments["year"].astext
    latest_per_spec = connection.execute(
        sa.select(crawl_runs, spec.label("year_spec"))
        .where(sa.not_(_r.arguments.has_key("url")), sa.not_(_r.arguments.has_key("product_id")))
        .ext(distinct_on(_r.spider, spec))
        .order_by(_r.spider, spec, _r.id.desc())
    ).all()
    years: dict[str, set[int]] = {vendor: set() for vendor in vendors}
    for vendor, year in connection.execute(
        sa.select(_p.vendor, _p.release_year).group_by(_p.vendor, _p.release_year)
    ):
        years.setdefault(vendor, set()).add(year)
    every_year: dict[str, Row] = {}
    by_year: dict[tuple[str, int], Row] = {}
    for run in latest_per_spec:
        if run.year_spec is None:
            every_year[run.spider] = run
            continue
        try:
            covered = parse_years(run.year_spec)
        except ArgumentError:  # a run that failed on its own bad argument covers no year
            continue
        years.setdefault(run.spider, set()).update(covered)
        for year in covered:
            known = by_year.get((run.spider, year))
            if known is None or run.id > known.id:
                by_year[(run.spider, year)] = run
    cells: dict[tuple[str, int], Row] = {}
    for vendor, vendor_years in years.items():
        for year in vendor_years:
            candidates = [by_year.get((vendor, year)), every_year.get(vendor)]
            found = [run for run in candidates if run is not None]
            if found:
                cells[(vendor, year)] = max(found, key=lambda run: run.id)
    all_years = sorted(set().union(*years.values()), reverse=True) if years else []
    return RunGrid(tuple(vendors), all_years, cells, years)


def latest_runs(connection: Connection, limit: int) -> list[Row]:
    """The newest crawl runs of every vendor, newest first."""
    return connection.execute(sa.select(crawl_runs).order_by(_r.id.desc()).limit(limit)).all()
