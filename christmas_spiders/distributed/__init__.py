"""Distributed crawling through Redis (only when ``REDIS_URL`` is set; see docs/scale-out.md).

* ``connection``  — the Redis client from the configuration, and the start-up check.
* ``keys``        — every Redis key this project writes, built in one place.
* ``shared_run``  — a crawl run in Redis: workers joining and leaving, busy/idle, leases,
  announcements (the ``crawl_runs`` row itself is ``storage.runs``'s).
* ``request_scheduler`` — ``SharedRequestScheduler``, Scrapy's ``SCHEDULER`` with Redis:
  scrapy-redis's scheduler, queue and dupefilter, scoped to one crawl run.
* ``leases``      — the requests a worker took from the queue, held until it is done with them.
* ``yearlinks``   — the year → category link cache (Redis, or memory without Redis).
* ``politeness``  — the per-shop budget (concurrency and rate) shared by every worker.
* ``worker``      — the standing worker: joins announced runs in child ``scrapy crawl`` processes.

Nothing here is imported, and Redis is never contacted, by a crawl without ``REDIS_URL``
(``yearlinks.MemoryYearLinks`` aside, which needs no server).
"""
