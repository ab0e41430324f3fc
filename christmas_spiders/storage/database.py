"""Engines and schema management: connect to DATABASE_URL or the embedded server, migrate."""

from __future__ import annotations

import logging
import re
import threading
from importlib import resources

import psycopg2
import psycopg2.extensions
import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from psycopg2 import sql
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError

from christmas_spiders.config import Config, ConfigError
from christmas_spiders.errors import one_line
from christmas_spiders.storage import embedded, locks, market, runs
from christmas_spiders.storage.schema import (
    api_keys,
    crawl_runs,
    market_refreshes,
    market_year_index,
    market_year_steps,
    metadata,
    ornaments,
    product_changes,
    products,
    vendors,
)
from christmas_spiders.vendors import VENDORS

logger = logging.getLogger(__name__)

MIGRATIONS = resources.files("christmas_spiders.storage") / "migrations"
HISTORY_TRIGGER = "products_history"


class SchemaMismatch(RuntimeError):
    """The database schema is not the one this code was written for."""


def listen_connection(dsn: str, application_name: str) -> psycopg2.extensions.connection:
    """A psycopg2 connection for LISTEN: autocommit, named in pg_stat_activity, with TCP
    keepalives so that a peer gone silent is noticed in about a minute."""
    connection = psycopg2.connect(
        dsn,
        application_name=application_name,
        connect_timeout=10,
        keepalives=1,
        keepalives_idle=30,
        keepalives_interval=10,
        keepalives_count=3,
    )
    connection.autocommit = True
    return connection


def database_url(config: Config) -> str:
    """The SQLAlchemy URL: DATABASE_URL (Heroku's postgres:// accepted) or the embedded server
    (started once per process, from any thread: see embedded.start)."""
    url = make_url(config.database_url or embedded.start(config.data_dir))
    return url.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()  # threads of one crawl ask at once: still one engine each


def get_engine(config: Config) -> Engine:
    """One pooled engine per database for this process, whichever thread asks first."""
    url = database_url(config)
    with _engines_lock:
        if url not in _engines:
            _engines[url] = sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
        return _engines[url]


def _alembic_config(connection: Connection | None = None) -> AlembicConfig:
    alembic_config = AlembicConfig()
    alembic_config.set_main_option("script_location", str(MIGRATIONS))
    alembic_config.attributes["connection"] = connection
    return alembic_config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head, "no migrations found"
    return head


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, config: Config) -> None:
    """Create or upgrade the schema, (re)install the history trigger, register the vendors, and
    close crawl runs abandoned by processes that died (``runs.sweep``).

    Idempotent, and safe when several processes start at once (an advisory lock serialises them).
    """
    with engine.begin() as connection:
        connection.execute(sa.select(sa.func.pg_advisory_xact_lock(locks.SCHEMA)))
        before = current_revision(connection)
        command.upgrade(_alembic_config(connection), "head")
        _install_history_trigger(connection, config)
        _register_vendors(connection)
        _install_api_role(connection, config)
    if before != head_revision():
        logger.info("schema upgraded from %s to %s", before or "nothing", head_revision())
    runs.sweep(engine, config)


def check_schema(engine: Engine) -> None:
    """Raise SchemaMismatch unless the database is at this code's migration head."""
    with engine.connect() as connection:
        current = current_revision(connection)
    if current != head_revision():
        raise SchemaMismatch(
            f"the database schema is at {current or 'nothing'}, this code needs {head_revision()}; "
            "run `python -m christmas_spiders.storage upgrade`."
        )


def _trigger_arguments(config: Config) -> list[str]:
    return [repr(config.suspicious_price_ratio), *config.audited_fields]


def installed_trigger_arguments(connection: Connection) -> list[str] | None:
    raw = connection.execute(
        sa.text(
            "SELECT tgargs FROM pg_trigger WHERE tgrelid = 'products'::regclass AND tgname = :name"
        ),
        {"name": HISTORY_TRIGGER},
    ).scalar()
    if raw is None:
        return None
    return bytes(raw).decode().split("\x00")[:-1]


def _install_history_trigger(connection: Connection, config: Config) -> None:
    wanted = _trigger_arguments(config)
    if installed_trigger_arguments(connection) == wanted:
        return
    # CREATE TRIGGER takes literals only; the arguments are validated config values, and
    # psycopg2.sql quotes them.
    statement = sql.SQL(
        "DROP TRIGGER IF EXISTS {name} ON products; "
        "CREATE TRIGGER {name} AFTER INSERT OR UPDATE ON products "
        "FOR EACH ROW EXECUTE FUNCTION record_product_change({arguments})"
    ).format(
        name=sql.Identifier(HISTORY_TRIGGER),
        arguments=sql.SQL(", ").join(sql.Literal(argument) for argument in wanted),
    )
    cursor = connection.connection.dbapi_connection.cursor()
    cursor.execute(statement)
    logger.info("history trigger now records: %s", ", ".join(config.audited_fields))


