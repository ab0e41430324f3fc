"""/v1/vendors: the shops, with their product counts, last sync and last crawl run."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask_smorest import abort
from sqlalchemy.engine import Connection

from christmas_spiders.domain import AVAILABILITY
from christmas_spiders.storage.schema import crawl_runs, products, vendors
from christmas_spiders.vendors import VENDORS
from webapi import db, schemas, v1

blueprint = v1.Blueprint("vendors", __name__, description="The shops we track.")

_p = products.c
_listed = _p.delisted_at.is_(None)
_COUNTS = {
    "total": sa.func.count(),
    "listed": sa.func.count().filter(_listed),
    "delisted": sa.func.count().filter(_p.delisted_at.is_not(None)),
    **{
        availability: sa.func.count().filter(_listed, _p.availability == availability)
        for availability in AVAILABILITY
    },
}


def _vendors(connection: Connection, vendor_id: str | None = None) -> list[dict[str, Any]]:
    counts = (
        sa.select(
            _p.vendor,
            sa.func.max(_p.last_synced_at).label("product_synced_at"),
            *(count.label(name) for name, count in _COUNTS.items()),
        )
        .group_by(_p.vendor)
        .subquery()
    )
    last_run = (
        sa.select(
            crawl_runs.c.id,
            crawl_runs.c.status,
            crawl_runs.c.started_at,
            crawl_runs.c.finished_at,
        )
        .where(crawl_runs.c.spider == vendors.c.id)
        .order_by(crawl_runs.c.started_at.desc(), crawl_runs.c.id.desc())
        .limit(1)
        .lateral()
    )
    query = (
        sa.select(
            vendors,
            counts,
            last_run.c.id.label("run_id"),
            last_run.c.status.label("run_status"),
            last_run.c.started_at.label("run_started_at"),
            last_run.c.finished_at.label("run_finished_at"),
        )
        .select_from(vendors)
        .outerjoin(counts, counts.c.vendor == vendors.c.id)
        .outerjoin(last_run, sa.true())
        .order_by(vendors.c.id)
    )
    if vendor_id is not None:
        query = query.where(vendors.c.id == vendor_id)
    result = []
    for row in connection.execute(query):
        result.append(
            {
                "id": row.id,
                "display_name": row.display_name,
                "base_url": row.base_url,
                "last_synced_at": row.last_synced_at or row.product_synced_at,
                "products": {name: getattr(row, name) or 0 for name in _COUNTS},
                "last_run": None
                if row.run_id is None
                else {
                    "id": row.run_id,
                    "status": row.run_status,
                    "started_at": row.run_started_at,
                    "finished_at": row.run_finished_at,
                },
            }
        )
    return result


@blueprint.route("/vendors")
@blueprint.arguments(schemas.Query(), location="query")
@blueprint.response(200, schemas.Vendor(many=True))
def list_vendors(_args: dict[str, Any]):
    """Every shop with its product counts, last sync time and latest crawl run."""
    return _vendors(db.reader())


@blueprint.route("/vendors/<vendor_id>")
@blueprint.arguments(schemas.Query(), location="query")
@blueprint.response(200, schemas.Vendor)
def get_vendor(_args: dict[str, Any], vendor_id: str):
    """One shop."""
    found = _vendors(db.reader(), vendor_id) if vendor_id in VENDORS else []
    if not found:
        abort(404, message=f"no vendor {vendor_id!r}.")
    return found[0]
