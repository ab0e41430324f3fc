"""The key setting and the headers of every page.

With `web_requires_key`, every page needs a valid API key, checked as the API checks it
(`webapi.auth`); the key form keeps it in an HttpOnly cookie. Every answer carries a Content
Security Policy that allows our own files only: no script at all, no frames, forms posting to
ourselves.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app, g, redirect, request, url_for
from flask.wrappers import Response
from werkzeug.exceptions import Unauthorized

from webapi import auth

KEY_COOKIE = "christmas_key"
KEY_COOKIE_DAYS = 30
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
# The style sheet and the key form need no key.
_PUBLIC_ENDPOINTS = ("web.static", "web.enter_key")


def _requires_key() -> bool:
    return current_app.config["CHRISTMAS_CONFIG"].web_requires_key


def require_key() -> None:
    """before_request: with `web_requires_key`, 401 without a valid key."""
    if not _requires_key() or request.endpoint in _PUBLIC_ENDPOINTS:
        return
    presented = auth.presented_key(cookie=KEY_COOKIE)
    if presented is None:
        raise Unauthorized("These pages need an API key.")
    key, reason = auth.check_key(presented)
    if key is None:
        raise Unauthorized(f"The API key is {reason}.")
    g.api_key = key


def enter_key() -> Response:
    """The key form (POST /key): a valid key is kept in an HttpOnly cookie (never in a URL,
    which proxies log), then the page asked for is shown."""
    presented = request.form.get("key", "").strip()
    key, reason = auth.check_key(presented) if presented else (None, "missing")
    if key is None:
        raise Unauthorized(f"The API key is {reason}.")
    response = redirect(_local(request.form.get("next", "")), code=303)
    response.set_cookie(
        KEY_COOKIE,
        presented,
        max_age=KEY_COOKIE_DAYS * 86400,
        httponly=True,
        samesite="Lax",
        secure=request.is_secure or request.headers.get("X-Forwarded-Proto") == "https",
    )
    return response


def _local(target: str) -> str:
    """A path on this site, or the search page (never an open redirect)."""
    parts = urlsplit(target)
    if not target.startswith("/") or target.startswith("//") or parts.scheme or parts.netloc:
        return url_for("web.search")
    return target


def add_headers(response: Response) -> Response:
    """after_request: the security headers, and no caching of pages by others than the
    browser when they need a key."""
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.endpoint != "web.static":
        response.headers["Cache-Control"] = "no-cache"
        if _requires_key():
            response.headers["Cache-Control"] = "private, no-cache"
            response.vary.update(("Authorization", "X-API-Key", "Cookie"))
    return response
