"""scrapy-redis's scheduler, queue and dupefilter, scoped to one crawl run (docs/scale-out.md).

``SharedRequestScheduler`` is scrapy-redis's ``Scheduler`` with what a run of ours needs:

* the keys are the run's (``keys.RunKeys``), known once the crawl-run recorder has opened or
  joined the ``crawl_runs`` row: it calls ``join_run``; before that nothing is scheduled;
* the queue holds JSON, not pickles (``serializer``); a request is taken from it under a
  lease (``shared_run.POP``, ``leases``), released once this worker is done with it and its
  items are stored, renewed at every report meanwhile; a request handed back (at close, or by
  the shop's budget on SIGTERM) goes back to the queue with its lease;
* the dedup set uses Scrapy's request fingerprinter and expires with the run, instead of living
  forever under ``<spider>:dupefilter``; nothing is flushed at close (siblings may go on);
* the engine never closes on an empty queue by itself: ``has_pending_requests`` stays true until
  the run's stop rule (``shared_run``) says it is over, then the scheduler closes the spider
  (``finished``); meanwhile an idle worker polls the shared queue every 0.25 s and hands what
  it pops to the engine;
* a Redis error stops the worker cleanly (reason ``redis_unavailable``, run ``failed``).

It also overrides scrapy-redis's call sites that are deprecated on Scrapy 2.19 (``spider.log``,
the ``spider`` argument of stats methods, ``BaseDupeFilter.log``) instead of silencing them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

import redis
from scrapy import Request, Spider
from scrapy.crawler import Crawler
from scrapy.utils.defer import deferred_from_coro
from scrapy.utils.request import request_from_dict
from scrapy_redis.dupefilter import RFPDupeFilter
from scrapy_redis.queue import PriorityQueue
from scrapy_redis.scheduler import Scheduler

from christmas_spiders.config import Config
from christmas_spiders.distributed import connection, defaults, keys, serializer
from christmas_spiders.distributed.leases import LeaseBook, in_progress, store_items
from christmas_spiders.distributed.shared_run import CrawlRun, Outcome
from christmas_spiders.errors import one_line

logger = logging.getLogger(__name__)

REDIS_LOST_REASON = "redis_unavailable"


class RunQueue(PriorityQueue):
    """The run's shared priority queue (a sorted set of JSON requests, score = -priority), and
    the leases of the requests this worker took from it."""

    def __init__(self, server: redis.Redis, spider: Spider, run: CrawlRun) -> None:
        super().__init__(server, spider, run.keys.requests, serializer=serializer)
        self.run = run
        self.leases = LeaseBook()

    def encode(self, request: Request) -> bytes:
        return serializer.dumps(request.to_dict(spider=self.spider))

    def decode(self, data: bytes) -> Request:
        return request_from_dict(serializer.loads(data), spider=self.spider)

    def push(self, request: Request) -> None:
        data = self.encode(request)
        lease = self.leases.lease_of(request)
        if lease is not None:  # taken from the queue, never started: back with its lease
            self.run.give_back(lease, data, -request.priority)
            self.leases.drop([lease])
            return
        pipe = self.server.pipeline(transaction=False)
        pipe.zadd(self.key, {data: -request.priority})
        pipe.expire(self.key, self.run.ttl)
        pipe.execute()

    def pop(self, timeout: int = 0) -> Request | None:
        """The best request, leased to this worker and this worker marked busy in the same
        step (never blocks)."""
        taken = self.run.take()
        if taken is None:
            return None
        lease, data = taken
        try:
            request = self.decode(data)
        except (ValueError, TypeError, KeyError) as error:
            logger.error("dropped an unreadable request from %s: %s", self.key, error)
            self.run.release([lease])  # no worker could ever crawl it
            return None
        self.leases.hold(lease, request)
        return request


class RunDupeFilter(RFPDupeFilter):
    """The run's dedup set: Scrapy's request fingerprints, expiring with the run."""

    def __init__(self, server: redis.Redis, crawler: Crawler, run: CrawlRun) -> None:
        super().__init__(server, run.keys.seen, debug=crawler.settings.getbool("DUPEFILTER_DEBUG"))
        self.fingerprinter = crawler.request_fingerprinter
        self.stats = crawler.stats
        self.ttl = run.ttl

    def request_fingerprint(self, request: Request) -> str:
        return self.fingerprinter.fingerprint(request).hex()

    def request_seen(self, request: Request) -> bool:
        pipe = self.server.pipeline(transaction=False)
        pipe.sadd(self.key, self.request_fingerprint(request))
        pipe.expire(self.key, self.ttl)
        added, _ = pipe.execute()
        return added == 0

    def close(self, reason: str = "") -> None:
        """Keep the set: other workers may still use it; it expires with the run."""

    def log(self, request: Request, spider: Spider) -> None:
        self.stats.inc_value("dupefilter/filtered")
        if self.debug or self.logdupes:
            logger.debug("Filtered duplicate request: %(request)s", {"request": request})
            self.logdupes = self.debug


class SharedRequestScheduler(Scheduler):
    def __init__(self, server: redis.Redis, crawler: Crawler) -> None:
        super().__init__(server, persist=True, serializer=serializer)
        self.crawler = crawler
        self.stats = crawler.stats
        self.config: Config = crawler.settings["CHRISTMAS_CONFIG"]
        self.run: CrawlRun | None = None
        self.queue: RunQueue | None = None
        self.df: RunDupeFilter | None = None
        self.outcome: Outcome | None = None  # set when this worker left the run
        self.failed = False  # Redis was lost
        self._local: deque[Request] = deque()  # popped by the idle poll, for the engine
        self._handing: Request | None = None
        self._local_view = False
        self._done = False
        self._task: asyncio.Task[None] | None = None
        self._settling: asyncio.Task[None] | None = None  # releasing finished requests
        self._closing: Any = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SharedRequestScheduler:
        config: Config = crawler.settings["CHRISTMAS_CONFIG"]
        if not config.redis_url:
            raise ValueError("SharedRequestScheduler needs redis_url (REDIS_URL).")
        return cls(connection.client(config.redis_url), crawler)

    # -- the run ---------------------------------------------------------------------------------

    def open(self, spider: Spider) -> None:
        self.spider = spider  # the run is joined by the crawl-run recorder (join_run)

    def crawl_run(self, run_id: int) -> CrawlRun:
        return CrawlRun(
            self.server,
            keys.RunKeys(self.config.redis_key_prefix, self.spider.name, run_id),
            ttl_seconds=self.config.redis_run_ttl_seconds,
            worker_timeout_seconds=self.config.crawl_worker_timeout_seconds,
            lease_seconds=self.config.crawl_lease_seconds,
        )

    async def join_run(self, run_id: int, arguments: Mapping[str, Any]) -> None:
        """Enter the run in Redis and start working its queue (RunClosed when it is over)."""
        run = self.crawl_run(run_id)
        await asyncio.to_thread(run.enter, arguments)
        self.run = run
        self.queue = RunQueue(self.server, self.spider, run)
        self.df = RunDupeFilter(self.server, self.crawler, run)
        self.stats.set_value("redis/worker", run.worker)
        logger.info("worker %s joined crawl run %s", run.worker, run.name)
        self._task = asyncio.get_running_loop().create_task(self._watch())

    def close(self, reason: str) -> None:
        for task in (self._task, self._settling):
            if task is not None:
                task.cancel()
        if self.run is None or self.queue is None or self.failed:
            return
        try:
            for request in self._local:  # taken but never started: back to the others
                self.queue.push(request)
            self._local.clear()
            # The engine and the item pipelines are closed: every other request is done and
            # its items are stored.
            done = self.queue.leases.ids()
            self.outcome = self.run.leave(idle=self._locally_idle(), done=done)
            self.queue.leases.drop(done)
        except redis.RedisError as error:
            self.failed = True
            logger.error(
                "could not leave crawl run %s, Redis failed: %s",
                self.run.name,
                one_line(error),
            )
            return
        logger.info(
            "worker %s left crawl run %s (%s)",
            self.run.worker,
            self.run.name,
            "the last one: run closed"
            if self.outcome.last
            else f"{self.outcome.remaining} other worker(s) still at work",
        )

    def record_years(self, years: frozenset[int], *, authoritative: bool) -> None:
        if self.run is not None and not self.failed:
            try:
                self.run.record_years(years, authoritative=authoritative)
            except redis.RedisError as error:
                self.redis_lost(error)

    def record_product_gone(self) -> None:
        if self.run is not None and not self.failed:
            try:
                self.run.record_product_gone()
            except redis.RedisError as error:
                self.redis_lost(error)

    def redis_lost(self, error: redis.RedisError) -> None:
        """Stop this worker cleanly: pipelines flush, the run is recorded as failed."""
        if self.failed:
            return
        self.failed = True
        self.stats.set_value("redis/lost", one_line(error))
        logger.error(
            "lost Redis during crawl run %s (%s): stopping this worker; the run will be "
            "recorded as failed, and a new run redoes the work",
            self.run.name if self.run else "?",
            one_line(error),
        )
        self._close_spider(REDIS_LOST_REASON)

    def _close_spider(self, reason: str) -> None:
        engine = self.crawler.engine
        if engine is None or engine.spider is None or self._closing is not None:
            return
        self._closing = deferred_from_coro(engine.close_spider_async(reason=reason))
        self._closing.addErrback(lambda failure: logger.error("closing failed: %s", failure))

    # -- the scheduler interface -----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._local) + (len(self.queue) if self.queue is not None else 0)

    def enqueue_request(self, request: Request) -> bool:
        if request is self._handing:  # popped by the idle poll: already counted and deduped
            self._handing = None
            self._local.append(request)
            return True
        if self.queue is None or self.df is None or self.failed:
            return False
        try:
            if not request.dont_filter and self.df.request_seen(request):
                self.df.log(request, self.spider)
                return False
            self.queue.push(request)
        except redis.RedisError as error:
            self.redis_lost(error)
            return False
        except TypeError as error:
            logger.error("cannot queue %s: %s", request, error)
            return False
        self.stats.inc_value("scheduler/enqueued/redis")
        return True

    def next_request(self) -> Request | None:
        if self._local:
            return self._local.popleft()
        if self.queue is None or self.failed:
            return None
        try:
            request = self.queue.pop()
        except redis.RedisError as error:
            self.redis_lost(error)
            return None
        if request is not None:
            self.stats.inc_value("scheduler/dequeued/redis")
        return request

    def has_pending_requests(self) -> bool:
        """Locally (see _locally_idle): only popped requests; for the engine: until the run is
        over, so an empty queue never closes the spider while siblings may still add work."""
        if self._local_view:
            return bool(self._local)
        return bool(self._local) or not self._done

    # -- the watch loop: liveness, idle polling, the stop rule -----------------------------------

    def _locally_idle(self) -> bool:
        """Nothing downloading, parsing or waiting here: the engine's own test, with this
        scheduler answering for its local requests only."""
        self._local_view = True
        try:
            return self.crawler.engine.spider_is_idle()
        except RuntimeError:  # the engine slot is gone: closing
            return True
        finally:
            self._local_view = False

    async def _watch(self) -> None:
        assert self.run is not None and self.queue is not None
        leases = self.queue.leases
        idle_since: float | None = None
        reported = settled = 0.0
        while True:
            await asyncio.sleep(defaults.POLL_SECONDS)
            idle = self._locally_idle()
            now = time.monotonic()
            # Release finished requests as often as the store pipeline writes, at once if idle.
            due = idle or now - settled >= self.config.store_flush_seconds
            if leases and due and (self._settling is None or self._settling.done()):
                settled = now
                self._settling = asyncio.get_running_loop().create_task(self._settle())
                self._settling.add_done_callback(self._settled)
            if not idle and now - reported < defaults.HEARTBEAT_SECONDS:
                continue
            try:
                # Busy while its engine works or it holds leases (finished, items not stored).
                report = self.run.report(busy=not idle or bool(leases), renew=leases.ids())
            except redis.RedisError as error:
                self.redis_lost(error)
                return
            reported = now
            if report.lost:
                logger.warning(
                    "%d worker(s) of crawl run %s stopped reporting while busy: presumed "
                    "dead; the requests they held go back to the queue",
                    report.lost,
                    self.run.name,
                )
            if report.reclaimed:
                logger.warning(
                    "crawl run %s: %d request(s) taken by workers that stopped reporting went "
                    "back to the queue",
                    self.run.name,
                    report.reclaimed,
                )
            if not report.registered:
                logger.warning("worker %s had been dropped as silent; back in", self.run.worker)
            if report.status != "running":
                logger.info("crawl run %s was closed by another worker", self.run.name)
                self._finish()
                return
            if not idle:
                idle_since = None
            elif report.queued:
                idle_since = None
                self._pull()
            elif report.busy or report.leased:
                idle_since = None
            else:
                idle_since = idle_since or now
                if now - idle_since >= self.config.crawl_idle_seconds:
                    logger.info(
                        "crawl run %s: nothing queued or leased and no worker busy for %.1f s: "
                        "done",
                        self.run.name,
                        now - idle_since,
                    )
                    self._finish()
                    return

    async def _settle(self) -> None:
        """Release the leases of the requests this worker is done with, once their items are
        stored: were it killed now, nothing it took would be lost."""
        assert self.run is not None and self.queue is not None
        engine = self.crawler.engine
        assert engine is not None
        done = self.queue.leases.finished([*self._local, *in_progress(engine)])
        if not done:
            return
        await store_items(self.crawler)
        try:
            self.run.release(done)
        except redis.RedisError as error:
            self.redis_lost(error)
            return
        self.queue.leases.drop(done)

    def _settled(self, task: asyncio.Task[None]) -> None:
        """Log a failed release: the leases stay held (renewed) and are released at leave."""
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "could not release the requests this worker finished",
                exc_info=task.exception(),
            )

    def _pull(self) -> None:
        """Pop one request and give it to the (idle) engine, which then pops the rest itself."""
        request = self.next_request()
        if request is None:
            return
        engine = self.crawler.engine
        if engine is None or engine.spider is None:
            self._local.append(request)
            return
        self._handing = request
        engine.crawl(request)
        self._handing = None

    def _finish(self) -> None:
        self._done = True
        self._close_spider("finished")
