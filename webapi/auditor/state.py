"""Delivery state in PostgreSQL: a durable cursor per subscriber, pauses, and the delivery log.

`audit_subscribers.last_change_id` is the cursor: every change up to it has been delivered to
that subscriber (or did not match its filters). It only moves forward, in the same transaction
that logs the delivery, so after a crash the worker resumes right after the last delivery it
recorded; only a delivery in flight at the crash is sent again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from christmas_spiders.config import Subscriber
from christmas_spiders.storage.schema import audit_deliveries, audit_subscribers, product_changes

_subscribers = audit_subscribers.c


@dataclass(frozen=True)
class SubscriberState:
    name: str
    last_change_id: int
    failures: int
    last_error: str | None
    paused_at: datetime | None
    last_delivered_at: datetime | None


def register(connection: Connection, subscribers: Sequence[Subscriber], latest: int) -> list[str]:
    """Create the state of subscribers seen for the first time; returns their names.

    A new subscriber starts at `latest` (the newest change now), or before the first change
    with `"start": "beginning"`. Known subscribers keep their cursor.
    """
    if not subscribers:
        return []
    statement = insert(audit_subscribers).values(
        [
            {"name": s.name, "last_change_id": 0 if s.start == "beginning" else latest}
            for s in subscribers
        ]
    )
    created = connection.execute(
        statement.on_conflict_do_nothing(index_elements=[_subscribers.name]).returning(
            _subscribers.name
        )
    )
    return list(created.scalars())


def load(connection: Connection, name: str) -> SubscriberState:
    row = connection.execute(
        sa.select(
            _subscribers.name,
            _subscribers.last_change_id,
            _subscribers.failures,
            _subscribers.last_error,
            _subscribers.paused_at,
            _subscribers.last_delivered_at,
        ).where(_subscribers.name == name)
    ).one()
    return SubscriberState(**row._mapping)


def advance(connection: Connection, name: str, last_change_id: int) -> None:
    """Move the cursor past changes that matched nothing for this subscriber."""
    connection.execute(
        sa.update(audit_subscribers)
        .where(_subscribers.name == name)
        .values(
            last_change_id=sa.func.greatest(_subscribers.last_change_id, last_change_id),
            updated_at=sa.func.now(),
        )
    )


@dataclass(frozen=True)
class Attempt:
    """One attempt to deliver changes first_change_id–last_change_id, as the log records it."""

    first_change_id: int
    last_change_id: int
    events: int
    attempt: int
    http_status: int | None
    duration_ms: int


def _log(
    connection: Connection, name: str, attempt: Attempt, status: str, error: str | None = None
) -> None:
    connection.execute(
        sa.insert(audit_deliveries).values(
            subscriber=name, status=status, error=error, **asdict(attempt)
        )
    )


def delivered(connection: Connection, name: str, attempt: Attempt) -> None:
    """Record a delivery and move the cursor to its last change, in one transaction."""
    _log(connection, name, attempt, "delivered")
    connection.execute(
        sa.update(audit_subscribers)
        .where(_subscribers.name == name)
        .values(
            last_change_id=sa.func.greatest(_subscribers.last_change_id, attempt.last_change_id),
            failures=0,
            last_error=None,
            paused_at=None,
            last_delivered_at=sa.func.now(),
            updated_at=sa.func.now(),
        )
    )


def failed(connection: Connection, name: str, attempt: Attempt, error: str) -> None:
    _log(connection, name, attempt, "failed", error)
    connection.execute(
        sa.update(audit_subscribers)
        .where(_subscribers.name == name)
        .values(
            failures=_subscribers.failures + 1,
            last_error=error,
            updated_at=sa.func.now(),
        )
    )


def pause(connection: Connection, name: str) -> datetime:
    return connection.execute(
        sa.update(audit_subscribers)
        .where(_subscribers.name == name)
        .values(paused_at=sa.func.now(), updated_at=sa.func.now())
        .returning(_subscribers.paused_at)
    ).scalar_one()


def resume(connection: Connection, name: str) -> bool:
    """Clear a pause (the running worker notices within seconds); False if no such subscriber."""
    result = connection.execute(
        sa.update(audit_subscribers)
        .where(_subscribers.name == name)
        .values(paused_at=None, failures=0, updated_at=sa.func.now())
    )
    return result.rowcount == 1


def statuses(connection: Connection) -> list[dict[str, object]]:
    """Every subscriber's state, with how many changes it is behind."""
    newest = sa.select(sa.func.coalesce(sa.func.max(product_changes.c.id), 0)).scalar_subquery()
    rows = connection.execute(
        sa.select(
            _subscribers.name,
            _subscribers.last_change_id,
            (newest - _subscribers.last_change_id).label("behind"),
            _subscribers.failures,
            _subscribers.paused_at,
            _subscribers.last_delivered_at,
            _subscribers.last_error,
        ).order_by(_subscribers.name)
    )
    return [dict(row._mapping) for row in rows]


def prune_log(connection: Connection, days: int) -> int:
    """Delete delivery log rows older than `days`; returns how many."""
    result = connection.execute(
        sa.delete(audit_deliveries).where(
            audit_deliveries.c.attempted_at < sa.func.now() - sa.func.make_interval(0, 0, 0, days)
        )
    )
    return result.rowcount
