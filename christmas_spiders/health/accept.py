"""An operator accepts a suspect run: the shop really changed (it dropped every image, emptied
a third of a year…), so the run's view is the truth.

The run becomes healthy and so the baseline later runs are judged against (else every run would
be suspect for as long as the change lasts); the values it kept from vanishing are applied where
nothing has written the product since, attributed to the run in the history; and a crawl_health
event says the vendor is healthy again. Nothing is delisted: the next run does that, as usual.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from christmas_spiders.storage import health as storage
from christmas_spiders.storage import runs
from christmas_spiders.storage.schema import crawl_runs

ACCEPTED = "accepted by an operator: the shop really changed"


class NotAcceptable(ValueError):
    """The run cannot be accepted (one sentence)."""


@dataclass(frozen=True)
class Accepted:
    run_id: int
    vendor: str
    applied: dict[str, int]  # field → products whose withheld value was written


def accept(connection: Connection, run_id: int) -> Accepted:
    run = connection.execute(
        sa.select(
            crawl_runs.c.spider,
            crawl_runs.c.status,
            crawl_runs.c.health,
            crawl_runs.c.health_reasons,
        )
        .where(crawl_runs.c.id == run_id)
        .with_for_update()
    ).first()
    if run is None:
        raise NotAcceptable(f"there is no crawl run {run_id}.")
    if run.health != "suspect":
        state = run.health or "not judged"
        raise NotAcceptable(f"crawl run {run_id} is {state}, not suspect: nothing to accept.")
    if run.status != "finished":
        raise NotAcceptable(
            f"crawl run {run_id} is {run.status}: only a finished run can be the baseline."
        )
    applied = {
        field: storage.apply_vanishes(connection, run.spider, run_id, field)
        for field in sorted(storage.vanish_counts(connection, run_id))
    }
    reasons = [*run.health_reasons, ACCEPTED]
    runs.set_health(connection, run_id, "ok", reasons)
    storage.record_event(connection, run_id, run.spider, "ok", reasons, "suspect")
    return Accepted(run_id, run.spider, applied)
