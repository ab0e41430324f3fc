"""The job scheduler process (``python scheduler.py``; docs/scheduler.md).

Not to be confused with Scrapy's request scheduler of a shared crawl run
(``christmas_spiders.distributed.request_scheduler``): this one decides when crawls run;
APScheduler 3 does the timing.

* ``triggers`` — APScheduler triggers built from the ``schedule`` configuration option
  (``christmas_spiders.config.schedule``), spread over the day with stable offsets.
* ``years``    — the years each shop lists: its year index, or the year-link cache.
* ``store``    — the PostgreSQL job store, the locks that keep one scheduler and one writer of
  the store, the wake-up channel.
* ``commands`` — the CLI's commands, queued for the running scheduler (``scheduler_commands``).
* ``jobs``     — the job ids, the job callables and the job set generated from vendors × years.
* ``runtime``  — the work behind the job callables, handed to the threads that run them.
* ``runner``   — runs one crawl within the scheduler's limits: in a child process (``child``)
  or announced for the standing workers (``announced``); ``outcome`` says how it ended.
* ``service``  — the long-running process (``JobScheduler``).
"""
