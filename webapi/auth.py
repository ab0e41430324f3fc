"""API keys: format, storage as a hash, the check on every /v1 request, and its rate limit.

A key reads ``xmas_<prefix>_<secret>``: ``prefix`` is 8 random hex digits that identify the key
(stored in clear, shown by ``flask keys list``), ``secret`` 32 random bytes in URL-safe base64.
Only the SHA-256 of the whole key is stored. A key is looked up by its prefix and its hash
compared with ``hmac.compare_digest`` (constant time; a dummy comparison when no row matches).
A 256-bit random secret needs no slow password hash: there is nothing to guess.

Clients send ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. A missing, unknown or
revoked key gets 401; past the key's rate limit, 429 with ``Retry-After``. A valid key is
remembered by each process for ``api_key_cache_seconds`` (a query less per request), so a
revoked key stops working within that time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import re
import secrets
import time
from datetime import datetime

import sqlalchemy as sa
from flask import current_app, g, request
from flask_smorest import abort
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from christmas_spiders import config
from christmas_spiders.storage.schema import api_keys
from webapi import db, ratelimit

logger = logging.getLogger(__name__)

KEY_PATTERN = re.compile(r"^xmas_([0-9a-f]{8})_[A-Za-z0-9_-]{43}$")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
# last_used_at is written at most this often per key and process (it is the API's one write).
TOUCH_INTERVAL_SECONDS = 60.0
_DUMMY_HASH = hashlib.sha256(b"no such key").hexdigest()
_LIMITER = "christmas_rate_limiter"
_TOUCHED = "christmas_keys_touched"
_VALID = "christmas_keys_valid"
# The monotonic clock of the key cache and of last_used_at (an app extension: tests set theirs).
CLOCK = "christmas_keys_clock"
_VALID_MAX = 10_000  # keys remembered per process; past it, the memory starts over


@dataclasses.dataclass(frozen=True)
class ApiKey:
    id: int
    name: str
    prefix: str
    rate_limit: int | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class KeyCommandError(LookupError):
    """A key command could not be carried out (unknown key, name in use, bad name)."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh key and its prefix."""
    prefix = secrets.token_hex(4)
    return prefix, f"xmas_{prefix}_{secrets.token_urlsafe(32)}"


# --- storage (the CLI writes with the owner's engine; the API only reads and touches) ---------


def create_key(connection: Connection, name: str, rate_limit: int | None = None) -> tuple[int, str]:
    """Store a new key for `name`; returns its id and the key, which is never stored."""
    if not NAME_PATTERN.match(name):
        raise KeyCommandError(
            f"key name {name!r} must be 1-64 letters, digits or . _ @ -, starting with a "
            "letter or digit."
        )
    active = connection.execute(
        sa.select(api_keys.c.id).where(api_keys.c.name == name, api_keys.c.revoked_at.is_(None))
    ).first()
    if active:
        raise KeyCommandError(f"an active key named {name!r} exists already (id {active.id}).")
    prefix, key = new_key()
    key_id = connection.execute(
        sa.insert(api_keys)
        .values(name=name, prefix=prefix, key_hash=hash_key(key), rate_limit=rate_limit)
        .returning(api_keys.c.id)
    ).scalar_one()
    return key_id, key


# The columns of an ApiKey (never the hash).
_KEY_COLUMNS = tuple(api_keys.c[field.name] for field in dataclasses.fields(ApiKey))


def list_keys(connection: Connection, include_revoked: bool = True) -> list[ApiKey]:
    query = sa.select(*_KEY_COLUMNS).order_by(api_keys.c.id)
    if not include_revoked:
        query = query.where(api_keys.c.revoked_at.is_(None))
    return [ApiKey(**row._mapping) for row in connection.execute(query)]


def revoke_key(connection: Connection, name_or_id: str) -> list[int]:
    """Revoke the active key with this name, or the key with this id; returns the ids revoked."""
    which = api_keys.c.name == name_or_id
    if name_or_id.isdigit() and len(name_or_id) < 19:
        which = sa.or_(which, api_keys.c.id == int(name_or_id))
    revoked = connection.execute(
        sa.update(api_keys)
        .where(which, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=sa.func.now())
        .returning(api_keys.c.id)
    ).scalars()
    ids = sorted(revoked)
    if not ids:
        raise KeyCommandError(f"no active key with the name or id {name_or_id!r}.")
    return ids


