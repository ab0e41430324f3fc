"""Crawl runs: one `crawl_runs` row per crawl, joined by every process that works it.

Every write to ``crawl_runs`` goes through this module: a run is opened (``start_run``: by a
crawl, ``scrapy announce`` or the scheduler), entered by each process that works it
(``enter_run``), annotated (``add_stats``, ``set_health``) and closed (``finish_run``, or
``sweep`` for an abandoned one).

Without Redis, the process that crawls a run whole is its *owner*: the first process to enter
it while it runs — the crawl that started it, or the one crawl the scheduler started it for
(``scrapy crawl <vendor> -a run_id=<id>``). Only the owner judges the run's health and delists
what it no longer found; a process joining later adds its counters. With Redis the last worker
to leave the run ends it (``christmas_spiders.extensions``).

Each crawl process records itself in ``crawl_run_processes`` when it opens or joins a run
(``enter_run``) and marks itself left when it closes it (``finish_run``). A run still
``running`` whose processes are all gone is *abandoned*: ``sweep`` closes it ``failed`` with
close reason ``abandoned`` (it delists nothing). A process is gone

* on this host, as soon as its pid is gone (or belongs to a later process, or is a zombie);
* on another host, once its crawl heartbeat (``storage.heartbeats``, instance ``host:pid``)
  has been silent for ``STALE_AFTER`` of its intervals, judged by the database's clock;
* having left the run: a run whose processes all left without closing it is abandoned too.

A process taken for gone that was only out of touch (no beat for three intervals) and then
ends closes the run as usual: its own record replaces the sweep's (``finish_run``).

A run no process ever joined (announced for the standing workers) is abandoned once its
announcement would have expired in Redis (``redis_run_ttl_seconds``). Every process of the
project sweeps when it opens the database (``database.upgrade``, the standing worker, the audit
worker), the scheduler every ``SWEEP_SECONDS`` too, and
``python -m christmas_spiders.storage sweep`` on demand.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import psutil
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from christmas_spiders.config import Config
from christmas_spiders.errors import one_line
from christmas_spiders.storage.heartbeats import STALE_AFTER, instance_name
from christmas_spiders.storage.schema import (
    crawl_run_processes,
    crawl_runs,
    process_heartbeats,
    product_changes,
    vendors,
)

logger = logging.getLogger(__name__)

COUNTERS = (
    "requests",
    "items_created",
    "items_updated",
    "items_unchanged",
    "items_dropped",
    "items_dead_lettered",
    "errors",
    "browser_renders",
)


ABANDONED = "abandoned"  # the close reason of a run whose processes are all gone
ABANDONED_STAT = "crawl_run/abandoned"  # in its stats: which processes, who swept it
SWEEP_SECONDS = 60.0  # how often the scheduler sweeps
# A process on another host that joined a run but has not beaten yet counts as alive this long
# (the crawl's first beat is written as it opens; three default crawl heartbeat intervals).
UNBEATEN_GRACE_SECONDS = STALE_AFTER * 10.0


class UnknownRun(LookupError):
    """A process was asked to join a crawl run that does not exist for its spider."""


def start_run(connection: Connection, spider: str, arguments: Mapping[str, Any]) -> int:
    """Open a run of `spider` with these (checked) spider arguments; its id."""
    return connection.execute(
        sa.insert(crawl_runs)
        .values(spider=spider, arguments=dict(arguments))
        .returning(crawl_runs.c.id)
    ).scalar_one()


def join_run(connection: Connection, spider: str, run_id: int) -> int:
    found = connection.execute(
        sa.select(crawl_runs.c.id).where(crawl_runs.c.id == run_id, crawl_runs.c.spider == spider)
    ).scalar()
    if found is None:
        raise UnknownRun(f"crawl run {run_id} does not exist for spider {spider}.")
    return found


def enter_run(connection: Connection, run_id: int) -> bool:
    """Record this process as working the run (until `finish_run`); whether it is the run's
    owner (see the module doc). The run's row stays locked until the transaction ends, so of
    two processes entering at once exactly one is the first."""
    run = lock_run(connection, run_id)
    values = _this_process()
    statement = insert(crawl_run_processes).values(run_id=run_id, **values)
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=[
                crawl_run_processes.c.run_id,
                crawl_run_processes.c.host,
                crawl_run_processes.c.pid,
            ],
            set_={
                "pid_created": values["pid_created"],
                "joined_at": sa.func.now(),
                "left_at": None,
            },
        )
    )
    return run.status == "running" and not run.entered


def lock_run(connection: Connection, run_id: int) -> Any:
    """The run's `status`, `close_reason` and whether a process `entered` it, its row locked
    until the transaction ends."""
    return connection.execute(_state(run_id).with_for_update(of=crawl_runs)).one()


def run_state(connection: Connection, run_id: int) -> Any:
    """The run's `status`, `close_reason` and whether a process `entered` it, as they are now."""
    return connection.execute(_state(run_id)).one()


