"""History queries: a product's prices and availability over a window, and the change feed.

Used by the API and the audit worker. SQLAlchemy Core with bound parameters only.

**Reading the feed without skipping.** Change ids come from a sequence, so they are allocated in
order but committed in any order: while one crawl's transaction is still open with ids 100–150,
another may commit 151–160. A reader that remembers "last id seen = 160" would never see 100–150.
`settled_change_id` therefore says up to which id the history is final; read the feed with
``up_to`` set to it (in a READ COMMITTED transaction, the default), continue from the page's
``next_after_id``, and nothing is ever skipped.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection

from christmas_spiders.domain import CHANGE_KINDS, HEALTH_KIND, change_event
from christmas_spiders.storage.schema import crawl_runs, product_changes, products
from christmas_spiders.storage.schema import vendors as vendor_table

SUSPICIOUS = "suspicious"
# Ids one feed page looks at, at most (see change_feed).
_SCAN_WINDOW = 1000
# Lock modes that writing product_changes takes (INSERT/UPDATE/DELETE and anything stronger).
_WRITE_LOCK_MODES = (
    "RowExclusiveLock",
    "ShareRowExclusiveLock",
    "ExclusiveLock",
    "AccessExclusiveLock",
)


@dataclass(frozen=True)
class PricePoint:
    change_id: int
    at: datetime
    price: Decimal | None  # None: the shop showed no price (the pipeline stores $0.00 as none)
    suspicious: bool  # the change that set this price was flagged by the history trigger


@dataclass(frozen=True)
class PriceFigures:
    lowest: Decimal | None
    highest: Decimal | None
    latest: Decimal | None
    latest_at: datetime | None
    points: int


_PRODUCT_FIELDS = (
    "vendor",
    "vendor_name",
    "name",
    "sku",
    "link",
    "currency",
    "price",
    "availability",
)


@dataclass(frozen=True)
class Change:
    """One product_changes row with the product it belongs to (as the product is now).

    A `crawl_health` row (christmas_spiders.health) belongs to no product: its product fields
    are None, `vendor` is its crawl run's, and `new_value` holds the verdict as JSON.
    """

    id: int
    product_id: int | None
    kind: str
    field: str | None
    old_value: str | None
    new_value: str | None
    changed_at: datetime
    crawl_run_id: int | None
    flags: tuple[str, ...]
    vendor: str
    vendor_name: str
    name: str | None
    sku: str | None
    link: str | None
    currency: str | None
    price: Decimal | None
    availability: str | None

    @property
    def suspicious(self) -> bool:
        return SUSPICIOUS in self.flags

    @property
    def product(self) -> dict[str, Any]:
        """The fields of its product, as the product is now."""
        return {name: getattr(self, name) for name in _PRODUCT_FIELDS}

    @property
    def event(self) -> str | None:
        """A price drop, a restock… (domain.EVENTS), or None."""
        return change_event(self.kind, self.field, self.old_value, self.new_value, self.suspicious)


# --- a product's history: prices and availability -------------------------------------------

_changes = product_changes.c
_snapshot = sa.cast(_changes.new_value, JSONB)
_is_price_point = sa.or_(
    sa.and_(_changes.kind == "changed", _changes.field == "price"),
    sa.and_(_changes.kind == "listed", _snapshot.has_key("price")),
)
_point_price = sa.cast(
    sa.case((_changes.kind == "listed", _snapshot["price"].astext), else_=_changes.new_value),
    products.c.price.type,
)
_is_availability_point = sa.or_(
    sa.and_(_changes.kind == "changed", _changes.field == "availability"),
    _changes.kind.in_(("listed", "relisted", "delisted")),
)
_point_availability = sa.case(
    (_changes.kind == "changed", _changes.new_value),
    (_changes.kind == "delisted", sa.null()),
    else_=_snapshot["availability"].astext,
)


@dataclass(frozen=True)
class AvailabilityPoint:
    change_id: int
    at: datetime
    kind: str  # listed, changed, delisted or relisted
    availability: str | None  # None: delisted


Point = TypeVar("Point", PricePoint, AvailabilityPoint)


@dataclass(frozen=True)
class ProductHistory:
    """A product's prices and availability over a window, oldest first.

    With `since`, each series opens with the point in effect then (it may be older than
    `since`); `until` is exclusive.
    """

    prices: list[PricePoint]
    availability: list[AvailabilityPoint]

    def since(self, moment: datetime) -> ProductHistory:
        """The same history from `moment` on (each series opening with the point then)."""
        return ProductHistory(
            _in_window(self.prices, moment), _in_window(self.availability, moment)
        )

    def figures(self, include_suspicious: bool = False) -> PriceFigures:
        """Lowest, highest and latest price of the window. Prices set by a change flagged
        `suspicious` do not count as lowest or highest unless `include_suspicious`; "no price"
        never does. The latest point always counts."""
        counted = [
            point.price
            for point in self.prices
            if point.price is not None and (include_suspicious or not point.suspicious)
        ]
        latest = self.prices[-1] if self.prices else None
        return PriceFigures(
            lowest=min(counted, default=None),
            highest=max(counted, default=None),
            latest=latest.price if latest else None,
            latest_at=latest.at if latest else None,
            points=len(self.prices),
        )


def product_histories(
    connection: Connection,
    product_ids: Sequence[int],
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[int, ProductHistory]:
    """The history of each of these products (one query for all of them)."""
    query = sa.select(
        _changes.id,
        _changes.product_id,
        _changes.changed_at,
        _changes.kind,
        _is_price_point.label("is_price"),
        sa.case((_is_price_point, _point_price)).label("price"),
        (sa.literal(SUSPICIOUS) == sa.any_(_changes.flags)).label("suspicious"),
        _is_availability_point.label("is_availability"),
        sa.case((_is_availability_point, _point_availability)).label("availability"),
    ).where(
        _changes.product_id.in_(list(product_ids)),
        sa.or_(_is_price_point, _is_availability_point),
    )
    if until is not None:
        query = query.where(_changes.changed_at < until)
    prices: dict[int, list[PricePoint]] = {product_id: [] for product_id in product_ids}
    availability: dict[int, list[AvailabilityPoint]] = {
        product_id: [] for product_id in product_ids
    }
    for row in connection.execute(query.order_by(_changes.product_id, _changes.id)):
        if row.is_price:
            prices[row.product_id].append(
                PricePoint(row.id, row.changed_at, row.price, row.suspicious)
            )
        if row.is_availability:
            availability[row.product_id].append(
                AvailabilityPoint(row.id, row.changed_at, row.kind, row.availability)
            )
    found = {
        product_id: ProductHistory(prices[product_id], availability[product_id])
        for product_id in product_ids
    }
    return found if since is None else {key: one.since(since) for key, one in found.items()}


def _in_window(points: list[Point], since: datetime) -> list[Point]:
    """The points from `since` on, preceded by the last one before it (the state in effect)."""
    opening = max((p.change_id for p in points if p.at < since), default=None)
    return [p for p in points if p.at >= since or p.change_id == opening]


# --- the change feed ----------------------------------------------------------------------------


def _feed_columns(vendor: sa.ColumnElement[str]) -> tuple[sa.ColumnElement[object], ...]:
    return (
        *_CHANGE_COLUMNS,
        vendor.label("vendor"),
        vendor_table.c.display_name.label("vendor_name"),
        *_PRODUCT_COLUMNS,
    )


_CHANGE_COLUMNS = (
    _changes.id,
    _changes.product_id,
    _changes.kind,
    _changes.field,
    _changes.old_value,
    _changes.new_value,
    _changes.changed_at,
    _changes.crawl_run_id,
    _changes.flags,
)
_PRODUCT_COLUMNS = (
    products.c.name,
    products.c.sku,
    products.c.link,
    products.c.currency,
    products.c.price,
    products.c.availability,
)


@dataclass(frozen=True)
class FeedPage:
    changes: list[Change]
    # Pass as `after_id` for the next page: every change up to this id has been considered
    # (returned, or left out by the filters). Never beyond the `up_to` given.
    next_after_id: int


def change_feed(
    connection: Connection,
    after_id: int,
    up_to: int,
    limit: int = 100,
    vendors: Sequence[str] | None = None,
    kinds: Sequence[str] | None = None,
    fields: Sequence[str] | None = None,
    product_id: int | None = None,
) -> FeedPage:
    """Changes with after_id < id <= up_to, oldest first, at most `limit`.

    Pass `up_to=settled_change_id(connection)` to never skip a change that commits late, and
    continue from `next_after_id`. Filters: `vendors` (product vendors), `kinds` (listed,
    changed, delisted, relisted by default; crawl_health rows only when asked for) and
    `fields` (the audited field of `changed` rows; rows of other kinds pass it). A page reads
    at most `_SCAN_WINDOW` ids, so it stays cheap even when the planner's statistics lag
    behind a burst of history; it may then hold fewer than `limit` changes although more
    follow.
    """
    end = max(after_id, up_to)
    if product_id is None:  # (product_id, id) is indexed: a product's feed needs no window
        end = min(end, after_id + max(_SCAN_WINDOW, 4 * limit))
    kinds = CHANGE_KINDS if kinds is None else kinds
    if HEALTH_KIND in kinds:  # rows without a product: their vendor is their crawl run's
        source = product_changes.outerjoin(products, products.c.id == _changes.product_id)
        source = source.outerjoin(crawl_runs, crawl_runs.c.id == _changes.crawl_run_id)
        vendor = sa.func.coalesce(products.c.vendor, crawl_runs.c.spider)
    else:
        source = product_changes.join(products, products.c.id == _changes.product_id)
        vendor = products.c.vendor
    query = (
        sa.select(*_feed_columns(vendor))
        .select_from(source.join(vendor_table, vendor_table.c.id == vendor))
        .where(_changes.id > after_id, _changes.id <= end, _changes.kind.in_(kinds))
        .order_by(_changes.id)
        .limit(limit)
    )
    if vendors is not None:
        query = query.where(vendor.in_(vendors))
    if fields is not None:
        query = query.where(sa.or_(_changes.kind != "changed", _changes.field.in_(fields)))
    if product_id is not None:
        query = query.where(_changes.product_id == product_id)
    changes = [
        Change(**{**row._mapping, "flags": tuple(row.flags)}) for row in connection.execute(query)
    ]
    return FeedPage(changes, changes[-1].id if len(changes) == limit else end)


# --- how far the history is final ---------------------------------------------------------------

_HORIZON = sa.text(
    # One statement, so the snapshot behind max(id) is taken before pg_locks is read.
    """
    SELECT (SELECT coalesce(max(id), 0) FROM product_changes) AS high,
           ARRAY(SELECT DISTINCT virtualtransaction FROM pg_locks
                  WHERE locktype = 'relation' AND granted
                    AND database = (SELECT oid FROM pg_database
                                     WHERE datname = current_database())
                    AND relation = 'product_changes'::regclass
                    AND mode IN :modes
                    AND pid <> pg_backend_pid()) AS writers
    """
).bindparams(sa.bindparam("modes", value=_WRITE_LOCK_MODES, expanding=True))


def change_horizon(connection: Connection) -> tuple[int, frozenset[str]]:
    """The highest visible change id, and the transactions now writing product_changes.

    Every id up to that high mark is final (committed or rolled back for good) once all the
    returned writers have ended: a transaction that took an id not visible here must still be
    open, and holds its write lock on product_changes until it ends. (This relies on the id
    sequence handing out ids in time order: its default CACHE 1.)
    """
    high, writers = connection.execute(_HORIZON).one()
    return high, frozenset(writers)


def settled_change_id(
    connection: Connection, timeout: float = 2.0, interval: float = 0.02
) -> int | None:
    """The highest change id up to which the history is final, waiting up to `timeout` seconds
    for transactions that are writing history now; None if they are still open by then."""
    high, writers = change_horizon(connection)
    deadline = time.monotonic() + timeout
    while writers:
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)
        writers &= change_horizon(connection)[1]
    return high
