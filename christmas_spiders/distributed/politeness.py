"""The per-shop politeness budget, shared by every worker through Redis (docs/scale-out.md).

Without Redis, Scrapy's per-process limits are the politeness (``CONCURRENT_REQUESTS_PER_DOMAIN``,
AutoThrottle). With several workers those would multiply, so with Redis every request to a shop
also needs, from one budget per shop whatever the number of workers or runs:

* a concurrency lease: at most ``shop_max_concurrency`` requests in flight on the shop
  (a sorted set of leases that expire after ``LEASE_SECONDS``, should a worker die holding one);
* a token: a token bucket refilled at ``shop_requests_per_second``, holding a tenth of a
  second's worth of tokens and at least one: at polite rates (under 10/s) one request started
  every 1/rate seconds across all workers, never a burst.

``SharedBudgetMiddleware`` asks for both before a request is downloaded (or rendered), waiting
without blocking the reactor, and returns the lease when the response or error comes back. A
request still waiting when the worker stops is handed back to the shared queue.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

import redis
from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response

from christmas_spiders.config import Config
from christmas_spiders.distributed import connection, defaults, keys

logger = logging.getLogger(__name__)

LEASE_META = "christmas_budget_lease"

# KEYS: leases bucket; ARGV: lease id, concurrency, rate per s, lease ms[, now ms (a test's
# clock; else the Redis clock)]. Returns 0 when granted, else the milliseconds to wait before
# asking again (-1: every lease taken).
_ACQUIRE = """
local now = tonumber(ARGV[5])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return -1 end
local rate = tonumber(ARGV[3]) / 1000
local capacity = math.max(1, tonumber(ARGV[3]) / 10)
local tokens = tonumber(redis.call('HGET', KEYS[2], 'tokens')) or 1
local at = tonumber(redis.call('HGET', KEYS[2], 'at')) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
if tokens < 1 then
  redis.call('HSET', KEYS[2], 'tokens', tokens, 'at', now)
  return math.ceil((1 - tokens) / rate)
end
redis.call('HSET', KEYS[2], 'tokens', tokens - 1, 'at', now)
redis.call('PEXPIRE', KEYS[2], math.ceil(1 / rate) + 60000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]))
return 0
"""


class ShopBudget:
    """One shop's shared budget. `clock` (seconds) replaces the Redis clock, for tests."""

    def __init__(
        self,
        server: redis.Redis,
        prefix: str,
        vendor: str,
        *,
        concurrency: int,
        rate: float,
        lease_seconds: float = defaults.LEASE_SECONDS,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.server = server
        self.clock = clock
        self.keys = [keys.shop_leases(prefix, vendor), keys.shop_bucket(prefix, vendor)]
        self.concurrency = concurrency
        self.rate = rate
        self.lease_ms = int(lease_seconds * 1000)
        self._acquire = server.register_script(_ACQUIRE)

    def try_acquire(self, lease: str) -> float:
        """0 when the lease and a token were granted, else seconds to wait before retrying."""
        args = [lease, self.concurrency, self.rate, self.lease_ms]
        if self.clock is not None:
            args.append(round(self.clock() * 1000, 3))
        wait_ms = int(self._acquire(keys=self.keys, args=args))
        if wait_ms == 0:
            return 0.0
        if wait_ms < 0:  # every lease taken: ask again soon
            return defaults.BUDGET_RETRY_SECONDS
        return max(wait_ms / 1000, 0.001)

    def release(self, lease: str) -> None:
        self.server.zrem(self.keys[0], lease)


class SharedBudgetMiddleware:
    """Downloader middleware: every request to the shop waits for its shared budget."""

    def __init__(self, crawler: Crawler, config: Config) -> None:
        self.crawler = crawler
        self.server = connection.client(config.redis_url)
        self.prefix = config.redis_key_prefix
        self.concurrency = config.shop_max_concurrency
        self.rate = config.shop_requests_per_second
        self.budget: ShopBudget | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SharedBudgetMiddleware:
        return cls(crawler, crawler.settings["CHRISTMAS_CONFIG"])

    def _budget(self) -> ShopBudget:
        if self.budget is None:
            self.budget = ShopBudget(
                self.server,
                self.prefix,
                self.crawler.spider.name,
                concurrency=self.concurrency,
                rate=self.rate,
            )
        return self.budget

    def _scheduler(self) -> Any:  # the SharedRequestScheduler
        return self.crawler.engine.scheduler if self.crawler.engine else None

    async def process_request(self, request: Request) -> None:
        if request.meta.get(LEASE_META):
            return None
        budget = self._budget()
        lease = uuid.uuid4().hex
        stats = self.crawler.stats
        waited = 0.0
        while True:
            engine = self.crawler.engine
            if engine is None or not engine.running:
                return self._hand_back(request)
            try:
                wait = budget.try_acquire(lease)
            except redis.RedisError as error:
                scheduler = self._scheduler()
                if scheduler is not None and hasattr(scheduler, "redis_lost"):
                    scheduler.redis_lost(error)
                raise IgnoreRequest("the shop's budget is unavailable (Redis lost)") from None
            if wait == 0:
                break
            waited += wait
            await asyncio.sleep(wait)
        request.meta[LEASE_META] = lease
        if waited:
            stats.inc_value("budget/waited_seconds", round(waited, 3))
        stats.inc_value("budget/granted")
        return None

    def _hand_back(self, request: Request) -> None:
        scheduler = self._scheduler()
        queue = getattr(scheduler, "queue", None)
        if queue is not None and not getattr(scheduler, "failed", True):
            try:
                queue.push(request)
                self.crawler.stats.inc_value("budget/handed_back")
            except redis.RedisError as error:
                logger.warning("could not hand %s back to the queue: %s", request, error)
        raise IgnoreRequest("the worker is stopping; request handed back to the shared queue")

    def _release(self, request: Request) -> None:
        lease = request.meta.pop(LEASE_META, None)
        if lease and self.budget is not None:
            try:
                self.budget.release(lease)
            except redis.RedisError as error:
                logger.warning("could not return a lease of the shop's budget: %s", error)

    def process_response(self, request: Request, response: Response) -> Response:
        self._release(request)
        return response

    def process_exception(self, request: Request, exception: Exception) -> None:
        self._release(request)
        return None
