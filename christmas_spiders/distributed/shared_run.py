"""A crawl run in Redis: the workers that join and leave it, who is busy, and when it is over.

A run is named ``<vendor>:<crawl_runs.id>`` (``keys.RunKeys``). Its first process opens it in
Redis and announces it (``<prefix>:runs``), so standing workers join; every other process joins
with ``-a run_id=<id>``. Each process is a *worker* with an id ``<host>:<pid>:<random>``.

The stop rule, made atomic by the Lua scripts below:

* a request taken from the shared queue is *leased*, not removed: it moves to the run's leases
  (``keys.RunKeys.leases``/``leased``) with an expiry, and its worker renews the lease at every
  report until it is done with the request — response parsed, new requests queued, items
  stored (``leases``) — and only then releases it;
* a lease not renewed for ``crawl_lease_seconds``, or held by a worker dropped from the run,
  puts its request back in the queue (``reclaimed``), where another worker takes it;
* a worker is *busy* from the moment it takes a request until its own engine is idle again
  and it holds no lease;
* it reports (liveness + busy/idle + lease renewals) every second, and every 0.25 s while idle;
* the run is *over* for a worker once the shared queue has been empty, no request leased and
  no live worker busy for ``crawl_idle_seconds`` without a break; it then closes (``finished``);
* a worker silent for ``crawl_worker_timeout_seconds`` while busy is presumed dead: it is
  dropped (counted as ``lost``) and its leases go back to the queue; a silent idle worker is
  dropped after a few seconds;
* the last worker to leave closes the run in Redis (late joiners are refused) and reports
  whether it ended complete (nothing queued, nothing leased, and some worker got through all
  its start requests) — then, and only then, the crawl-run recorder delists what the run no
  longer found. A worker stopped by SIGTERM finishes what it has in flight, hands back what it
  had not started, and leaves like the others: the run is complete if nothing is left.

Every write refreshes the TTL of the run's keys, so they expire ``redis_run_ttl_seconds`` after
the run's last activity, whatever way it ended.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import socket
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from christmas_spiders.distributed import defaults, keys

logger = logging.getLogger(__name__)

IDLE_WORKER_STALE_MS = 5_000  # an idle worker silent this long is dropped (leases go back)

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
# KEYS (every run script): requests seen workers busy state leases leased.
# A lease's request back in the queue, at its old place.
_RECLAIM = """
local reclaimed = 0
local function reclaim(lease)
  local entry = redis.call('HGET', KEYS[7], lease)
  if entry then
    local space = string.find(entry, ' ', 1, true)
    redis.call('ZADD', KEYS[1], string.sub(entry, 1, space - 1), string.sub(entry, space + 1))
    redis.call('HDEL', KEYS[7], lease)
    reclaimed = reclaimed + 1
  end
  redis.call('ZREM', KEYS[6], lease)
end
local function reclaim_worker(worker)
  local mine = worker .. '#'
  for _, lease in ipairs(redis.call('ZRANGE', KEYS[6], 0, -1)) do
    if string.sub(lease, 1, #mine) == mine then reclaim(lease) end
  end
end
"""
# ARGV[1] ttl, ARGV[2] busy timeout ms. Drop silent workers (their leases back to the queue),
# reclaim expired leases, and define refresh() (every key's TTL).
_REAP = """
local lost = 0
local stale_ms = math.min(IDLE_WORKER_STALE_MS, tonumber(ARGV[2]))
local stale = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - stale_ms)
for _, worker in ipairs(stale) do
  local busy = redis.call('SISMEMBER', KEYS[4], worker) == 1
  local seen = tonumber(redis.call('ZSCORE', KEYS[3], worker))
  if not busy then
    redis.call('ZREM', KEYS[3], worker)
    reclaim_worker(worker)
  elseif seen < now - tonumber(ARGV[2]) then
    redis.call('ZREM', KEYS[3], worker)
    redis.call('SREM', KEYS[4], worker)
    redis.call('HINCRBY', KEYS[5], 'lost', 1)
    reclaim_worker(worker)
    lost = lost + 1
  end
