"""Announcing a crawl run for the standing workers (``scrapy announce``, or the scheduler).

``announce_run`` opens the ``crawl_runs`` row (the run id is its id) and the run in Redis, and
wakes every standing worker; they join it with ``scrapy crawl <vendor> -a run_id=<id>``, and
take its arguments from the row.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import redis

from christmas_spiders.config import Config
from christmas_spiders.distributed import connection, keys, shared_run
from christmas_spiders.errors import one_line
from christmas_spiders.storage import get_engine, runs, upgrade

logger = logging.getLogger(__name__)


def announce_run(config: Config, vendor: str, arguments: Mapping[str, Any]) -> int:
    """Start a crawl run of `vendor` with these (already checked) arguments; its id."""
    if not config.redis_url:
        raise connection.RedisUnavailable("announcing a crawl run needs REDIS_URL.")
    server = connection.check(config.redis_url)
    try:
        engine = get_engine(config)
        upgrade(engine, config)
        with engine.begin() as db:
            run_id = runs.start_run(db, vendor, arguments)
        try:
            shared_run.announce(
                server,
                keys.RunKeys(config.redis_key_prefix, vendor, run_id),
                arguments,
                config.redis_run_ttl_seconds,
            )
        except redis.RedisError as error:
            with engine.begin() as db:  # never leave a run nobody will work as "running"
                runs.finish_run(
                    db,
                    run_id,
                    status="failed",
                    close_reason="redis_unavailable",
                    counters={},
                    stats={},
                )
            raise connection.RedisUnavailable(
                f"could not announce crawl run {run_id}: {one_line(error)}."
            ) from None
    finally:
        server.close()
    logger.info("announced crawl run %s:%d for the standing workers", vendor, run_id)
    return run_id
