"""The API's database connections: read-only, as the SELECT-only role, replica-aware.

Two engines, which are the same object unless a replica is configured:

* ``primary`` — ``api_database_url``, else ``database_url``: API keys (and their one write,
  ``last_used_at``) and the change feed, whose "settled" horizon needs the primary's lock table.
* ``reader`` — ``database_replica_url`` when set (a Heroku Postgres follower), else the primary:
  everything else.

Every connection, when opened, switches to the API's role (``SET ROLE christmas_api``) unless
it logged in as that role, and makes transactions read-only by default. Where the role is
missing or not granted to the login (a single-role database such as Heroku's default
credential), the read-only transactions are what is left, and a warning says so at start.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import psycopg2
import sqlalchemy as sa
from flask import current_app, g
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url

from christmas_spiders import config
from christmas_spiders.storage import database

logger = logging.getLogger(__name__)

EXTENSION = "christmas_db"
APPLICATION_NAME = "christmas-api"
# Why a request got 503 when no pooled connection came free within the pool's timeout.
POOL_EXHAUSTED = "every database connection of this process is in use; try again shortly."


@dataclass
class _Session:
    """What the connect hook found out about a login (logged once per engine)."""

    role: str
    statement_timeout_ms: int
    mode: str | None = None  # "role" or "read-only transactions"
    login: str | None = None
    logged: bool = field(default=False, repr=False)


def _engine_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)


def _prepare_connection(dbapi_connection, session: _Session) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(
            "SELECT session_user, current_user = %(role)s,"
            " EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = %(role)s"
            "         AND pg_has_role(session_user, r.oid, 'MEMBER'))",
            {"role": session.role},
        )
        login, is_role, may_become = cursor.fetchone()
        mode = "role" if is_role else None
        if not is_role and may_become:
            try:
                # The name is a validated identifier (database.api_role); SET takes no parameters.
                cursor.execute(f'SET ROLE "{session.role}"')
                mode = "role"
            except psycopg2.Error:  # e.g. PostgreSQL 16+ membership granted without SET
                dbapi_connection.rollback()
        cursor.execute("SET default_transaction_read_only = on")
        cursor.execute("SET TIME ZONE 'UTC'")
        cursor.execute("SET statement_timeout = %s", (session.statement_timeout_ms,))
        cursor.execute("SET application_name = %s", (APPLICATION_NAME,))
        dbapi_connection.commit()  # session settings survive the pool's rollbacks
    finally:
        cursor.close()
    session.mode = mode or "read-only transactions"
    session.login = login
    if not session.logged:
        session.logged = True
        if mode:
            logger.info("the API reads as database role %s (SELECT only)", session.role)
        else:
            logger.warning(
                "the API's database role %s is missing or not granted to %s: the API runs as %s "
                'with read-only transactions (see README "API", read-only)',
                session.role,
                login,
                login,
            )


def _api_engine(url: str, settings: config.Config) -> tuple[Engine, _Session]:
    session = _Session(
        role=database.api_role(settings),
        statement_timeout_ms=int(settings.api_statement_timeout_seconds * 1000),
    )
    engine = sa.create_engine(
        _engine_url(url),
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        pool_recycle=1800,
        # A request waits for a free connection no longer than a statement may run, then
        # gets 503 (sqlalchemy.exc.TimeoutError), well before gunicorn's worker timeout.
        pool_timeout=settings.api_statement_timeout_seconds,
    )
    event.listen(engine, "connect", lambda dbapi, _record: _prepare_connection(dbapi, session))
    return engine, session


class Databases:
    """The API's engines (see the module docstring)."""

    def __init__(self, settings: config.Config) -> None:
        primary_url = settings.api_database_url or database.database_url(settings)
        self.primary, self.primary_session = _api_engine(primary_url, settings)
        self.reader, self.reader_session = (
            _api_engine(settings.database_replica_url, settings)
            if settings.database_replica_url
            else (self.primary, self.primary_session)
        )

    def dispose(self) -> None:
        self.primary.dispose()
        if self.reader is not self.primary:
            self.reader.dispose()


def databases() -> Databases:
    return current_app.extensions[EXTENSION]


def _connection(name: str, engine: Engine) -> Connection:
    connection = g.get(name)
    if connection is None:
        connection = engine.connect()
        setattr(g, name, connection)
    return connection


def primary() -> Connection:
    """This request's connection to the primary (opened on first use, closed at teardown)."""
    return _connection("_christmas_primary", databases().primary)


def reader() -> Connection:
    """This request's connection for reading (the replica when there is one)."""
    dbs = databases()
    if dbs.reader is dbs.primary:
        return primary()
    return _connection("_christmas_reader", dbs.reader)


def close_connections(_error: BaseException | None = None) -> None:
    for name in ("_christmas_reader", "_christmas_primary"):
        connection = g.pop(name, None)
        if connection is not None:
            connection.close()


def init_app(app, settings: config.Config) -> Databases:
    dbs = Databases(settings)
    with dbs.primary.connect():  # at start: says which way the API is read-only
        pass
    app.extensions[EXTENSION] = dbs
    app.teardown_appcontext(close_connections)
    return dbs