end
for _, lease in ipairs(redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', now, 'LIMIT', 0, 1000)) do
  reclaim(lease)
end
if reclaimed > 0 then redis.call('HINCRBY', KEYS[5], 'reclaimed', reclaimed) end
local function refresh()
  for i = 1, 7 do redis.call('EXPIRE', KEYS[i], ARGV[1]) end
end
""".replace("IDLE_WORKER_STALE_MS", str(IDLE_WORKER_STALE_MS))

# + KEYS[8] announcements; ARGV[3] worker, ARGV[4] arguments JSON, ARGV[5] run name,
#   ARGV[6] announcement JSON, ARGV[7] channel.
_ENTER = (
    _NOW
    + _RECLAIM
    + _REAP
    + """
local status = redis.call('HGET', KEYS[5], 'status')
if status and status ~= 'running' then return status end
redis.call('HSETNX', KEYS[5], 'status', 'running')
redis.call('HSETNX', KEYS[5], 'arguments', ARGV[4])
redis.call('HSETNX', KEYS[5], 'opened_at', now)
redis.call('ZADD', KEYS[3], now, ARGV[3])
redis.call('SADD', KEYS[4], ARGV[3])
refresh()
if redis.call('HSET', KEYS[8], ARGV[5], ARGV[6]) == 1 then
  redis.call('PUBLISH', ARGV[7], ARGV[5])
end
return 'running'
"""
)

# ARGV[3] worker, ARGV[4] '1' when busy, ARGV[5] lease ms, ARGV[6..] the leases to renew.
_REPORT = (
    _NOW
    + _RECLAIM
    + """
local known = redis.call('ZSCORE', KEYS[3], ARGV[3])
redis.call('ZADD', KEYS[3], now, ARGV[3])
if ARGV[4] == '1' then
  redis.call('SADD', KEYS[4], ARGV[3])
else
  redis.call('SREM', KEYS[4], ARGV[3])
  redis.call('HSET', KEYS[5], 'seeded', 1)
end
for i = 6, #ARGV do
  redis.call('ZADD', KEYS[6], 'XX', now + tonumber(ARGV[5]), ARGV[i])
end
"""
    + _REAP
    + """
refresh()
return {redis.call('ZCARD', KEYS[1]), redis.call('SCARD', KEYS[4]), lost,
        known and 1 or 0, redis.call('HGET', KEYS[5], 'status') or '',
        redis.call('ZCARD', KEYS[6]), reclaimed}
"""
)

# + KEYS[8] announcements; ARGV[3] worker, ARGV[4] run name, ARGV[5] '1' when idle,
#   ARGV[6..] the leases of the requests it is done with (anything else it held goes back).
_LEAVE = (
    _NOW
    + _RECLAIM
    + """
redis.call('ZREM', KEYS[3], ARGV[3])
redis.call('SREM', KEYS[4], ARGV[3])
if ARGV[5] == '1' then redis.call('HSET', KEYS[5], 'seeded', 1) end
for i = 6, #ARGV do
  redis.call('ZREM', KEYS[6], ARGV[i])
  redis.call('HDEL', KEYS[7], ARGV[i])
end
reclaim_worker(ARGV[3])
"""
    + _REAP
    + """
local last = 0
if redis.call('ZCARD', KEYS[3]) == 0 and redis.call('HGET', KEYS[5], 'status') == 'running' then
  last = 1
  redis.call('HSET', KEYS[5], 'status', 'closed')
  redis.call('HDEL', KEYS[8], ARGV[4])
end
refresh()
return {last, redis.call('ZCARD', KEYS[3]),
        redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[6]),
        tonumber(redis.call('HGET', KEYS[5], 'lost') or '0'),
        redis.call('HGET', KEYS[5], 'years') or '',
        redis.call('HGET', KEYS[5], 'product_gone') or '',
        redis.call('HGET', KEYS[5], 'seeded') or ''}
"""
)

# KEYS: requests busy leases leased; ARGV: worker, lease id, lease ms, ttl. Take the best
# request under a lease (its score and JSON kept, to put it back) and mark the worker busy.
POP = (
    """
local popped = redis.call('ZPOPMIN', KEYS[1])
if #popped == 0 then return false end
"""
    + _NOW
    + """
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[2])
redis.call('HSET', KEYS[4], ARGV[2], popped[2] .. ' ' .. popped[1])
redis.call('EXPIRE', KEYS[3], ARGV[4])
redis.call('EXPIRE', KEYS[4], ARGV[4])
redis.call('SADD', KEYS[2], ARGV[1])
return popped[1]
"""
)


# KEYS: state announcements; ARGV: arguments JSON, ttl, run name, announcement JSON, channel.
_ANNOUNCE = (
    _NOW
    + """
