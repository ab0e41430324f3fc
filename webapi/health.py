"""`GET /healthz`: no key needed; 200 when the database answers with the expected schema."""

from __future__ import annotations

from functools import cache

import flask_smorest
import marshmallow as ma
import sqlalchemy as sa
from flask import jsonify
from sqlalchemy.exc import SQLAlchemyError

from christmas_spiders.errors import one_line
from christmas_spiders.storage import database
from webapi import db

blueprint = flask_smorest.Blueprint("health", __name__, description="Liveness (no key needed).")


_REVISION = sa.text("SELECT max(version_num) FROM alembic_version")


@cache
def _head_revision() -> str:
    return database.head_revision()  # reads the migrations folder: once per process


class Health(ma.Schema):
    status = ma.fields.String(metadata={"description": "ok, unavailable or schema mismatch"})
    schema = ma.fields.String(allow_none=True, metadata={"description": "Migration revision."})
    error = ma.fields.String(metadata={"description": "Why the database is unavailable."})


@blueprint.route("/healthz")
@blueprint.doc(security=[])
@blueprint.response(200, Health, description="The database answers with this code's schema.")
@blueprint.alt_response(503, schema=Health, description="The database is unavailable.")
def healthz():
    """200 when the database the API reads answers with this code's schema, else 503."""
    try:
        with db.databases().reader.connect() as connection:
            revision = connection.execute(_REVISION).scalar()
    except sa.exc.TimeoutError:  # the pool's: no connection came free in time
        return jsonify(status="unavailable", error=db.POOL_EXHAUSTED), 503
    except SQLAlchemyError as error:
        return jsonify(status="unavailable", error=one_line(error)), 503
    if revision != _head_revision():
        return jsonify(status="schema mismatch", schema=revision), 503
    return jsonify(status="ok", schema=revision)
