"""The read-only API (Flask app factory). `flask --app webapi run` for development,
`gunicorn 'webapi:create_app()'` in production.

The API reads as the SELECT-only database role (`webapi.db`), answers JSON under /v1 and
documents itself at /openapi.json and /docs; the web view for collectors (`webapi.web`: search,
product pages with price charts, recent changes, crawl status) is HTML from the same app.

This package module stays light: the audit worker (`python -m webapi.auditor`), a process of
its own, imports it too and needs no Flask. The factory itself is in `webapi.app`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

    from christmas_spiders.config import Config


def create_app(settings: Config | None = None, test_config: dict[str, Any] | None = None) -> Flask:
    """The app (see `webapi.app.create_app`)."""
    from webapi.app import create_app as factory

    return factory(settings, test_config)
