"""The services a benchmark runs against: PostgreSQL and Redis.

`Services` picks the PostgreSQL server (DATABASE_URL, else TEST_DATABASE_URL, else the local
server on 5432 that `make test` uses, else a throw-away embedded one) and Redis (REDIS_URL, else
redis://127.0.0.1:6379/0). `scratch_database()` gives a fresh, migrated database: a clone of a
template migrated once, through the same `tests.scratch_databases.ScratchDatabases` the tests'
fixtures use; every database it made is dropped when the services close. `query()` and
`scratch_engine()` read such a database; `child_env()` is the environment of a child process.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from bench.constants import PROJECT_ROOT
from christmas_spiders import config
from christmas_spiders.storage import embedded
from tests.scratch_databases import ScratchDatabases

LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS = "redis://127.0.0.1:6379/0"


def _reachable(url: str) -> bool:
    engine = sa.create_engine(
        make_url(url).set(drivername="postgresql+psycopg2"),
        poolclass=sa.pool.NullPool,
        connect_args={"connect_timeout": 3},
    )
    try:
        with engine.connect():
            return True
    except sa.exc.OperationalError:
        return False
    finally:
        engine.dispose()


class Services:
    """PostgreSQL (scratch databases) and Redis for one benchmark session."""

    def __init__(self) -> None:
        settings = config.load()
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        candidates = [settings.database_url, os.environ.get("TEST_DATABASE_URL"), LOCAL_POSTGRES]
        url = next((c for c in candidates if c and _reachable(c)), None)
        if url is None:  # no server around: a private embedded one (slower to start)
            self._folder = tempfile.TemporaryDirectory(prefix="christmas-bench-")
            url = embedded.start(Path(self._folder.name))
            self.server_kind = "embedded PostgreSQL (temporary)"
        else:
            self.server_kind = "PostgreSQL at " + make_url(url).render_as_string(hide_password=True)
        self.server_url = url
        self.redis_url = settings.redis_url or LOCAL_REDIS
        self.databases = ScratchDatabases(url, prefix="christmas_bench")

    def scratch_database(self) -> str:
        """A fresh, migrated database (a clone of a template migrated once); its URL."""
        template = self.databases.template(lambda url: config.Config(database_url=url))
        return self.databases.clone(template)

    def drop(self, url: str) -> None:
        self.databases.drop(url)

    def count_products(self, url: str, vendor: str) -> int:
        found = query(url, "SELECT count(*) FROM products WHERE vendor = :vendor", vendor=vendor)
        return found[0][0]

    def versions(self) -> dict[str, str]:
        found = {}
        with self.databases.admin.connect() as connection:
            found["PostgreSQL"] = connection.execute(sa.text("SHOW server_version")).scalar()
        try:
            import redis

            client = redis.Redis.from_url(self.redis_url, socket_timeout=3)
            found["Redis"] = client.info("server")["redis_version"]
            client.close()
        except Exception as error:  # informative only
            found["Redis"] = f"unreachable ({type(error).__name__})"
        return found

    def close(self) -> None:
        self.databases.close()
        if self._folder is not None:
            embedded.server_for(Path(self._folder.name)).cleanup()
            self._folder.cleanup()

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def scratch_engine(url: str) -> sa.Engine:
    """An engine on a (scratch) database: psycopg2, no pool; dispose of it after."""
    return sa.create_engine(
        make_url(url).set(drivername="postgresql+psycopg2"), poolclass=sa.pool.NullPool
    )


def query(url: str, sql: str, **params: Any) -> list[Any]:
    """The rows of one SQL statement on that database (its own connection, closed after)."""
    engine = scratch_engine(url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(sa.text(sql), params).all())
    finally:
        engine.dispose()


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child process: ours without the service URLs, plus `extra`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL") and not key.startswith("CHRISTMAS_")
    }
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("LOG_LEVEL", "INFO")
    env.update(extra)
    return env
