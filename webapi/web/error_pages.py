"""The pages' errors as HTML pages: the HTTP errors (a 401 with the key form), 503 with
Retry-After when the database is unavailable, and 500 for anything unexpected (logged). A URL
that no route takes outside the API (`/products/-1`, `/nope`) gets the HTML 404 (or 405) page
too (`unrouted`, called by the app's error handler, `webapi.errors.Api`)."""

from __future__ import annotations

import logging
import re

from flask import Blueprint, current_app, render_template, request
from flask.wrappers import Response
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from christmas_spiders.errors import one_line
from webapi import errors
from webapi.web import security

logger = logging.getLogger(__name__)
_API_PATH = re.compile(r"/v\d+(/|$)")  # /v1/… and any other version: the JSON API's


def _http_error(error: HTTPException):
    data = getattr(error, "data", None) or {}
    message = data.get("message") or error.description or error.name
    response = current_app.response_class(
        render_template(
            "web/error.html",
            code=error.code,
            name=error.name,
            message=message,
            ask_key=error.code == 401,
            next=request.full_path.rstrip("?") if request.method == "GET" else "/",
        ),
        status=error.code,
    )
    if error.code == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="christmas"'
    return response


def unrouted(error: HTTPException) -> Response | None:
    """The error page for a URL that no route took, with the pages' headers; None for a URL of
    the JSON API (/v1/…, /v2/…), whose errors are JSON."""
    if _API_PATH.match(request.path):
        return None
    return security.add_headers(_http_error(error))


def _database_unavailable(error: SQLAlchemyError):
    logger.error("database error: %s", one_line(error))
    page = render_template(
        "web/error.html",
        code=503,
        name="Service Unavailable",
        message="The database is unavailable; try again shortly.",
    )
    return page, 503, {"Retry-After": "5"}


def _unexpected(error: Exception):
    logger.exception("unhandled error: %s", error)
    page = render_template(
        "web/error.html",
        code=500,
        name="Internal Server Error",
        message="Something went wrong on our side; it has been logged.",
    )
    return page, 500


def register(blueprint: Blueprint) -> None:
    blueprint.register_error_handler(HTTPException, _http_error)
    for error in errors.DATABASE_UNAVAILABLE:
        blueprint.register_error_handler(error, _database_unavailable)
    blueprint.register_error_handler(Exception, _unexpected)
