"""Shared fixtures: a fresh PostgreSQL database per test, cloned from a migrated template.

Tests talk to the real PostgreSQL at TEST_DATABASE_URL (default: the local server on 5432 with
trust auth, as in CI). Each test gets its own database, created from a template that was
migrated once per session, and dropped afterwards.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine, make_url

from christmas_spiders import config as config_module
from christmas_spiders.config import Config
from christmas_spiders.storage import database, embedded
from tests.scratch_databases import ScratchDatabases

pytest_plugins = ["tests.replica.pytest_plugin"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _url_for(name: str) -> str:
    return make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def scratch_databases() -> Iterator[ScratchDatabases]:
    """The session's databases on the test server: the template and each test's clone."""
    databases = ScratchDatabases(ADMIN_URL, prefix="xmas_test")
    yield databases
    databases.close()


@pytest.fixture(scope="session")
def admin_engine(scratch_databases: ScratchDatabases) -> Engine:
    return scratch_databases.admin


def _load_config(**values: str) -> Config:
    environ = {"ENV": "", "CONFIG_PATH": str(PROJECT_ROOT / "config" / "default.json")}
    environ.update(values)
    return config_module.load(environ)


@pytest.fixture(scope="session")
def template_database(
    scratch_databases: ScratchDatabases, tmp_path_factory: pytest.TempPathFactory
) -> str:
    data_dir = str(tmp_path_factory.mktemp("data"))
    return scratch_databases.template(
        lambda url: _load_config(DATABASE_URL=url, CHRISTMAS_DATA_DIR=data_dir)
    )


@pytest.fixture
def database_url(scratch_databases: ScratchDatabases, template_database: str) -> Iterator[str]:
    """A fresh, migrated database for this test (default audited fields)."""
    url = scratch_databases.clone(template_database)
    yield url
    scratch_databases.drop(url)


@pytest.fixture
def make_config(tmp_path: Path, database_url: str) -> Callable[..., Config]:
    """Config for this test's database; keyword arguments are env-style overrides."""

    def make(**values: str) -> Config:
        environ = {"DATABASE_URL": database_url, "CHRISTMAS_DATA_DIR": str(tmp_path / "data")}
        environ.update(values)
        return _load_config(**environ)

    return make


@pytest.fixture
def settings(make_config: Callable[..., Config]) -> Config:
    return make_config()


@pytest.fixture
def engine(settings: Config) -> Iterator[Engine]:
    engine = database.get_engine(settings)
    yield engine
    engine.dispose()


class PrivatePostgres:
    """A PostgreSQL server of this test's own (the embedded one, in a temporary folder), which
    the test may stop and start; the shared server is never touched."""

    def __init__(self, data_dir: Path) -> None:
        self.url = embedded.start(data_dir)
        self._server = embedded.server_for(data_dir)
        self._pid_file = data_dir.resolve() / "postgres" / "postmaster.pid"

    def stop(self) -> None:
        self._server.stop()
        # The stopped postmaster lingers as a zombie (this container's init does not reap it);
        # wait until its pid file is gone so that start() does not take it for a live server.
        deadline = time.monotonic() + 20
        while self._pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not self._pid_file.exists(), "the private PostgreSQL did not stop"

    def start(self) -> None:
        self._server.start()

    def close(self) -> None:
        self._server.cleanup()


@pytest.fixture
def embedded_data_dir() -> Iterator[Path]:
    """A data folder for an embedded server. Not under pytest's tmp_path: pytest keeps that
    tree private (0700) and resets its mode when another session starts, while the server runs
    as its own system user."""
    folder = Path(tempfile.mkdtemp(prefix="christmas-test-data-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def private_postgres(embedded_data_dir: Path) -> Iterator[PrivatePostgres]:
    server = PrivatePostgres(embedded_data_dir)
    yield server
    server.close()