def find_key(connection: Connection, presented: str) -> tuple[ApiKey | None, str]:
    """The key row for a presented key, and why not when None ("unknown" or "revoked")."""
    match = KEY_PATTERN.match(presented)
    row = None
    if match:
        row = connection.execute(
            sa.select(*_KEY_COLUMNS, api_keys.c.key_hash).where(api_keys.c.prefix == match.group(1))
        ).first()
    stored = row.key_hash if row is not None else _DUMMY_HASH
    if not hmac.compare_digest(stored, hash_key(presented)) or row is None:
        return None, "unknown"
    key = ApiKey(**{column.key: row._mapping[column.key] for column in _KEY_COLUMNS})
    if key.revoked_at is not None:
        return None, "revoked"
    return key, ""


def touch_key(connection: Connection, key_id: int) -> None:
    """Record the key's use: the API's only write (its role may UPDATE this column only)."""
    connection.exec_driver_sql("SET TRANSACTION READ WRITE")
    connection.execute(
        sa.update(api_keys)
        .where(
            api_keys.c.id == key_id,
            sa.or_(
                api_keys.c.last_used_at.is_(None),
                api_keys.c.last_used_at
                < sa.func.now() - sa.func.make_interval(0, 0, 0, 0, 0, 0, TOUCH_INTERVAL_SECONDS),
            ),
        )
        .values(last_used_at=sa.func.now())
    )


# --- the check on every /v1 request -----------------------------------------------------------


def check_key(presented: str) -> tuple[ApiKey | None, str]:
    """`find_key` on the primary, with a valid key remembered for `api_key_cache_seconds`."""
    seconds = current_app.config["CHRISTMAS_CONFIG"].api_key_cache_seconds
    valid: dict[str, tuple[ApiKey, float]] = current_app.extensions[_VALID]
    digest, now = hash_key(presented), current_app.extensions[CLOCK]()
    remembered = valid.get(digest)
    if remembered is not None and now < remembered[1]:
        return remembered[0], ""
    key, reason = find_key(db.primary(), presented)
    if key is not None and seconds > 0:
        if len(valid) >= _VALID_MAX:
            valid.clear()
        valid[digest] = (key, now + seconds)
    return key, reason


def presented_key(cookie: str | None = None) -> str | None:
    """The key this request presents: `Authorization: Bearer <key>`, `X-API-Key`, or the
    cookie named `cookie` (the web view's key form sets one)."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    from_cookie = request.cookies.get(cookie) if cookie else None
    for value in (request.headers.get("X-API-Key"), from_cookie):
        if value and value.strip():
            return value.strip()
    return None


def _unauthorized(message: str):
    abort(401, message=message, headers={"WWW-Authenticate": 'Bearer realm="christmas"'})


def _maybe_touch(key: ApiKey) -> None:
    touched: dict[int, float] = current_app.extensions[_TOUCHED]
    now = current_app.extensions[CLOCK]()
    if now - touched.get(key.id, -TOUCH_INTERVAL_SECONDS) < TOUCH_INTERVAL_SECONDS:
        return
    touched[key.id] = now
    try:
        with db.databases().primary.begin() as connection:
            touch_key(connection, key.id)
    except SQLAlchemyError as error:
        logger.warning("could not record the use of API key %s: %s", key.prefix, error)


def require_key() -> None:
    """before_request of every /v1 blueprint: 401 without a valid key, 429 over its limit."""
    presented = presented_key()
    if presented is None:
        _unauthorized(
            "an API key is required: send it as 'Authorization: Bearer <key>' or 'X-API-Key'."
        )
    key, reason = check_key(presented)
    if key is None:
        _unauthorized(f"the API key is {reason}.")
    g.api_key = key
    settings: config.Config = current_app.config["CHRISTMAS_CONFIG"]
    limiter: ratelimit.RateLimiter = current_app.extensions[_LIMITER]
    window = settings.api_rate_limit_window_seconds
    decision = limiter.hit(str(key.id), key.rate_limit or settings.api_rate_limit, window)
    g.rate_limit = decision
    if not decision.allowed:
        abort(
            429,
            message=(
                f"rate limit of {decision.limit} requests per {window} s exceeded for this key; "
                f"retry in {decision.reset_after} s."
            ),
            headers={"Retry-After": str(decision.reset_after), **rate_limit_headers(decision)},
        )
    _maybe_touch(key)


def rate_limit_headers(decision: ratelimit.Decision) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(decision.limit),
        "X-RateLimit-Remaining": str(decision.remaining),
        "X-RateLimit-Reset": str(decision.reset_after),
    }


def init_app(app, settings: config.Config) -> None:
    app.extensions[_LIMITER] = ratelimit.from_settings(
        settings.redis_url, settings.redis_key_prefix
    )
    app.extensions[_TOUCHED] = {}
    app.extensions[_VALID] = {}
    app.extensions[CLOCK] = time.monotonic
