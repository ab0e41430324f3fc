"""`GET /healthz`: no key needed; 200 when the database answers with the expected schema."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from sqlalchemy.exc import SQLAlchemyError

from christmas_spiders.storage import database

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz():
    engine = current_app.extensions["christmas_engine"]
    try:
        with engine.connect() as connection:
            revision = database.current_revision(connection)
    except SQLAlchemyError as error:
        reason = str(error.orig or error).strip().splitlines()[0]
        return jsonify(status="unavailable", error=reason), 503
    if revision != database.head_revision():
        return jsonify(status="schema mismatch", schema=revision), 503
    return jsonify(status="ok", schema=revision)
