"""History queries: a product's price series, its figures over a window, and the change feed.

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

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection

from christmas_spiders.storage.schema import product_changes, products
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


@dataclass(frozen=True)
class Change:
    """One product_changes row with the product it belongs to (as the product is now)."""

    id: int
    product_id: int
    kind: str
    field: str | None
    old_value: str | None
    new_value: str | None
    changed_at: datetime
    crawl_run_id: int | None
    flags: tuple[str, ...]
    vendor: str
    vendor_name: str
    name: str
    sku: str | None
    link: str
    currency: str
    price: Decimal | None
    availability: str

    @property
    def suspicious(self) -> bool:
        return SUSPICIOUS in self.flags


# --- price series -------------------------------------------------------------------------------

_changes = product_changes.c
_snapshot_price = sa.cast(_changes.new_value, JSONB)["price"].astext
_is_price_point = sa.or_(
    sa.and_(_changes.kind == "changed", _changes.field == "price"),
    sa.and_(_changes.kind == "listed", sa.cast(_changes.new_value, JSONB).has_key("price")),
)
_point_price = sa.cast(
    sa.case((_changes.kind == "listed", _snapshot_price), else_=_changes.new_value),
    products.c.price.type,
)


def _price_points(product_id: int, since: datetime | None, until: datetime | None) -> sa.Select:
    """The price points of a product in [since, until), preceded by the one in effect at since."""
    points = sa.select(
        _changes.id.label("change_id"),
        _changes.changed_at.label("at"),
        _point_price.label("price"),
        (sa.literal(SUSPICIOUS) == sa.any_(_changes.flags)).label("suspicious"),
    ).where(_changes.product_id == product_id, _is_price_point)
    return in_window(points, product_id, _is_price_point, since, until)


def in_window(
    points: sa.Select,
    product_id: int,
    is_point: sa.ColumnElement[bool],
    since: datetime | None,
    until: datetime | None,
) -> sa.Select:
    """Points of one product in [since, until), preceded by the one in effect at `since`."""
    if until is not None:
        points = points.where(_changes.changed_at < until)
    if since is not None:
        opening = (
            sa.select(sa.func.max(_changes.id))
            .where(_changes.product_id == product_id, is_point)
            .where(_changes.changed_at < since)
            .scalar_subquery()
        )
        points = points.where(sa.or_(_changes.changed_at >= since, _changes.id == opening))
    return points


def price_series(
    connection: Connection,
    product_id: int,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[PricePoint]:
    """Every price a product had, oldest first: its price when listed, then each change.

    With `since`, the first point is the price in effect when the window opened (it may be
    older than `since`); `until` is exclusive.
    """
    query = _price_points(product_id, since, until).order_by(_changes.id)
    return [PricePoint(**row._mapping) for row in connection.execute(query)]


def price_figures(
    connection: Connection,
    product_id: int,
    since: datetime | None = None,
    until: datetime | None = None,
    include_suspicious: bool = False,
) -> PriceFigures:
    """Lowest, highest and latest price over a window (see `price_series` for the window).

    Prices set by a change flagged `suspicious` do not count as lowest or highest unless
    `include_suspicious`; "no price" never does. The latest point always counts.
    """
    points = _price_points(product_id, since, until).subquery()
    counted = points.c.price.is_not(None)
    if not include_suspicious:
        counted = sa.and_(counted, sa.not_(points.c.suspicious))
    latest = (
        sa.select(points.c.price, points.c.at)
        .order_by(points.c.change_id.desc())
        .limit(1)
        .subquery()
    )
    query = sa.select(
        sa.select(sa.func.min(points.c.price).filter(counted)).scalar_subquery().label("lowest"),
        sa.select(sa.func.max(points.c.price).filter(counted)).scalar_subquery().label("highest"),
        sa.select(latest.c.price).scalar_subquery().label("latest"),
        sa.select(latest.c.at).scalar_subquery().label("latest_at"),
        sa.select(sa.func.count()).select_from(points).scalar_subquery().label("points"),
    )
    return PriceFigures(**connection.execute(query).one()._mapping)


# --- the change feed ----------------------------------------------------------------------------

_FEED_COLUMNS = (
    _changes.id,
    _changes.product_id,
    _changes.kind,
    _changes.field,
    _changes.old_value,
    _changes.new_value,
    _changes.changed_at,
    _changes.crawl_run_id,
    _changes.flags,
    products.c.vendor,
    vendor_table.c.display_name.label("vendor_name"),
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
    changed, delisted, relisted) and `fields` (the audited field of `changed` rows; rows of
    other kinds pass it). A page reads at most `_SCAN_WINDOW` ids, so it stays cheap even when
    the planner's statistics lag behind a burst of history; it may then hold fewer than
    `limit` changes although more follow.
    """
    end = max(after_id, up_to)
    if product_id is None:  # (product_id, id) is indexed: a product's feed needs no window
        end = min(end, after_id + max(_SCAN_WINDOW, 4 * limit))
    query = (
        sa.select(*_FEED_COLUMNS)
        .join(products, products.c.id == _changes.product_id)
        .join(vendor_table, vendor_table.c.id == products.c.vendor)
        .where(_changes.id > after_id, _changes.id <= end)
        .order_by(_changes.id)
        .limit(limit)
    )
    if vendors is not None:
        query = query.where(products.c.vendor.in_(vendors))
    if kinds is not None:
        query = query.where(_changes.kind.in_(kinds))
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
