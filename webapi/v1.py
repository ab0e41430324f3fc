"""What every /v1 blueprint shares: an API key and its rate limit before the view, 400 for bad
parameters, and after it ETag / Last-Modified with 304 for a client that has the same answer."""

from __future__ import annotations

from datetime import datetime

import flask_smorest
from flask import g, request
from flask.wrappers import Response

from webapi import auth, errors

PREFIX = "/v1"
SECURITY = [{"bearerAuth": []}, {"apiKeyHeader": []}]
SECURITY_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key from `flask --app webapi keys create NAME`.",
    },
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}
# Documented on every /v1 operation besides its own answers (flask-smorest's response
# components: the error JSON shape, or no body for 304).
COMMON_RESPONSES = {
    304: "NOT_MODIFIED",
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    429: "TOO_MANY_REQUESTS",
    503: "SERVICE_UNAVAILABLE",
}


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = errors.Parser()

    def __init__(self, name: str, import_name: str, **kwargs) -> None:
        super().__init__(name, import_name, url_prefix=PREFIX, **kwargs)
        self.before_request(auth.require_key)
        self.after_request(_finish)

    def route(self, rule: str, *, parameters=None, **options):
        decorator = super().route(rule, parameters=parameters, **options)

        def wrap(view):
            for code, response in COMMON_RESPONSES.items():
                view = self.alt_response(code, response=response)(view)
            return decorator(view)

        return wrap


def set_last_modified(moment: datetime | None) -> None:
    """The time the data behind this answer last changed (Last-Modified, If-Modified-Since)."""
    g.last_modified = moment


def _finish(response: Response) -> Response:
    decision = g.get("rate_limit")
    if decision is not None:
        response.headers.update(auth.rate_limit_headers(decision))
    response.vary.update(("Authorization", "X-API-Key"))
    if request.method not in ("GET", "HEAD") or response.status_code != 200:
        return response
    response.headers["Cache-Control"] = "private, no-cache"
    if response.is_streamed:
        return response
    response.add_etag()
    moment = g.get("last_modified")
    if moment is not None:
        response.last_modified = moment
    return response.make_conditional(request)
