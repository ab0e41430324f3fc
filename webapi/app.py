"""The app factory: Flask, the /v1 blueprints, the docs and the web view, on the API's engines.

The API never changes the schema: at start it checks, on its own read-only connection, that the
database is at this code's migration head, and refuses to start otherwise.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from christmas_spiders import config, logs
from christmas_spiders.storage import SchemaMismatch, check_schema
from webapi import (
    auth,
    changes,
    cli,
    db,
    docs,
    errors,
    health,
    ornaments,
    products,
    runs,
    schemas,
    series,
    skus,
    v1,
    vendors,
    web,
)
from webapi.market import gaps as market_gaps
from webapi.market import rare as market_rare
from webapi.market import years as market_years
from webapi.web import error_pages


def create_app(settings: config.Config | None = None, test_config: dict[str, Any] | None = None):
    settings = settings or config.load()
    logs.configure(settings.log_level, settings.log_format)

    app = Flask("webapi")  # named after the package: its logger and root path
    app.config.update(CHRISTMAS_CONFIG=settings, JSON_SORT_KEYS=False)
    app.config.update(docs.API_CONFIG)
    app.config["API_SPEC_OPTIONS"] = {
        "security": v1.SECURITY,
        "components": {"securitySchemes": v1.SECURITY_SCHEMES},
        "info": {
            "description": "Read-only API of project_christmas: Hallmark Keepsake ornaments, "
            "their prices and stock at three shops, and the history of both. Every /v1 "
            "request needs an API key (`Authorization: Bearer <key>` or `X-API-Key`)."
        },
    }
    app.config.update(test_config or {})
    databases = db.init_app(app, settings)
    try:
        check_schema(databases.primary)  # the API refuses to start
    except SchemaMismatch:
        databases.dispose()
        raise
    app.extensions["christmas_engine"] = databases.reader
    auth.init_app(app, settings)
    cli.init_app(app)

    api = errors.Api(app)
    api.unrouted = error_pages.unrouted
    api.register_field(schemas.Money, "string", "decimal")
    errors.init_app(app)
    app.register_blueprint(docs.blueprint)
    api.register_blueprint(health.blueprint)
    for module in (
        vendors,
        products,
        ornaments,
        series,
        skus,
        changes,
        runs,
        market_gaps,
        market_rare,
        market_years,
    ):
        api.register_blueprint(module.blueprint)
    app.register_blueprint(web.blueprint)  # the HTML pages, at /
    return app