def _state(run_id: int) -> sa.Select[Any]:
    entered = sa.exists().where(crawl_run_processes.c.run_id == crawl_runs.c.id)
    return sa.select(
        crawl_runs.c.status, crawl_runs.c.close_reason, entered.label("entered")
    ).where(crawl_runs.c.id == run_id)


def counters(connection: Connection, run_id: int) -> dict[str, int]:
    """The run's COUNTERS, summed over its processes."""
    row = connection.execute(
        sa.select(*(crawl_runs.c[name] for name in COUNTERS)).where(crawl_runs.c.id == run_id)
    ).one()
    return dict(row._mapping)


def add_stats(
    connection: Connection,
    run_id: int,
    stats: Mapping[str, Any],
    *,
    close_reason: str | None = None,
) -> None:
    """Merge `stats` into the run's stats (and set its close reason, when given)."""
    values: dict[str, Any] = {"stats": _merged(stats)}
    if close_reason is not None:
        values["close_reason"] = close_reason
    connection.execute(sa.update(crawl_runs).where(crawl_runs.c.id == run_id).values(**values))


def set_health(connection: Connection, run_id: int, health: str, reasons: list[str]) -> None:
    """The run's health verdict (christmas_spiders.health)."""
    connection.execute(
        sa.update(crawl_runs)
        .where(crawl_runs.c.id == run_id)
        .values(health=health, health_reasons=reasons)
    )


def _merged(stats: Mapping[str, Any]) -> Any:
    """The run's stats with these keys added or replaced (`stats || jsonb`)."""
    return crawl_runs.c.stats.op("||")(sa.literal(dict(stats), type_=JSONB))


def _this_process() -> dict[str, Any]:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "pid_created": psutil.Process().create_time(),
    }


def started_at(connection: Connection, run_id: int) -> datetime:
    return connection.execute(
        sa.select(crawl_runs.c.started_at).where(crawl_runs.c.id == run_id)
    ).scalar_one()


def finish_run(
    connection: Connection,
    run_id: int,
    *,
    status: str,
    close_reason: str,
    counters: Mapping[str, int],
    stats: Mapping[str, Any],
) -> None:
    """Add this process's counters to the run and close it (several workers may add theirs)."""
    increments = {name: crawl_runs.c[name] + int(counters.get(name, 0)) for name in COUNTERS}
    connection.execute(
        sa.update(crawl_runs)
        .where(crawl_runs.c.id == run_id)
        .values(
            **increments,
            finished_at=sa.func.now(),
            # A run that failed in any worker stays failed; but one a sweep took for abandoned
            # (its process was out of touch) is closed by that process as it ends after all.
            status=sa.case(
                (
                    sa.and_(
                        crawl_runs.c.status == "failed",
                        crawl_runs.c.close_reason.is_distinct_from(ABANDONED),
                    ),
                    "failed",
                ),
                else_=status,
            ),
            close_reason=close_reason,
            stats=_merged(stats),
        )
    )
    connection.execute(
        sa.update(crawl_run_processes)
        .where(
            crawl_run_processes.c.run_id == run_id,
            crawl_run_processes.c.host == socket.gethostname(),
            crawl_run_processes.c.pid == os.getpid(),
        )
        .values(left_at=sa.func.now())
    )
    spider = sa.select(crawl_runs.c.spider).where(crawl_runs.c.id == run_id).scalar_subquery()
    if status == "finished":
        connection.execute(
            sa.update(vendors).where(vendors.c.id == spider).values(last_synced_at=sa.func.now())
        )


def count_changes(connection: Connection, run_id: int) -> dict[str, int]:
    """Changes the run caused, by field (`price`, `availability`…) or kind (`listed`…)."""
    label = sa.func.coalesce(product_changes.c.field, product_changes.c.kind)
    rows = connection.execute(
        sa.select(label, sa.func.count())
        .where(product_changes.c.crawl_run_id == run_id)
        .group_by(label)
    )
    return {label: count for label, count in rows}


# -- abandoned runs --------------------------------------------------------------------------------


def sweep_abandoned(connection: Connection, *, unjoined_after: float) -> list[int]:
    """Close every running run whose processes are all gone (see the module doc); their ids.

    Runs are locked with SKIP LOCKED: one being closed or written right now (its process is
    alive) is left for the next sweep, and two sweeps never close a run twice.
    """
    run_age = sa.func.extract("epoch", sa.func.now() - crawl_runs.c.started_at)
    running = connection.execute(
        sa.select(crawl_runs.c.id, crawl_runs.c.spider, run_age.label("age"))
        .where(crawl_runs.c.status == "running")
        .order_by(crawl_runs.c.id)
        .with_for_update(skip_locked=True)
    ).all()
    if not running:
        return []
    ids = [run.id for run in running]
    members = _members(connection, ids)
    beating = _beating_instances(connection, ids)
    here = socket.gethostname()
    swept = []
    for run in running:
        processes = members.get(run.id, [])
        if processes:
            instances = {f"{p.host}:{p.pid}" for p in processes}
            alive = any(_alive(p, here) for p in processes if p.left_at is None)
        else:  # never joined: announced for the standing workers
            instances = set()
            alive = float(run.age) <= unjoined_after
        # Crawls that beat with this run id without having recorded themselves (older code).
        alive = alive or bool(beating.get(run.id, set()) - instances)
        if alive:
            continue
        _close_abandoned(connection, run.id, sorted(instances))
        logger.warning(
            "crawl run %d of %s was abandoned (%s): closed failed, nothing delisted",
            run.id,
            run.spider,
            "its processes are gone: " + ", ".join(sorted(instances))
            if instances
            else "no process ever joined it",
        )
        swept.append(run.id)
    return swept


