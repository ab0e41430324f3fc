"""The API's start-up contract: it checks the schema, it never migrates."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from christmas_spiders.config import Config
from christmas_spiders.storage import SchemaMismatch, database
from webapi import auth, create_app, db


def test_healthz_reports_the_schema(settings: Config) -> None:
    client = create_app(settings).test_client()
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "schema": database.head_revision()}


def test_refuses_to_start_on_a_schema_mismatch(settings: Config, engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '0000'"))
    with pytest.raises(SchemaMismatch, match="0000"):
        create_app(settings)


def test_healthz_is_503_when_the_database_is_gone(private_postgres, tmp_path) -> None:
    settings = Config(database_url=private_postgres.url, data_dir=tmp_path)
    database.upgrade(database.get_engine(settings), settings)
    client = create_app(settings).test_client()
    private_postgres.stop()
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["status"] == "unavailable"


def test_an_exhausted_pool_is_503_with_a_message_not_500(
    make_config: Callable[..., Config], engine: Engine
) -> None:
    # The pool waits for a free connection as long as a statement may run: half a second.
    app = create_app(make_config(CHRISTMAS_API_STATEMENT_TIMEOUT_SECONDS="0.5"))
    databases = app.extensions[db.EXTENSION]
    with engine.begin() as connection:
        _, key = auth.create_key(connection, "alice")
    held = []
    try:
        for _ in range(100):  # every connection the pool gives (its size and overflow)
            try:
                held.append(databases.reader.connect())
            except sa.exc.TimeoutError:
                break
        else:
            pytest.fail("the pool gave 100 connections: it has no limit")
        client = app.test_client()
        health = client.get("/healthz")
        assert health.status_code == 503
        assert health.get_json() == {"status": "unavailable", "error": db.POOL_EXHAUSTED}
        api = client.get("/v1/vendors", headers={"Authorization": f"Bearer {key}"})
        assert (api.status_code, api.headers["Retry-After"]) == (503, "5")
        assert api.get_json() == {
            "code": 503,
            "status": "Service Unavailable",
            "message": "the database is unavailable; try again shortly.",
        }
        page = client.get("/")
        assert (page.status_code, page.mimetype) == (503, "text/html")
        assert "The database is unavailable; try again shortly." in page.get_data(as_text=True)
        for connection in held:
            connection.close()
        held.clear()
        assert client.get("/healthz").status_code == 200  # free again: healthy again
    finally:
        for connection in held:
            connection.close()
        databases.dispose()
