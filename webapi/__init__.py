"""The read-only API (Flask app factory). `flask --app webapi run` for development.

The API never changes the schema: at start it checks that the database is at this code's
migration head and refuses to start otherwise.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from christmas_spiders import config, logs
from christmas_spiders.storage import check_schema, get_engine


def create_app(settings: config.Config | None = None, test_config: dict[str, Any] | None = None):
    settings = settings or config.load()
    logs.configure(settings.log_level, settings.log_format)
    engine = get_engine(settings)
    check_schema(engine)  # raises SchemaMismatch: the API refuses to start

    app = Flask(__name__)
    app.config.update(CHRISTMAS_CONFIG=settings, JSON_SORT_KEYS=False)
    app.config.update(test_config or {})
    app.extensions["christmas_engine"] = engine

    from webapi import health

    app.register_blueprint(health.blueprint)
    return app
