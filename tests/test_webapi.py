"""The API's start-up contract: it checks the schema, it never migrates."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from christmas_spiders.config import Config
from christmas_spiders.storage import SchemaMismatch, database
from webapi import create_app


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