redis.call('HSETNX', KEYS[1], 'status', 'running')
redis.call('HSETNX', KEYS[1], 'arguments', ARGV[1])
redis.call('HSETNX', KEYS[1], 'opened_at', now)
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
redis.call('PUBLISH', ARGV[5], ARGV[3])
return 1
"""
)


class RunClosed(RuntimeError):
    """The run is already over in Redis; a late worker has nothing to do."""


@dataclass(frozen=True)
class Report:
    queued: int  # requests in the shared queue
    busy: int  # live workers holding requests (this one included when busy)
    lost: int  # workers found dead by this report
    registered: bool  # this worker was still registered (not dropped as silent)
    status: str  # running / closed
    leased: int  # requests taken by workers not done with them yet (this one's included)
    reclaimed: int  # leases this report put back in the queue (expired, or of dropped workers)


@dataclass(frozen=True)
class Outcome:
    """What leaving the run told this worker."""

    last: bool  # no worker left: this one closed the run
    remaining: int  # other workers still in the run
    queued: int  # requests left undone: in the shared queue, or leased and not finished
    lost: int  # workers of the run presumed dead (their requests went back to the queue)
    years: frozenset[int] | None  # the years the run crawled (year/all modes), if recorded
    product_gone: bool  # url/product_id mode: the product page was gone
    seeded: bool  # some worker went through all its start requests

    @property
    def complete(self) -> bool:
        """The last worker left nothing queued or leased, and the run had been seeded (a
        worker stopped before its start requests were out leaves an empty queue too). A lost
        worker costs nothing: its leased requests went back to the queue and were done."""
        return self.last and not self.queued and self.seeded


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class CrawlRun:
    """One worker's handle on a run in Redis (thread-safe: the client is)."""

    def __init__(
        self,
        server: redis.Redis,
        run_keys: keys.RunKeys,
        *,
        ttl_seconds: int,
        worker_timeout_seconds: float,
        lease_seconds: float = defaults.REQUEST_LEASE_SECONDS,
        worker: str | None = None,
    ) -> None:
        self.server = server
        self.keys = run_keys
        self.ttl = int(ttl_seconds)
        self.timeout_ms = int(worker_timeout_seconds * 1000)
        self.lease_ms = int(lease_seconds * 1000)
        self.worker = worker or worker_id()
        self._lease_numbers = itertools.count(1)
        self._enter = server.register_script(_ENTER)
        self._report = server.register_script(_REPORT)
        self._leave = server.register_script(_LEAVE)
        self._pop = server.register_script(POP)

    @property
    def name(self) -> str:
        return self.keys.name

    def _run_keys(self) -> list[str]:
        return list(self.keys.all())

    def enter(self, arguments: Mapping[str, Any]) -> None:
        """Register this worker (opening and announcing the run if new); RunClosed if it is over."""
        prefix = self.keys.prefix
        announcement = json.dumps({"vendor": self.keys.vendor, "run_id": self.keys.run_id})
        status = self._enter(
            keys=[*self._run_keys(), keys.announcements(prefix)],
            args=[
                self.ttl,
                self.timeout_ms,
                self.worker,
                json.dumps(dict(arguments), sort_keys=True),
                self.name,
                announcement,
                keys.announcement_channel(prefix),
            ],
        )
        status = status.decode() if isinstance(status, bytes) else status
        if status != "running":
            raise RunClosed(f"crawl run {self.name} is already {status} in Redis")

    def report(self, *, busy: bool, renew: Sequence[str] = ()) -> Report:
        """Liveness and busy/idle; `renew`: the leases this worker still holds."""
        queued, busy_count, lost, known, status, leased, reclaimed = self._report(
            keys=self._run_keys(),
            args=[self.ttl, self.timeout_ms, self.worker, int(busy), self.lease_ms, *renew],
        )
        return Report(
            int(queued),
            int(busy_count),
            int(lost),
            bool(known),
            status.decode() if isinstance(status, bytes) else str(status),
            int(leased),
            int(reclaimed),
        )

    def take(self) -> tuple[str, bytes] | None:
        """The best request of the queue, leased to this worker: (lease id, its JSON)."""
        lease = f"{self.worker}#{next(self._lease_numbers)}"
        data = self._pop(
            keys=[self.keys.requests, self.keys.busy, self.keys.leases, self.keys.leased],
            args=[self.worker, lease, self.lease_ms, self.ttl],
        )
        return None if data is None else (lease, data)

    def release(self, leases: Sequence[str]) -> None:
        """This worker is done with these requests (their items are stored)."""
        if not leases:
            return
        pipe = self.server.pipeline()
        pipe.zrem(self.keys.leases, *leases)
        pipe.hdel(self.keys.leased, *leases)
        pipe.execute()

    def give_back(self, lease: str, data: bytes, score: float) -> None:
        """Put a leased request back in the queue (as `data`, its JSON now), at once."""
        pipe = self.server.pipeline()
        pipe.zrem(self.keys.leases, lease)
        pipe.hdel(self.keys.leased, lease)
        pipe.zadd(self.keys.requests, {data: score})
        pipe.expire(self.keys.requests, self.ttl)
        pipe.execute()

    def leave(self, *, idle: bool, done: Sequence[str] = ()) -> Outcome:
        """Leave the run; `idle`: nothing of this worker's is left undone (its start requests
        included); `done`: the leases of the requests it finished (any other lease it still
        holds goes back to the queue)."""
        last, remaining, queued, lost, years, gone, seeded = self._leave(
            keys=[*self._run_keys(), keys.announcements(self.keys.prefix)],
            args=[self.ttl, self.timeout_ms, self.worker, self.name, int(idle), *done],
        )
        return Outcome(
            last=bool(last),
            remaining=int(remaining),
            queued=int(queued),
            lost=int(lost),
            years=frozenset(json.loads(years)) if years else None,
            product_gone=bool(gone),
            seeded=bool(seeded),
        )

    def record_years(self, years: frozenset[int], *, authoritative: bool) -> None:
        """The years the run crawls: the year index's word replaces a cache-based guess."""
        value = json.dumps(sorted(years))
        if authoritative:
            self.server.hset(self.keys.state, "years", value)
        else:
            self.server.hsetnx(self.keys.state, "years", value)

    def record_product_gone(self) -> None:
        self.server.hset(self.keys.state, "product_gone", 1)


