"""Fresh, migrated PostgreSQL databases on one server, for the tests and the benchmarks.

Migrating a database takes seconds; copying one takes milliseconds. So a template database is
created and migrated once (with the configuration the caller gives for it), and every test or
benchmark run gets its own clone of it (`CREATE DATABASE … TEMPLATE …`), dropped after. The
fixtures of tests/conftest.py and the benchmarks' services (bench/services.py) both use
`ScratchDatabases`, so the template logic lives here once; whatever it created, `close()` drops.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from christmas_spiders.config import Config
from christmas_spiders.storage import database


class ScratchDatabases:
    """Databases created on the server at `server_url` (any database of it: the connection
    only creates and drops), named `<prefix>_<random>`."""

    def __init__(self, server_url: str, prefix: str) -> None:
        self.server_url = server_url
        self.prefix = prefix
        self.admin: Engine = sa.create_engine(
            make_url(server_url).set(drivername="postgresql+psycopg2"),
            isolation_level="AUTOCOMMIT",
            poolclass=sa.pool.NullPool,
        )
        self._created: list[str] = []
        self._template: str | None = None

    def url_for(self, name: str) -> str:
        """The URL of database `name` on this server."""
        return make_url(self.server_url).set(database=name).render_as_string(hide_password=False)

    def _create(self, name: str, template: str | None = None) -> str:
        clause = f' TEMPLATE "{template}"' if template else ""
        with self.admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"{clause}'))
        self._created.append(name)
        return name

    def template(self, settings_for: Callable[[str], Config]) -> str:
        """The template's name: created and migrated on the first call, under the configuration
        `settings_for(its URL)` (the history trigger and the API role depend on it)."""
        if self._template is None:
            name = self._create(f"{self.prefix}_template_{uuid.uuid4().hex[:8]}")
            settings = settings_for(self.url_for(name))
            engine = sa.create_engine(database.database_url(settings), poolclass=sa.pool.NullPool)
            try:
                database.upgrade(engine, settings)
            finally:
                engine.dispose()
            self._template = name
        return self._template

    def clone(self, template: str) -> str:
        """A fresh copy of database `template` (no one may be connected to it); its URL."""
        return self.url_for(self._create(f"{self.prefix}_{uuid.uuid4().hex[:12]}", template))

    def drop(self, url: str) -> None:
        """Drop the database at `url`, closing its connections."""
        name = make_url(url).database
        with self.admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if name in self._created:
            self._created.remove(name)

    def close(self) -> None:
        """Drop every database created here (the template last) and close the connection."""
        for name in reversed(list(self._created)):
            self.drop(self.url_for(name))
        self._created.clear()
        self._template = None
        self.admin.dispose()
