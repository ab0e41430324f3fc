"""Crawl health: every run is judged `ok` or `suspect` as it ends, and a suspect run does no harm.

* ``counting`` — an item pipeline counting what the crawl read (per year, per field) and which
  stored values its pages no longer showed; its counts go to ``crawl_run_counts`` at close.
* ``judge`` — the verdict, pure: the run against the last healthy runs of its vendor and years.
* ``judge_run`` (here) — called by the crawl-run recorder, in the transaction that ends the run
  and before it delists: judges, applies or withholds the values that vanished, records the
  verdict with the run and, for a suspect run or a vendor healthy again, a ``crawl_health``
  event in the history, which the audit worker delivers like every change.
* ``python -m christmas_spiders.health accept RUN_ID`` — an operator accepts a suspect run
  (the shop really changed): it becomes the vendor's new healthy baseline, its withheld values
  are applied.

See docs/health.md.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from scrapy import Spider
from scrapy.statscollectors import StatsCollector
from sqlalchemy.engine import Connection

from christmas_spiders.config import Config
from christmas_spiders.health.counting import UNRECORDED_STAT
from christmas_spiders.health.judge import Baseline, Run, Thresholds, Verdict, judge
from christmas_spiders.storage import health as storage
from christmas_spiders.storage import runs
from christmas_spiders.storage.schema import crawl_runs

logger = logging.getLogger(__name__)

STATUS_STAT = "health/status"
REASONS_STAT = "health/reasons"


def judge_run(
    connection: Connection,
    config: Config,
    stats: StatsCollector,
    run_id: int,
    spider: Spider,
    *,
    years: Iterable[int],
    reason: str,
    errors: int,
) -> Verdict | None:
    """Judge the run that this process ends, and act on the verdict (see the module doc).

    `years` are the years its listings covered; `errors` this process's error count (the
    other workers' are in the run's row already). None: what it read could not be recorded
    (the run failed for it), so it is not judged and its vanished values stay unapplied.
    """
    if stats.get_value(UNRECORDED_STAT):
        return None
    vendor = spider.name
    target = getattr(spider, "target", None)
    listing = target is None or target.mode in ("all", "years")
    counts = storage.run_counts(connection, run_id)
    years = frozenset(years)
    base_counts, sources = storage.baseline_counts(connection, vendor, run_id, years | set(counts))
    whole = _row(connection, sources.get(0))
    mine = _row(connection, run_id)
    run = Run(
        counts=counts,
        vanished=storage.vanish_counts(connection, run_id),
        years=years if listing else None,
        finish_reason=reason,
        errors=mine.get("errors", 0) + errors,
    )
    baseline = Baseline(base_counts, whole.get("errors", 0), whole.get("requests", 0))
    verdict = judge(run, baseline, Thresholds.from_config(config))
    for field, count in sorted(run.vanished.items()):
        if field in verdict.collapsed:
            stats.set_value(f"health/protected/{field}", count)
        else:
            applied = storage.apply_vanishes(connection, vendor, run_id, field)
            stats.set_value(f"health/applied/{field}", applied)
    runs.set_health(connection, run_id, verdict.health, verdict.reasons)
    previous = storage.previous_health(connection, vendor, run_id)
    if verdict.health == "suspect" or previous == "suspect":
        storage.record_event(connection, run_id, vendor, verdict.health, verdict.reasons, previous)
    if verdict.health == "ok":
        storage.forget_vanishes(connection, vendor, run_id)
    _report(stats, run_id, vendor, verdict, previous)
    return verdict


def _row(connection: Connection, run_id: int | None) -> dict[str, Any]:
    if run_id is None:
        return {}
    row = connection.execute(
        sa.select(crawl_runs.c.errors, crawl_runs.c.requests).where(crawl_runs.c.id == run_id)
    ).first()
    return dict(row._mapping) if row else {}


def _report(
    stats: StatsCollector, run_id: int, vendor: str, verdict: Verdict, previous: str | None
) -> None:
    stats.set_value(STATUS_STAT, verdict.health)
    stats.set_value(REASONS_STAT, list(verdict.reasons))
    for field, share in verdict.coverage.items():
        stats.set_value(f"health/coverage/{field}", round(share, 4))
    if verdict.health == "suspect":
        logger.warning(
            "crawl run %d of %s is SUSPECT: %s. Nothing is delisted, and values that vanished "
            "where coverage collapsed are kept (docs/health.md).",
            run_id,
            vendor,
            "; ".join(verdict.reasons),
        )
    elif previous == "suspect":
        logger.info("crawl run %d of %s is healthy again", run_id, vendor)


def summary_line(stats: dict[str, Any]) -> str | None:
    """The end-of-crawl summary's health line, when the run was judged."""
    health = stats.get(STATUS_STAT)
    if health is None:
        return None
    reasons = stats.get(REASONS_STAT) or []
    protected = {
        key.removeprefix("health/protected/"): value
        for key, value in sorted(stats.items())
        if key.startswith("health/protected/")
    }
    line = f"health    {health}" + (": " + "; ".join(reasons) if reasons else "")
    if protected:
        kept = ", ".join(f"{count} {field}" for field, count in protected.items())
        line += f" (kept stored values: {kept})"
    return line


__all__ = ["REASONS_STAT", "STATUS_STAT", "Verdict", "judge_run", "summary_line"]
