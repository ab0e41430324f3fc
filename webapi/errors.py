"""One JSON shape for every error, and 400 (not 422) for bad input, naming the parameter.

{"code": 400, "status": "Bad Request",
 "message": "invalid parameter release_year: Must be greater than or equal to 1900 …",
 "errors": {"release_year": ["Must be greater than or equal to 1900 …"]}}
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import flask_smorest
from flask import Flask, jsonify, request
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import HTTPException

from christmas_spiders.errors import one_line

logger = logging.getLogger(__name__)

# Answered 503 with Retry-After: the database is down or slow, or every pooled connection of
# this process is in use (the pool's TimeoutError, which wraps no driver error).
DATABASE_UNAVAILABLE = (OperationalError, PoolTimeout)


def _flatten(messages: Any, path: str = "") -> dict[str, list[str]]:
    """{"query": {"vendor": {0: ["…"]}}} → {"vendor": ["…"]}."""
    if isinstance(messages, Mapping):
        flat: dict[str, list[str]] = {}
        for name, value in messages.items():
            if isinstance(name, int):  # an item of a list parameter: name the parameter
                child = path
            elif not path and name in ("query", "querystring", "json", "headers", "view_args"):
                child = ""
            else:
                child = f"{path}.{name}" if path else str(name)
            for key, found in _flatten(value, child).items():
                flat.setdefault(key, []).extend(found)
        return flat
    values = messages if isinstance(messages, list) else [messages]
    return {path or "request": [str(value) for value in values]}


def invalid(errors: Mapping[str, list[str] | str]) -> NoReturn:
    """Abort with 400, naming each bad parameter in the message."""
    flat = {name: value if isinstance(value, list) else [value] for name, value in errors.items()}
    parts = [f"{name}: {' '.join(messages)}" for name, messages in flat.items()]
    noun = "parameter" if len(parts) == 1 else "parameters"
    flask_smorest.abort(400, message=f"invalid {noun} " + "; ".join(parts), errors=flat)


class Parser(FlaskParser):
    """webargs, with validation errors as 400 and a message that names the parameters.

    `unknown` is left to each schema (`unknown=None`, as webargs documents): without it,
    webargs passes EXCLUDE for the query string and a schema's `Meta.unknown` never applies.
    """

    DEFAULT_VALIDATION_STATUS = 400

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(unknown=None, **kwargs)

    def handle_error(self, error, req, schema, *, error_status_code, error_headers) -> NoReturn:
        invalid(_flatten(error.messages))


class Api(flask_smorest.Api):
    """flask-smorest's Api; `unrouted` may answer a URL no route took (/products/-1, /nope) with
    a page of its own (the app factory hands it the web view's error pages, which import this
    module), else the answer is JSON."""

    unrouted: Callable[[HTTPException], Any] | None = None

    def handle_http_exception(self, error: HTTPException):
        if request.url_rule is None and self.unrouted is not None:
            page = self.unrouted(error)
            if page is not None:
                return page
        payload, code, headers = super().handle_http_exception(error)
        payload.setdefault("message", error.description or error.name)
        if code >= 500:
            logger.error("%s %s", code, payload["message"])
        return payload, code, headers


def _database_unavailable(error: SQLAlchemyError):
    logger.error("database error: %s", one_line(error))
    response = jsonify(
        code=503,
        status="Service Unavailable",
        message="the database is unavailable; try again shortly.",
    )
    response.status_code = 503
    response.headers["Retry-After"] = "5"
    return response


def _unexpected(error: Exception):
    logger.exception("unhandled error: %s", error)
    response = jsonify(
        code=500, status="Internal Server Error", message="internal error; it has been logged."
    )
    response.status_code = 500
    return response


def init_app(app: Flask) -> None:
    for error in DATABASE_UNAVAILABLE:
        app.register_error_handler(error, _database_unavailable)
    app.register_error_handler(Exception, _unexpected)