def _members(connection: Connection, ids: list[int]) -> dict[int, list[Any]]:
    """The processes of these runs, each with how long its heartbeat (or, before its first
    beat, its joining) has been silent, by the database's clock."""
    p, h = crawl_run_processes.c, process_heartbeats.c
    last_sign = sa.func.greatest(p.joined_at, h.beat_at)  # greatest() skips a NULL beat
    rows = connection.execute(
        sa.select(
            p.run_id,
            p.host,
            p.pid,
            p.pid_created,
            p.left_at,
            sa.func.extract("epoch", sa.func.now() - last_sign).label("silent"),
            h.interval_seconds,
        )
        .select_from(
            crawl_run_processes.outerjoin(
                process_heartbeats,
                sa.and_(
                    h.process == "crawl",
                    h.instance == p.host + ":" + sa.cast(p.pid, sa.Text),
                ),
            )
        )
        .where(p.run_id.in_(ids))
    )
    members: dict[int, list[Any]] = {}
    for row in rows:
        members.setdefault(row.run_id, []).append(row)
    return members


def _beating_instances(connection: Connection, ids: list[int]) -> dict[int, set[str]]:
    """Per run, the crawl heartbeats that name it and are not silent."""
    h = process_heartbeats.c
    age = sa.func.extract("epoch", sa.func.now() - h.beat_at)
    rows = connection.execute(
        sa.select(h.details["run_id"].astext, h.instance).where(
            h.process == "crawl",
            h.stopped_at.is_(None),
            h.details["run_id"].astext.in_([str(run_id) for run_id in ids]),
            age <= STALE_AFTER * h.interval_seconds,
        )
    )
    beating: dict[int, set[str]] = {}
    for run_id, instance in rows:
        beating.setdefault(int(run_id), set()).add(instance)
    return beating


def _alive(process: Any, here: str) -> bool:
    if process.host == here:
        return _pid_alive(process.pid, process.pid_created)
    if process.interval_seconds is None:  # no heartbeat yet
        return float(process.silent) <= UNBEATEN_GRACE_SECONDS
    return float(process.silent) <= STALE_AFTER * float(process.interval_seconds)


def _pid_alive(pid: int, created: float) -> bool:
    """Whether this host's process `pid`, started at `created`, still runs."""
    try:
        process = psutil.Process(pid)
        # A zombie has exited (its parent has not collected it); a pid reused by a later
        # process started at another time.
        return process.status() != psutil.STATUS_ZOMBIE and abs(process.create_time() - created) < 1
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # it exists; whose it is cannot be told
        return True


def _close_abandoned(connection: Connection, run_id: int, instances: list[str]) -> None:
    stats = {ABANDONED_STAT: {"processes": instances, "swept_by": instance_name()}}
    connection.execute(
        sa.update(crawl_runs)
        .where(crawl_runs.c.id == run_id, crawl_runs.c.status == "running")
        .values(
            status="failed",
            close_reason=ABANDONED,
            finished_at=sa.func.now(),
            stats=_merged(stats),
        )
    )


def sweep(engine: Engine, config: Config) -> list[int]:
    """Sweep abandoned runs in a transaction of its own, as a process opens the database.

    Never stops the process: a database error is logged and the next sweep tries again.
    """
    try:
        with engine.begin() as connection:
            return sweep_abandoned(connection, unjoined_after=config.redis_run_ttl_seconds)
    except SQLAlchemyError as error:
        logger.warning(
            "could not look for abandoned crawl runs: %s",
            one_line(error),
        )
        return []


class PeriodicSweep:
    """`sweep` at most every `every` seconds (the scheduler calls it on each wake-up)."""

    def __init__(
        self,
        engine: Engine,
        config: Config,
        every: float = SWEEP_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine, self.config, self.every, self.clock = engine, config, every, clock
        self._next = clock() + every  # the process swept as it opened the database

    def __call__(self) -> list[int] | None:
        """The runs swept, or None when no sweep was due."""
        now = self.clock()
        if now < self._next:
            return None
        self._next = now + self.every
        return sweep(self.engine, self.config)
