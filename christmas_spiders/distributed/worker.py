"""The standing worker (``scrapy worker``): a long-lived process that joins announced crawl runs.

On Heroku every process is a standing dyno, so crawls are worked by ``crawler`` dynos running
this loop. It waits for crawl runs announced in Redis (``<prefix>:runs``, by a crawl that
started a run, by ``scrapy announce`` or by the scheduler) and joins each in a child process,
``scrapy crawl <vendor> -a run_id=<id>`` (a child per run, a fresh reactor per crawl), at most
``worker_max_crawls`` at a time.

* Idling is cheap: one pub/sub subscription wakes it when a run is announced; otherwise it
  reads the announcements every ``worker_poll_seconds`` (which also covers a lost message).
* A child that ended is not restarted for the same run unless it failed, and then only after
  ``REJOIN_BACKOFF_SECONDS`` (the run stays open while its siblings work).
* Announcements of runs unknown to Redis any more (expired) are withdrawn.
* SIGTERM or SIGINT: each child gets SIGTERM (it stops cleanly, hands its waiting requests back
  to the shared queue, stores its items, and leaves the run to the other workers); after
  ``STOP_GRACE_SECONDS`` the ones still running are killed (a sibling then finds them silent,
  and the requests they held go back to the queue).
* Redis lost: logged, and retried with backoff; running children stop on their own.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import redis
from tenacity import RetryCallState, Retrying, retry_if_exception_type

from christmas_spiders import processes
from christmas_spiders.config import PROJECT_ROOT, Config
from christmas_spiders.distributed import connection, defaults, keys, shared_run
from christmas_spiders.errors import one_line
from christmas_spiders.retrying import Interrupted, backoff, failure, interruptible
from christmas_spiders.storage import get_engine, heartbeats, runs

logger = logging.getLogger(__name__)


@dataclass
class _Child:
    vendor: str
    run_id: int
    popen: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)


class StandingWorker:
    def __init__(
        self,
        config: Config,
        *,
        vendors: Sequence[str] | None = None,
        max_crawls: int | None = None,
        poll_seconds: float | None = None,
        crawl_options: Sequence[str] = (),
        stop_grace_seconds: float = defaults.STOP_GRACE_SECONDS,
    ) -> None:
        if not config.redis_url:
            raise connection.RedisUnavailable("the standing worker needs REDIS_URL.")
        self.config = config
        self.prefix = config.redis_key_prefix
        self.vendors = set(vendors) if vendors else None
        self.max_crawls = max_crawls or config.worker_max_crawls
        self.poll_seconds = poll_seconds or config.worker_poll_seconds
        self.crawl_options = list(crawl_options)
        self.stop_grace = stop_grace_seconds
        self.stopping = threading.Event()
        self.children: dict[tuple[str, int], _Child] = {}
        self.backoff: dict[tuple[str, int], float] = {}  # run → monotonic time it may rejoin
        self.server = connection.check(config.redis_url)
        self._pubsub: redis.client.PubSub | None = None

    # -- running ---------------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        def stop(signum: int, frame: FrameType | None) -> None:
            logger.info("%s received: stopping", signal.Signals(signum).name)
            self.stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def run(self) -> int:
        logger.info(
            "standing worker up: joining crawl runs announced under %s (at most %d at a time)",
            keys.announcements(self.prefix),
            self.max_crawls,
        )
        started = heartbeats.log_start(
            "standing worker", self.config, max_crawls=self.max_crawls, prefix=self.prefix
        )
        engine = get_engine(self.config)
        runs.sweep(engine, self.config)  # crawl runs abandoned by processes that died
        heartbeat = heartbeats.Heartbeat(engine, "crawler", self.poll_seconds)
        heartbeat.start(**started)
        # A round that Redis fails is tried again after 2 s, 4 s … 60 s; one that gets through
        # starts the backoff over.
        rounds = Retrying(
            retry=retry_if_exception_type(redis.RedisError),
            wait=backoff(2.0, 60.0),
            sleep=interruptible(self.stopping),
            before_sleep=self._redis_failed,
        )
        with contextlib.suppress(Interrupted):  # stopping during a wait
            while not self.stopping.is_set():
                rounds(self._round, heartbeat)
        self._unsubscribe()
        self.stop_children()
        heartbeat.stop(crawls=0)
        logger.info("standing worker stopped")
        return 0

    def _round(self, heartbeat: heartbeats.Heartbeat) -> None:
        if self._pubsub is None:
            self._pubsub = self.server.pubsub(ignore_subscribe_messages=True)
            self._pubsub.subscribe(keys.announcement_channel(self.prefix))
        self.step()
        heartbeat.beat(crawls=len(self.children))
        self._wait(self._pubsub)

    def _redis_failed(self, state: RetryCallState) -> None:
        error = failure(state)
        assert isinstance(error, redis.RedisError)
        logger.error(
            "Redis failed (%s); the worker retries in %.0f s",
            one_line(error),
            state.upcoming_sleep,
        )
        self._unsubscribe()
        self._reap()

    def _unsubscribe(self) -> None:
        if self._pubsub is not None:
            self._pubsub.close()
            self._pubsub = None

    def step(self) -> None:
        """Reap ended children, then join every announced run not yet worked here."""
        self._reap()
        for vendor, run_id in shared_run.announced_runs(self.server, self.prefix):
            if len(self.children) >= self.max_crawls or self.stopping.is_set():
                return
            if self.vendors is not None and vendor not in self.vendors:
                continue
            if (vendor, run_id) in self.children:
                continue
            if time.monotonic() < self.backoff.get((vendor, run_id), 0.0):
                continue
            run_keys = keys.RunKeys(self.prefix, vendor, run_id)
            status = shared_run.run_status(self.server, run_keys)
            if status is None:
                logger.info("crawl run %s expired in Redis: withdrawing it", run_keys.name)
                shared_run.forget(self.server, run_keys)
            elif status == "running":
                self._spawn(vendor, run_id)

    def _wait(self, pubsub: redis.client.PubSub) -> None:
        """Until an announcement, the poll interval, or a stop — in short slices."""
        deadline = time.monotonic() + self.poll_seconds
        while not self.stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if pubsub.get_message(timeout=min(left, 1.0)) is not None:
                return
            if any(child.popen.poll() is not None for child in self.children.values()):
                return

    # -- children --------------------------------------------------------------------------------

    def command(self, vendor: str, run_id: int) -> list[str]:
        return processes.crawl_command(vendor, {"run_id": run_id}, options=self.crawl_options)

    def _spawn(self, vendor: str, run_id: int) -> None:
        logger.info("joining crawl run %s:%d", vendor, run_id)
        popen = subprocess.Popen(self.command(vendor, run_id), cwd=Path(PROJECT_ROOT))
        self.children[(vendor, run_id)] = _Child(vendor, run_id, popen)

    def _reap(self) -> None:
        for key, child in list(self.children.items()):
            code = child.popen.poll()
            if code is None:
                continue
            del self.children[key]
            if code == 0:
                logger.info("left crawl run %s:%d", child.vendor, child.run_id)
                # Rejoin only if it is announced again after a while (it should be closed).
                self.backoff[key] = time.monotonic() + defaults.REJOIN_BACKOFF_SECONDS
            else:
                logger.warning(
                    "the crawl of run %s:%d exited with status %d; rejoining in %.0f s if it "
                    "is still open",
                    child.vendor,
                    child.run_id,
                    code,
                    defaults.REJOIN_BACKOFF_SECONDS,
                )
                self.backoff[key] = time.monotonic() + defaults.REJOIN_BACKOFF_SECONDS

    def stop_children(self) -> None:
        """SIGTERM every child at once, then give them the grace period (one for all) before
        the ones still running are killed."""
        for child in self.children.values():
            if child.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace
        for child in self.children.values():
            processes.stop_process(
                child.popen,
                max(0.0, deadline - time.monotonic()),
                name=f"the crawl of run {child.vendor}:{child.run_id}",
                signalled=True,
            )
        self.children.clear()
