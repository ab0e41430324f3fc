"""Per-key rate limits: a fixed window of `api_rate_limit_window_seconds` per key.

With `REDIS_URL`, the count lives in Redis (`INCR` + `EXPIRE` on
`<redis_key_prefix>:api:rate:<key id>:<window number>`), so every API process shares one
budget per key. Without it, each process counts in memory (a gunicorn worker's share is then
the whole limit: with 2 workers a key may make up to twice the limit).

Redis going away does not take the API down: requests are let through while it is
unreachable, and a warning is logged at most once a minute.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Protocol

import redis

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_after: int  # seconds until the window ends (the Retry-After of a 429)


class RateLimiter(Protocol):
    def hit(self, key: str, limit: int, window: int) -> Decision: ...


def _window(window: int, now: float) -> tuple[int, int]:
    number = int(now // window)
    reset_after = max(1, math.ceil((number + 1) * window - now))
    return number, reset_after


def _decision(count: int, limit: int, reset_after: int) -> Decision:
    return Decision(count <= limit, limit, max(0, limit - count), reset_after)


class MemoryRateLimiter:
    """Counts in this process (no REDIS_URL)."""

    def __init__(self, clock=time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, int]] = {}  # key → (window number, count)

    def hit(self, key: str, limit: int, window: int) -> Decision:
        number, reset_after = _window(window, self._clock())
        with self._lock:
            seen, count = self._counts.get(key, (number, 0))
            count = count + 1 if seen == number else 1
            self._counts[key] = (number, count)
        return _decision(count, limit, reset_after)


class RedisRateLimiter:
    """Counts in Redis, shared by every API process."""

    def __init__(self, client: redis.Redis, prefix: str, clock=time.time) -> None:
        self._client = client
        self._prefix = prefix
        self._clock = clock
        self._warned_at = -math.inf

    def hit(self, key: str, limit: int, window: int) -> Decision:
        number, reset_after = _window(window, self._clock())
        name = f"{self._prefix}:api:rate:{key}:{number}"
        try:
            pipeline = self._client.pipeline(transaction=True)
            pipeline.incr(name)
            pipeline.expire(name, window + 1)
            count, _ = pipeline.execute()
        except redis.RedisError as error:
            now = time.monotonic()
            if now - self._warned_at > 60:
                self._warned_at = now
                logger.warning("rate limit not enforced: Redis is unreachable (%s)", error)
            return Decision(True, limit, limit, reset_after)
        return _decision(int(count), limit, reset_after)


def from_settings(redis_url: str | None, prefix: str) -> RateLimiter:
    if redis_url:
        client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
        return RedisRateLimiter(client, prefix)
    return MemoryRateLimiter()
