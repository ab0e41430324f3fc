"""Every default of distributed crawling, in one place (docs/scale-out.md).

``config.py`` turns the tunable ones into options (environment ``CHRISTMAS_<NAME>``); the rest
are fixed timings of the protocol between workers.
"""

from __future__ import annotations

# -- options (config.py) -------------------------------------------------------------------------

# Every key this project writes to Redis starts with this prefix and a colon.
REDIS_KEY_PREFIX = "christmas"
# The keys of a crawl run (queue, dedup set, worker registry, run state) expire this long after
# the run's last activity: finished, failed or abandoned, nothing outlives it by more.
RUN_TTL_SECONDS = 6 * 3600
# A worker stops once its run has had an empty queue and no busy worker for this long.
IDLE_SECONDS = 10.0
# A worker that has not reported for this long is presumed dead: it no longer holds the run
# open, and the requests it had taken go back to the queue for the others.
WORKER_TIMEOUT_SECONDS = 60.0
# A request taken from the shared queue is leased, not removed: its worker renews the lease at
# every report until it is done with the request (response parsed, items stored). A lease not
# renewed for this long (the worker died or hangs) puts the request back in the queue.
REQUEST_LEASE_SECONDS = 60.0
# Year → category links of each shop are cached this long.
YEAR_LINKS_TTL_SECONDS = 7 * 86400
# The politeness budget of one shop, shared by every worker of every run.
SHOP_MAX_CONCURRENCY = 4  # requests in flight on the shop at once
SHOP_REQUESTS_PER_SECOND = 2.0  # requests started on the shop per second (a token bucket)
# The standing worker (`scrapy worker`): how often it looks for announced runs, and how many
# crawls it works at once.
WORKER_POLL_SECONDS = 5.0
WORKER_MAX_CRAWLS = 3

# -- fixed timings -------------------------------------------------------------------------------

HEARTBEAT_SECONDS = 1.0  # a crawl process reports liveness and busy/idle this often
POLL_SECONDS = 0.25  # an idle crawl process looks at the shared queue this often
BUDGET_RETRY_SECONDS = 0.05  # a request waiting for the shop's budget asks again after this
LEASE_SECONDS = 180.0  # a concurrency lease not returned (crashed worker) expires after this
STOP_GRACE_SECONDS = 25.0  # the standing worker's children get this long to stop on SIGTERM
REJOIN_BACKOFF_SECONDS = 30.0  # a run whose crawl process failed is rejoined after this

# -- the Redis client ----------------------------------------------------------------------------

# Short timeouts: a Redis call runs in the reactor thread, so a dead server must fail fast.
REDIS_PARAMS = {
    "socket_connect_timeout": 3.0,
    "socket_timeout": 5.0,
    "health_check_interval": 15,
}
REDIS_RETRIES = 2  # retries of one call on a connection error (0.05 s, 0.1 s backoff)
