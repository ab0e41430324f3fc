"""The horizon: the change id up to which the history is final, shared by all subscribers.

Change ids are allocated in order but committed in any order, so "the highest id I can see" is
not safe to deliver up to: a transaction still open may hold lower ids. `HorizonTracker` turns
successive `history.change_horizon` observations — (highest visible id, transactions writing
product_changes now) — into a safe horizon: a high mark becomes final once every transaction
that was writing when it was observed has ended.
"""

from __future__ import annotations

import threading
import time
from collections import deque


class Horizon:
    """The settled change id; subscriber threads wait here for it to pass their cursor."""

    def __init__(self) -> None:
        self._value = 0
        self._closed = False
        self._condition = threading.Condition()

    @property
    def value(self) -> int:
        return self._value

    def advance(self, value: int) -> None:
        with self._condition:
            if value > self._value:
                self._value = value
                self._condition.notify_all()

    def close(self) -> None:
        """Wake every waiting thread (the worker is stopping)."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    def wait_beyond(self, cursor: int, timeout: float) -> int:
        """Wait until the horizon passes `cursor` (or `timeout`, or close); the horizon."""
        with self._condition:
            self._condition.wait_for(lambda: self._value > cursor or self._closed, timeout)
            return self._value


class HorizonTracker:
    def __init__(self, max_pending: int = 256) -> None:
        self._pending: deque[tuple[int, frozenset[str], float]] = deque()
        self._max_pending = max_pending

    def observe(self, high: int, writers: frozenset[str]) -> int | None:
        """Record one observation; returns the newest settled high mark, if any settled."""
        if not self._pending or self._pending[-1][:2] != (high, writers):
            self._pending.append((high, writers, time.monotonic()))
        settled = None
        for entry_high, entry_writers, _ in self._pending:
            # Writers are virtual transaction ids, never reused: one that is no longer
            # writing now has ended, and with it every id it held is committed or gone.
            if not entry_writers & writers and (settled is None or entry_high > settled):
                settled = entry_high
        if settled is not None:
            self._pending = deque(entry for entry in self._pending if entry[0] > settled)
        while len(self._pending) > self._max_pending:
            self._pending.popleft()  # only delays settling: newer entries cover these ids
        return settled

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    def held_back_for(self) -> float:
        """Seconds since the oldest high mark still waiting for writers was observed."""
        return time.monotonic() - self._pending[0][2] if self._pending else 0.0