def _register_vendors(connection: Connection) -> None:
    rows = [
        {"id": vendor.id, "display_name": vendor.display_name, "base_url": vendor.base_url}
        for vendor in VENDORS.values()
    ]
    statement = insert(vendors).values(rows)
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=[vendors.c.id],
            set_={"display_name": statement.excluded.display_name},
        )
    )


# --- the API's read-only role ---------------------------------------------------------------------

# What the API reads (and the market views, storage.market); alembic_version for its schema
# check. Nothing else (audit tables, the scheduler's job store) is granted.
API_READABLE_TABLES = (
    vendors,
    products,
    ornaments,
    product_changes,
    crawl_runs,
    api_keys,
    market_refreshes,
    market_year_steps,  # the year index (storage.market_index)
    market_year_index,
)
_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_DUPLICATE_OBJECT, _UNIQUE_VIOLATION, _INSUFFICIENT_PRIVILEGE = "42710", "23505", "42501"


def api_role(config: Config) -> str:
    """The API's role name, checked (it is quoted as an identifier anyway)."""
    role = config.api_database_role
    if not _ROLE_NAME.match(role):
        raise ConfigError(
            "api_database_role must be a lower-case PostgreSQL name (letters, digits, _), "
            f"not {role!r}."
        )
    return role


def _pgcode(error: DBAPIError) -> str | None:
    return getattr(error.orig, "pgcode", None)


def _api_role_privileges(connection: Connection, role: str) -> set[tuple[str, str]] | None:
    """The role's (table, privilege) grants in this schema, or None when anything else is
    missing: USAGE of the schema, UPDATE of api_keys.last_used_at."""
    query = sa.text(
        """
        SELECT has_schema_privilege(:role, current_schema(), 'USAGE')
           AND has_column_privilege(:role, 'api_keys', 'last_used_at', 'UPDATE') AS rest,
               array(SELECT c.relname || ' ' || a.privilege_type
                       FROM pg_class c, aclexplode(c.relacl) a
                      WHERE c.relnamespace = current_schema()::regnamespace
                        AND a.grantee = to_regrole(:role)) AS grants
        """
    )
    rest, grants = connection.execute(query, {"role": role}).one()
    if not rest:
        return None
    return {tuple(grant.split(" ", 1)) for grant in grants}


def _install_api_role(connection: Connection, config: Config) -> None:
    """Create the API's role (LOGIN, no password: set one for a URL that names it) and grant it
    SELECT on what the API reads, plus UPDATE of api_keys.last_used_at and nothing else.

    Where the migrating login may not create roles (Heroku's default credential), this logs a
    warning and the API falls back to read-only transactions (see README "API").
    """
    role = api_role(config)
    identifier = sql.Identifier(role)
    dbapi_connection = connection.connection.dbapi_connection
    exists = connection.execute(
        sa.text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": role}
    ).scalar()
    if not exists:
        try:
            with connection.begin_nested():
                statement = sql.SQL("CREATE ROLE {} LOGIN").format(identifier)
                connection.exec_driver_sql(statement.as_string(dbapi_connection))
            logger.info("created the API's read-only database role %s", role)
        except DBAPIError as error:
            if _pgcode(error) == _INSUFFICIENT_PRIVILEGE:
                logger.warning(
                    "cannot create the API's database role %s (%s): the API will run with "
                    'read-only transactions instead; see README "API" for Heroku',
                    role,
                    one_line(error),
                )
                return
            if _pgcode(error) not in (_DUPLICATE_OBJECT, _UNIQUE_VIOLATION):
                raise  # created meanwhile by an upgrade of another database: fine
    readable = sql.SQL(", ").join(
        [
            *(sql.Identifier(table.name) for table in API_READABLE_TABLES),
            *(sql.Identifier(view) for view in market.VIEWS),
            sql.Identifier("alembic_version"),
        ]
    )
    every_table = sql.SQL(", ").join(
        sql.Identifier(name) for name in (*sorted(metadata.tables), "alembic_version")
    )
    names = [table.name for table in API_READABLE_TABLES] + [*market.VIEWS, "alembic_version"]
    if _api_role_privileges(connection, role) == {(name, "SELECT") for name in names}:
        # Granted already: no catalog writes at every process start (they took row locks on
        # pg_class that a market refresh's ANALYZE of the same rows waited on: deadlocks).
        return
    statements = [
        sql.SQL("REVOKE ALL ON {} FROM {}").format(every_table, identifier),
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(identifier),
        sql.SQL("GRANT SELECT ON {} TO {}").format(readable, identifier),
        sql.SQL("GRANT UPDATE (last_used_at) ON {} TO {}").format(
            sql.Identifier(api_keys.name), identifier
        ),
    ]
    try:
        with connection.begin_nested():
            for statement in statements:
                connection.exec_driver_sql(statement.as_string(dbapi_connection))
    except DBAPIError as error:
        if _pgcode(error) != _INSUFFICIENT_PRIVILEGE:
            raise
        logger.warning(
            "cannot grant the API's database role %s its privileges (%s)",
            role,
            one_line(error),
        )