def announce(
    server: redis.Redis, run_keys: keys.RunKeys, arguments: Mapping[str, Any], ttl_seconds: int
) -> None:
    """Open a run in Redis without working it, and wake the standing workers to join it."""
    server.register_script(_ANNOUNCE)(
        keys=[run_keys.state, keys.announcements(run_keys.prefix)],
        args=[
            json.dumps(dict(arguments), sort_keys=True),
            int(ttl_seconds),
            run_keys.name,
            json.dumps({"vendor": run_keys.vendor, "run_id": run_keys.run_id}),
            keys.announcement_channel(run_keys.prefix),
        ],
    )


def announced_runs(server: redis.Redis, prefix: str) -> list[tuple[str, int]]:
    """(vendor, run id) of every announced run, oldest id first."""
    runs = []
    for raw in server.hvals(keys.announcements(prefix)):
        try:
            data = json.loads(raw)
            runs.append((str(data["vendor"]), int(data["run_id"])))
        except (ValueError, KeyError, TypeError):
            logger.warning("ignoring a malformed run announcement: %r", raw)
    return sorted(runs, key=lambda run: run[1])


def run_status(server: redis.Redis, run_keys: keys.RunKeys) -> str | None:
    """running / closed, or None when the run is unknown in Redis (never opened, or expired)."""
    status = server.hget(run_keys.state, "status")
    return status.decode() if isinstance(status, bytes) else status


def stop(server: redis.Redis, run_keys: keys.RunKeys) -> None:
    """Close a run from outside (the scheduler, over budget): its workers see the closed status
    at their next report and stop; no new worker can join."""
    pipe = server.pipeline()
    if server.exists(run_keys.state):
        pipe.hset(run_keys.state, "status", "closed")
    pipe.hdel(keys.announcements(run_keys.prefix), run_keys.name)
    pipe.execute()


def forget(server: redis.Redis, run_keys: keys.RunKeys) -> None:
    """Withdraw the announcement of a run that no longer exists in Redis."""
    server.hdel(keys.announcements(run_keys.prefix), run_keys.name)
