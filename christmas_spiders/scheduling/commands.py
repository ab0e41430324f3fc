"""What the CLI does to the scheduler: ``python scheduler.py list|run|pause|resume``.

The table is the truth, NOTIFY only wakes (procrastinate's way). ``run``, ``pause`` and
``resume`` insert a row in ``scheduler_commands`` and ``NOTIFY christmas_scheduler``; the
running scheduler, the job store's one writer, applies queued commands at once (and every
``schedule.control_poll`` seconds anyway) through APScheduler's API — ``pause_job``,
``resume_job``, ``add_job`` — which APScheduler's own lock serialises with its loop. It writes
the answer in the row and NOTIFYs ``christmas_scheduler_applied``; the CLI prints it. With no
scheduler running, the CLI applies the command itself as the store's writer
(``store.job_store_writer``: no scheduler can start meanwhile), and the change waits in the
store for the next start. ``list`` only reads the store.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from apscheduler.schedulers.base import BaseScheduler
from sqlalchemy.engine import Engine

from christmas_spiders.config import Config
from christmas_spiders.scheduling import jobs, store, triggers
from christmas_spiders.storage import get_engine, upgrade
from christmas_spiders.storage.schema import scheduler_commands

logger = logging.getLogger(__name__)

ANSWER_SECONDS = 30.0  # how long the CLI waits for the running scheduler's answer
KEEP_APPLIED = timedelta(days=30)
_c = scheduler_commands.c


class UnknownJob(LookupError):
    """No job with that id; one sentence."""


class NotApplied(RuntimeError):
    """The running scheduler did not answer in time; one sentence."""


@dataclass(frozen=True)
class JobView:
    id: str
    name: str
    trigger: str
    next_run: datetime | None  # None: paused


def list_jobs(config: Config) -> tuple[str | None, list[JobView]]:
    """(who runs the scheduler, or None; every job, in id order)."""
    engine = get_engine(config)
    holder = store.running_scheduler(engine)
    zone = ZoneInfo(config.schedule.timezone)
    with store.offline_apscheduler(config) as apscheduler:
        found = apscheduler.get_jobs()
    views = [
        JobView(
            job.id,
            job.name,
            triggers.describe(job.trigger),
            None if job.next_run_time is None else job.next_run_time.astimezone(zone),
        )
        for job in found
    ]
    return holder, sorted(views, key=lambda view: jobs.sort_key(view.id))


def run_now(config: Config, job_id: str) -> str:
    """Queue a one-off run of the job now; a sentence saying what happened."""
    if job_id.startswith(jobs.RUN_PREFIX):
        raise UnknownJob(f"{job_id!r} is a one-off run already; give the id of the job itself.")
    return request(config, "run", job_id)


def pause(config: Config, job_id: str) -> str:
    return request(config, "pause", job_id)


def resume(config: Config, job_id: str) -> str:
    return request(config, "resume", job_id)


def request(config: Config, action: str, job_id: str, timeout: float = ANSWER_SECONDS) -> str:
    """Queue the command and wait until it is applied: by the running scheduler, or here when
    none runs. The answer; UnknownJob when there is no such job, NotApplied after `timeout`."""
    engine = get_engine(config)
    upgrade(engine, config)  # the commands table, on a database no scheduler has opened yet
    with engine.begin() as db:
        command_id = db.execute(
            sa.insert(scheduler_commands).values(action=action, job_id=job_id).returning(_c.id)
        ).scalar_one()
    listener = store.Listener(store.dsn(config), store.APPLIED_CHANNEL)
    try:
        deadline, woken = time.monotonic() + timeout, False
        while (answer := _answer(config, engine, command_id)) is None:
            if not woken:
                store.notify(engine, store.CONTROL_CHANNEL, f"{action} {job_id}")
                woken = True
            left = deadline - time.monotonic()
            if left <= 0:
                holder = store.running_scheduler(engine) or "it stopped meanwhile"
                raise NotApplied(
                    f"the running scheduler ({holder}) has not applied `{action} {job_id}` "
                    f"within {timeout:.0f} s; it stays queued and is applied as soon as a "
                    "scheduler gets to it."
                )
            listener.wait(min(left, 1.0))
    finally:
        listener.close()
    ok, result = answer
    if not ok:
        raise UnknownJob(result)
    return result


def _answer(config: Config, engine: Engine, command_id: int) -> tuple[bool, str] | None:
    """The command's answer; with no scheduler running, applied here first."""
    with store.job_store_writer(config) as writer:
        if writer:
            with store.offline_apscheduler(config) as apscheduler:
                apply_pending(config, engine, apscheduler, running=False)
    with engine.connect() as db:
        row = db.execute(
            sa.select(_c.ok, _c.result).where(_c.id == command_id, _c.applied_at.is_not(None))
        ).first()
    return None if row is None else (bool(row.ok), row.result)


def apply_pending(
    config: Config,
    engine: Engine,
    apscheduler: BaseScheduler,
    *,
    running: bool,
    lock: AbstractContextManager[Any] | None = None,
) -> int:
    """Apply the queued commands, oldest first, and answer each; how many. Only the job store's
    writer calls this: the running scheduler (`running`), or the CLI when none runs. `lock`
    keeps other changes of the job set out while a command is applied. A database error
    leaves the remaining commands queued for the next call."""
    with engine.connect() as db:
        pending = db.execute(
            sa.select(_c.id, _c.action, _c.job_id).where(_c.applied_at.is_(None)).order_by(_c.id)
        ).all()
    for command in pending:
        with lock or nullcontext():
            ok, result = _apply(config, apscheduler, command.action, command.job_id, running)
        with engine.begin() as db:
            db.execute(
                sa.update(scheduler_commands)
                .where(_c.id == command.id)
                .values(applied_at=sa.func.now(), ok=ok, result=result)
            )
            db.execute(sa.select(sa.func.pg_notify(store.APPLIED_CHANNEL, str(command.id))))
        log: Callable[..., None] = logger.info if ok else logger.warning
        log("scheduler: %s %s: %s", command.action, command.job_id, result)
    if pending:
        with engine.begin() as db:
            db.execute(
                sa.delete(scheduler_commands).where(_c.applied_at < sa.func.now() - KEEP_APPLIED)
            )
    return len(pending)


def _apply(
    config: Config, apscheduler: BaseScheduler, action: str, job_id: str, running: bool
) -> tuple[bool, str]:
    """(ok, the sentence the CLI prints)."""
    if apscheduler.get_job(job_id) is None:
        return False, f"there is no job {job_id!r} (python scheduler.py list shows them)."
    if action == "pause":
        apscheduler.pause_job(job_id)
        return (
            True,
            f"{job_id} is paused: it does not run until resumed (a running crawl finishes).",
        )
    if action == "resume":
        job = apscheduler.resume_job(job_id)
        if job is None or job.next_run_time is None:
            return True, f"{job_id} has no run left and was removed."
        when = job.next_run_time.astimezone(ZoneInfo(config.schedule.timezone))
        return True, f"{job_id} is resumed; next run {when:%Y-%m-%d %H:%M:%S %Z}."
    run_id, added = jobs.queue_run(apscheduler, job_id)
    if not added:
        return True, f"a run of {job_id} is queued already ({run_id})."
    when = "now" if running else "as soon as the scheduler starts"
    return True, f"{job_id} runs {when} ({run_id}); its schedule is unchanged."
