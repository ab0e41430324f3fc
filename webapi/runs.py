"""/v1/runs: recent crawl runs, newest first, with their status, counters and health."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
import sqlalchemy as sa
from marshmallow import fields, validate

from christmas_spiders.storage.runs import COUNTERS
from christmas_spiders.storage.schema import RUN_HEALTH, RUN_STATUSES, crawl_runs
from webapi import db, pagination, schemas, v1
from webapi.pagination import SortKey

blueprint = v1.Blueprint("runs", __name__, description="Crawl runs of every shop.")

_r = crawl_runs.c
_SORTS = {"id": SortKey(_r.id, _r.id, pagination.SORT_PARSERS["int"])}
_SORT = "-id"  # newest first (ids follow start times)


class RunArgs(schemas.Query):
    vendor = schemas.vendor_ids()
    status = schemas.choices(RUN_STATUSES)
    health = schemas.choices(
        RUN_HEALTH,
        metadata={"description": "ok or suspect (docs/health.md); runs not judged have none."},
    )
    limit = fields.Integer(
        load_default=20,
        validate=validate.Range(1, pagination.MAX_LIMIT, error="must be from 1 to 200."),
    )
    cursor = pagination.CursorField(_SORTS)

    @ma.validates_schema
    def _check_cursor(self, data: dict[str, Any], **_kwargs) -> None:
        pagination.check_cursor(data.get("cursor"), _SORT)


def _as_json(row) -> dict[str, Any]:
    finished = row.finished_at
    return {
        "id": row.id,
        "vendor": row.spider,
        "arguments": row.arguments,
        "status": row.status,
        "close_reason": row.close_reason,
        "started_at": row.started_at,
        "finished_at": finished,
        "duration_seconds": None
        if finished is None
        else round((finished - row.started_at).total_seconds(), 3),
        "counters": {name: getattr(row, name) for name in COUNTERS},
        "health": row.health,
        "health_reasons": list(row.health_reasons),
        "stats": row.stats,
    }


@blueprint.route("/runs")
@blueprint.arguments(RunArgs(), location="query")
@blueprint.response(200, schemas.RunPage)
def list_runs(args: dict[str, Any]):
    """Crawl runs, newest first; `vendor=` for one shop's recent runs."""
    query = sa.select(crawl_runs)
    if "vendor" in args:
        query = query.where(_r.spider.in_(args["vendor"]))
    if "status" in args:
        query = query.where(_r.status.in_(args["status"]))
    if "health" in args:
        query = query.where(_r.health.in_(args["health"]))
    rows, next_cursor = pagination.keyset_page(
        db.reader(),
        query,
        _SORTS["id"],
        _SORT,
        args.get("cursor"),
        args["limit"],
        value_of=lambda row: row.id,
    )
    return {
        "items": [_as_json(row) for row in rows],
        "limit": args["limit"],
        "next_cursor": next_cursor,
    }
