"""Backoff delays and the database errors worth retrying (a lost or refused connection)."""

from __future__ import annotations

import random

import psycopg2
import sqlalchemy as sa

# A dropped connection, a server that is restarting or refuses connections, a terminated
# backend: the worker waits and tries again, forever.
TRANSIENT_DB_ERRORS = (
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    psycopg2.OperationalError,
    psycopg2.InterfaceError,
)


class Backoff:
    """Exponential delays with jitter: first, 2×first, 4×first … capped at `maximum`."""

    def __init__(self, first: float, maximum: float) -> None:
        self.first = first
        self.maximum = maximum
        self._attempt = 0

    def next(self) -> float:
        delay = min(self.maximum, self.first * 2**self._attempt)
        self._attempt += 1
        return delay * random.uniform(0.8, 1.0)

    def reset(self) -> None:
        self._attempt = 0
