"""The scheduler process (``python scheduler.py``; README "Scheduler").

* ``triggers`` — APScheduler triggers built from the ``schedule`` configuration option
  (``christmas_spiders.config.schedule``), spread over the day with stable offsets.
* ``years``    — the years each shop lists: its year index, or the year-link cache.
* ``store``    — the PostgreSQL job store, the advisory locks, the control channel.
* ``runner``   — runs one crawl: a child ``scrapy crawl``, or a run announced for the standing
  workers; enforces the time budget, the concurrency cap, and records the outcome.
* ``jobs``     — the job callables and the job set generated from vendors × listed years.
* ``service``  — the long-running process, and what the CLI does to it.
"""
