"""Process heartbeats: which long-running processes are alive, seen from the database.

Every long-running process but the API (whose health is ``GET /healthz``) keeps one row of
``process_heartbeats``: the scheduler, the audit worker, each standing crawler worker and each
crawl. ``Heartbeat.start`` logs the process's start configuration (no secrets) and writes the
row, ``beat`` refreshes it at most every ``interval`` seconds (call it as often as is handy),
``stop`` marks a clean stop. A row is

* ``alive``   — beaten within ``STALE_AFTER`` of its intervals;
* ``stopped`` — the process stopped cleanly (``stopped_at``);
* ``silent``  — neither: the process died, hangs, or cannot reach the database.

A heartbeat never stops its process: a database error is logged once per outage and the next
beat tries again. Rows silent or stopped for ``KEEP_DAYS`` are pruned at each start.

    python -m christmas_spiders.storage.heartbeats     # the table, newest beat first
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from christmas_spiders import logs
from christmas_spiders.config import Config
from christmas_spiders.errors import one_line
from christmas_spiders.storage.schema import HEARTBEAT_PROCESSES, process_heartbeats

logger = logging.getLogger(__name__)

STALE_AFTER = 3  # intervals without a beat: the process is presumed gone
KEEP_DAYS = 7


def instance_name() -> str:
    """This process, as pg_stat_activity names it elsewhere in the project: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def start_configuration(config: Config, **extra: Any) -> dict[str, Any]:
    """What a process runs with, safe to log: URLs without their passwords, no secrets."""
    database = (
        logs.redact(config.database_url)
        if config.database_url
        else f"embedded PostgreSQL in {config.data_dir / 'postgres'}"
    )
    described: dict[str, Any] = {
        "database": database,
        "redis": logs.redact(config.redis_url) if config.redis_url else "none",
        "log": f"{config.log_level} {config.log_format}",
        "data_dir": str(config.data_dir),
    }
    described.update(extra)
    return described


def log_start(process: str, config: Config, **extra: Any) -> dict[str, Any]:
    """One INFO line: '<process> starting on host:pid: database …, redis …, log …, …'."""
    described = start_configuration(config, **extra)
    text = ", ".join(f"{key} {value}" for key, value in described.items())
    logger.info("%s starting on %s: %s", process, instance_name(), text)
    return described


class Heartbeat:
    """One process's row of ``process_heartbeats`` (see the module doc)."""

    def __init__(self, engine: Engine, process: str, interval: float) -> None:
        if process not in HEARTBEAT_PROCESSES:
            raise ValueError(f"process must be one of {', '.join(HEARTBEAT_PROCESSES)}")
        self.engine = engine
        self.process = process
        self.instance = instance_name()
        self.interval = max(0.1, float(interval))
        self._details: dict[str, Any] = {}
        self._last = float("-inf")  # monotonic time of the last beat written
        self._failing = False

    def start(self, **details: Any) -> bool:
        """Write the row afresh (started now, not stopped); prune long-gone rows."""
        self._details = _json_safe(details)
        return self._write(self._upsert, prune=True)

    def beat(self, **details: Any) -> bool:
        """Refresh the row if `interval` has passed since the last beat; True if written."""
        if details:
            self._details.update(_json_safe(details))
        if time.monotonic() - self._last < 0.9 * self.interval:  # a tick early is on time
            return False
        return self._write(self._refresh)

    def stop(self, **details: Any) -> bool:
        if details:
            self._details.update(_json_safe(details))
        return self._write(self._mark_stopped)

    # -- writing ---------------------------------------------------------------------------------

    def _write(self, statement: Any, prune: bool = False) -> bool:
        try:
            with self.engine.begin() as connection:
                statement(connection)
                if prune:
                    _prune(connection)
        except SQLAlchemyError as error:
            if not self._failing:
                logger.warning(
                    "%s heartbeat not recorded (%s); trying again at the next beat",
                    self.process,
                    one_line(error),
                )
            self._failing = True
            return False
        if self._failing:
            logger.info("%s heartbeat recorded again", self.process)
        self._failing = False
        self._last = time.monotonic()
        return True

    def _upsert(self, connection: Connection) -> None:
        values = {
            "process": self.process,
            "instance": self.instance,
            "pid": os.getpid(),
            "interval_seconds": round(self.interval, 3),
            "details": self._details,
        }
        statement = insert(process_heartbeats).values(**values)
        connection.execute(
            statement.on_conflict_do_update(
                index_elements=[process_heartbeats.c.process, process_heartbeats.c.instance],
                set_={
                    "pid": statement.excluded.pid,
                    "interval_seconds": statement.excluded.interval_seconds,
                    "details": statement.excluded.details,
                    "started_at": sa.func.now(),
                    "beat_at": sa.func.now(),
                    "stopped_at": None,
                },
            )
        )

    def _refresh(self, connection: Connection, stopped: bool = False) -> None:
        values: dict[str, Any] = {
            "beat_at": sa.func.now(),
            "details": sa.literal(self._details, type_=JSONB),
        }
        if stopped:
            values["stopped_at"] = sa.func.now()
        updated = connection.execute(
            sa.update(process_heartbeats)
            .where(
                process_heartbeats.c.process == self.process,
                process_heartbeats.c.instance == self.instance,
            )
            .values(**values)
        )
        if updated.rowcount == 0:  # pruned meanwhile, or a database restored from a backup
            self._upsert(connection)
            if stopped:
                self._refresh(connection, stopped=True)

    def _mark_stopped(self, connection: Connection) -> None:
        self._refresh(connection, stopped=True)


def _prune(connection: Connection) -> None:
    connection.execute(
        sa.delete(process_heartbeats).where(
            process_heartbeats.c.beat_at < sa.func.now() - timedelta(days=KEEP_DAYS)
        )
    )


def _json_safe(details: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(dict(details), default=str))


# -- reading -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessState:
    process: str
    instance: str
    state: str  # alive, stopped or silent
    started_at: datetime
    beat_at: datetime
    stopped_at: datetime | None
    seconds_since_beat: float
    details: dict[str, Any]


def states(connection: Connection) -> list[ProcessState]:
    """Every row, newest beat first, with its state judged by the database's clock."""
    age = sa.func.extract("epoch", sa.func.now() - process_heartbeats.c.beat_at)
    rows = connection.execute(
        sa.select(process_heartbeats, age.label("age")).order_by(
            process_heartbeats.c.beat_at.desc()
        )
    )
    result = []
    for row in rows:
        if row.stopped_at is not None:
            state = "stopped"
        elif float(row.age) <= STALE_AFTER * float(row.interval_seconds):
            state = "alive"
        else:
            state = "silent"
        result.append(
            ProcessState(
                row.process,
                row.instance,
                state,
                row.started_at,
                row.beat_at,
                row.stopped_at,
                float(row.age),
                dict(row.details),
            )
        )
    return result


def main() -> int:
    from christmas_spiders import config as config_module
    from christmas_spiders.storage import get_engine

    settings = config_module.load_for_command()
    try:
        with get_engine(settings).connect() as connection:
            found = states(connection)
    except SQLAlchemyError as error:
        logger.error("the database is unavailable: %s", one_line(error))
        return 1
    print("| process | instance | state | started | last beat | details |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in found:
        details = ", ".join(f"{key}={value}" for key, value in row.details.items())
        print(
            f"| {row.process} | {row.instance} | {row.state} | {row.started_at:%Y-%m-%d %H:%M:%S} "
            f"| {row.seconds_since_beat:.0f} s ago | {details} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
