"""API keys (CLI, 401s, last_used_at), rate limits (memory and Redis), and read-only for real:
the API's database role can SELECT and nothing else."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterator

import psycopg2
import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError

from christmas_spiders.config import Config
from christmas_spiders.storage import database
from christmas_spiders.storage.schema import api_keys
from webapi import auth, create_app
from webapi.ratelimit import MemoryRateLimiter

from .conftest import ADMIN_URL

REDIS_URL = "redis://127.0.0.1:6379/0"
ROLE = "christmas_api"


@pytest.fixture
def make_app(make_config: Callable[..., Config]) -> Iterator[Callable[..., Flask]]:
    apps: list[Flask] = []

    def make(**env: str) -> Flask:
        app = create_app(make_config(**env))
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["christmas_db"].dispose()


@pytest.fixture
def app(make_app) -> Flask:
    return make_app()


def new_key(engine: Engine, name: str = "alice", rate_limit: int | None = None) -> str:
    with engine.begin() as connection:
        return auth.create_key(connection, name, rate_limit)[1]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# --- keys ----------------------------------------------------------------------------------------


def test_no_key_is_401_json(app: Flask) -> None:
    response = app.test_client().get("/v1/products")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "API key is required" in response.get_json()["message"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer xmas_00000000_" + "A" * 43},
        {"Authorization": "Bearer not-a-key"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"X-API-Key": "' OR 1=1 --"},
        {"X-API-Key": "xmas_zzzzzzzz_" + "A" * 43},
    ],
)
def test_wrong_key_is_401(app: Flask, engine: Engine, headers: dict[str, str]) -> None:
    new_key(engine)
    response = app.test_client().get("/v1/vendors", headers=headers)
    assert response.status_code == 401
    assert response.get_json()["code"] == 401


def test_a_key_with_a_wrong_secret_is_401(app: Flask, engine: Engine) -> None:
    key = new_key(engine)
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    assert app.test_client().get("/v1/vendors", headers=bearer(forged)).status_code == 401


def test_bearer_and_x_api_key_both_work(app: Flask, engine: Engine) -> None:
    key = new_key(engine)
    client = app.test_client()
    assert client.get("/v1/vendors", headers=bearer(key)).status_code == 200
    assert client.get("/v1/vendors", headers={"X-API-Key": key}).status_code == 200
    assert (
        client.get("/v1/vendors", headers={"Authorization": f"bearer  {key} "}).status_code == 200
    )


def test_healthz_docs_and_openapi_need_no_key(app: Flask) -> None:
    client = app.test_client()
    for url in ("/healthz", "/openapi.json", "/docs"):
        assert client.get(url).status_code == 200, url


def test_revoked_key_is_401_at_once_without_the_key_cache(make_app, engine: Engine) -> None:
    app = make_app(CHRISTMAS_API_KEY_CACHE_SECONDS="0")
    key = new_key(engine)
    client = app.test_client()
    assert client.get("/v1/vendors", headers=bearer(key)).status_code == 200
    with engine.begin() as connection:
        auth.revoke_key(connection, "alice")
    response = client.get("/v1/vendors", headers=bearer(key))
    assert response.status_code == 401
    assert response.get_json()["message"] == "the API key is revoked."


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_process_trusts_a_valid_key_for_the_cache_time_only(make_app, engine: Engine) -> None:
    app = make_app(CHRISTMAS_API_KEY_CACHE_SECONDS="5")
    clock = app.extensions[auth.CLOCK] = Clock()
    key = new_key(engine)
    client = app.test_client()
    assert client.get("/v1/vendors", headers=bearer(key)).status_code == 200
    with engine.begin() as connection:
        auth.revoke_key(connection, "alice")
    clock.now += 4.9
    assert client.get("/v1/vendors", headers=bearer(key)).status_code == 200  # still trusted
    clock.now += 0.1
    response = client.get("/v1/vendors", headers=bearer(key))
    assert response.status_code == 401
    assert response.get_json()["message"] == "the API key is revoked."
    other = bearer(key.replace(key[-1], "A" if key[-1] != "A" else "B"))
    assert client.get("/v1/vendors", headers=other).status_code == 401  # only valid keys kept


def test_keys_are_stored_only_as_hashes_and_use_is_recorded(app: Flask, engine: Engine) -> None:
    key = new_key(engine)
    with engine.connect() as connection:
        row = connection.execute(sa.select(api_keys)).one()
    assert key not in {str(value) for value in row}
    assert row.key_hash == auth.hash_key(key)
    assert key.startswith(f"xmas_{row.prefix}_")
    assert row.last_used_at is None
    app.test_client().get("/v1/vendors", headers=bearer(key))
    with engine.connect() as connection:
        assert connection.execute(sa.select(api_keys.c.last_used_at)).scalar() is not None


def test_cli_creates_lists_and_revokes_keys(make_app, engine: Engine) -> None:
    app = make_app(CHRISTMAS_API_KEY_CACHE_SECONDS="0")  # the revocation is seen at once
    runner = app.test_cli_runner()
    created = runner.invoke(args=["keys", "create", "reseller", "--rate-limit", "100"])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    assert re.fullmatch(r"xmas_[0-9a-f]{8}_[A-Za-z0-9_-]{43}", key)
    assert "shown only this once" in created.stderr
    again = runner.invoke(args=["keys", "create", "reseller"])
    assert again.exit_code == 1
    assert "exists already" in again.output

    listing = runner.invoke(args=["keys", "list"])
    assert listing.exit_code == 0
    assert "reseller" in listing.output and "| 100 |" in listing.output
    assert key not in listing.output and key[:13] in listing.output  # the prefix only
    assert app.test_client().get("/v1/runs", headers=bearer(key)).status_code == 200

    revoked = runner.invoke(args=["keys", "revoke", "reseller"])
    assert revoked.exit_code == 0, revoked.output
    assert app.test_client().get("/v1/runs", headers=bearer(key)).status_code == 401
    assert runner.invoke(args=["keys", "revoke", "reseller"]).exit_code == 1
    assert "never" not in runner.invoke(args=["keys", "list"]).output  # it was used
    assert runner.invoke(args=["keys", "list", "--active"]).output.count("reseller") == 0
    # A revoked name may be used again.
    assert runner.invoke(args=["keys", "create", "reseller"]).exit_code == 0


def test_cli_rejects_a_bad_name(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["keys", "create", "bad name!"])
    assert result.exit_code == 1
    assert "key name" in result.output


# --- rate limits ---------------------------------------------------------------------------------


def test_rate_limit_is_429_with_retry_after(make_app, engine: Engine) -> None:
    app = make_app(CHRISTMAS_API_RATE_LIMIT="3", CHRISTMAS_API_RATE_LIMIT_WINDOW_SECONDS="3600")
    key = new_key(engine)
    client = app.test_client()
    answers = [client.get("/v1/vendors", headers=bearer(key)) for _ in range(4)]
    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    assert answers[0].headers["X-RateLimit-Remaining"] == "2"
    limited = answers[3]
    assert 1 <= int(limited.headers["Retry-After"]) <= 3600
    assert "rate limit of 3 requests per 3600 s" in limited.get_json()["message"]
    other = new_key(engine, "bob")  # every key has its own budget
    assert client.get("/v1/vendors", headers=bearer(other)).status_code == 200


def test_a_key_can_have_its_own_limit(make_app, engine: Engine) -> None:
    app = make_app(CHRISTMAS_API_RATE_LIMIT="1000")
    key = new_key(engine, rate_limit=1)
    client = app.test_client()
    assert client.get("/v1/vendors", headers=bearer(key)).status_code == 200
    assert client.get("/v1/vendors", headers=bearer(key)).status_code == 429


def test_memory_window_resets() -> None:
    now = [1000.0]
    limiter = MemoryRateLimiter(clock=lambda: now[0])
    assert [limiter.hit("k", 2, 60).allowed for _ in range(3)] == [True, True, False]
    assert limiter.hit("k", 2, 60).reset_after == 20  # the window ends at 1020
    now[0] = 1021.0
    assert limiter.hit("k", 2, 60).allowed


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    prefix = f"test-api-{uuid.uuid4().hex[:8]}"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    for name in client.scan_iter(f"{prefix}:*"):
        client.delete(name)
    client.close()


def test_redis_rate_limit_is_shared_by_every_process(make_app, engine, redis_prefix) -> None:
    env = {
        "REDIS_URL": REDIS_URL,
        "CHRISTMAS_REDIS_KEY_PREFIX": redis_prefix,
        "CHRISTMAS_API_RATE_LIMIT": "4",
        "CHRISTMAS_API_RATE_LIMIT_WINDOW_SECONDS": "3600",
    }
    first, second = make_app(**env).test_client(), make_app(**env).test_client()
    key = new_key(engine)
    codes = [
        client.get("/v1/vendors", headers=bearer(key)).status_code for client in (first, second) * 3
    ]
    assert codes == [200, 200, 200, 200, 429, 429]
    stored = redis.Redis.from_url(REDIS_URL).keys(f"{redis_prefix}:api:rate:*")
    assert len(stored) == 1


def test_unreachable_redis_lets_requests_through(make_app, engine, caplog) -> None:
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0", CHRISTMAS_API_RATE_LIMIT="1")
    key = new_key(engine)
    client = app.test_client()
    with caplog.at_level(logging.WARNING, logger="webapi.ratelimit"):
        assert [client.get("/v1/vendors", headers=bearer(key)).status_code for _ in range(3)] == [
            200
        ] * 3
    assert "rate limit not enforced" in caplog.text


# --- read-only for real --------------------------------------------------------------------------


def role_url(database_url: str, role: str = ROLE) -> str:
    return (
        make_url(database_url)
        .set(username=role, drivername="postgresql+psycopg2")
        .render_as_string(hide_password=False)
    )


WRITES = [
    "INSERT INTO products (vendor, vendor_key, name, availability, release_year, link) "
    "VALUES ('ornament_shop_com', 'x', 'x', 'available', 2019, 'x')",
    "UPDATE products SET price = 0",
    "DELETE FROM products",
    "DELETE FROM product_changes",
    "UPDATE vendors SET display_name = 'x'",
    "INSERT INTO crawl_runs (spider) VALUES ('ornament_shop_com')",
    "UPDATE api_keys SET revoked_at = NULL",
    "UPDATE api_keys SET key_hash = 'x'",
    "DELETE FROM api_keys",
    "INSERT INTO api_keys (name, prefix, key_hash) VALUES ('x', 'x', 'x')",
    "TRUNCATE products",
    "UPDATE ornaments SET name = 'x'",
    "SELECT * FROM audit_subscribers",
    "UPDATE alembic_version SET version_num = 'x'",
]


@pytest.mark.parametrize("statement", WRITES)
def test_the_api_role_cannot_write(database_url: str, statement: str) -> None:
    connection = psycopg2.connect(role_url(database_url).replace("+psycopg2", ""))
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_user")
            assert cursor.fetchone() == (ROLE,)
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cursor.execute(statement)
    finally:
        connection.close()


def test_the_api_role_reads_and_may_touch_last_used_at_only(database_url, engine) -> None:
    new_key(engine)
    connection = psycopg2.connect(role_url(database_url).replace("+psycopg2", ""))
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM products")
            cursor.execute("SELECT version_num FROM alembic_version")
            assert cursor.fetchone() == (database.head_revision(),)
            cursor.execute("UPDATE api_keys SET last_used_at = now()")
            assert cursor.rowcount == 1
        connection.commit()
    finally:
        connection.close()


def test_upgrade_grants_the_api_role_only_what_is_missing(database_url, engine) -> None:
    """A process start's upgrade leaves right grants alone (no catalog row rewritten: a market
    refresh analysing the same rows deadlocked with it) and puts wrong ones right."""

    def products_row_version() -> str:
        with engine.connect() as connection:
            query = "SELECT xmin::text FROM pg_class WHERE relname = 'products'"
            return connection.execute(sa.text(query)).scalar_one()

    settings = Config(database_url=database_url)
    before = products_row_version()
    database.upgrade(engine, settings)
    assert products_row_version() == before  # nothing granted again
    with engine.begin() as connection:
        connection.execute(sa.text(f"GRANT INSERT ON products TO {ROLE}"))
    database.upgrade(engine, settings)
    with engine.connect() as connection:
        query = "SELECT has_table_privilege(:role, 'products', 'INSERT')"
        assert connection.execute(sa.text(query), {"role": ROLE}).scalar_one() is False


def test_the_api_connects_as_its_role_with_read_only_transactions(app: Flask) -> None:
    dbs = app.extensions["christmas_db"]
    assert dbs.primary_session.mode == "role"
    with dbs.reader.connect() as connection:
        user, read_only = connection.execute(
            sa.text("SELECT current_user, current_setting('transaction_read_only')")
        ).one()
        assert (user, read_only) == (ROLE, "on")
        with pytest.raises(DBAPIError) as raised:
            connection.execute(sa.text("DELETE FROM products"))
        assert raised.value.orig.pgcode in ("25006", "42501")  # read-only / no privilege


def test_without_its_role_the_api_uses_read_only_transactions(make_app, engine, caplog) -> None:
    # A single-role database (Heroku's default credential): the role is missing.
    with caplog.at_level(logging.WARNING, logger="webapi.db"):
        app = make_app(CHRISTMAS_API_DATABASE_ROLE="christmas_no_such_role")
        key = new_key(engine)
        assert app.test_client().get("/v1/vendors", headers=bearer(key)).status_code == 200
    assert "read-only transactions" in caplog.text
    dbs = app.extensions["christmas_db"]
    with dbs.reader.connect() as connection:
        assert connection.execute(sa.text("SELECT current_user")).scalar() == "postgres"
        with pytest.raises(DBAPIError) as raised:
            connection.execute(sa.text("DELETE FROM products"))
        assert raised.value.orig.pgcode == "25006"  # read_only_sql_transaction
    with engine.connect() as connection:  # the key's use was still recorded
        assert connection.execute(sa.select(api_keys.c.last_used_at)).scalar() is not None


def test_upgrade_without_createrole_warns_and_goes_on(
    admin_engine, template_database, tmp_path, caplog
) -> None:
    owner = f"xmas_owner_{uuid.uuid4().hex[:8]}"
    name = f"xmas_test_{uuid.uuid4().hex[:12]}"
    with admin_engine.connect() as connection:
        connection.execute(sa.text(f'CREATE ROLE "{owner}" LOGIN NOCREATEROLE'))
        connection.execute(sa.text(f'CREATE DATABASE "{name}" OWNER "{owner}"'))
    url = make_url(ADMIN_URL).set(database=name, username=owner).render_as_string(False)
    settings = Config(
        database_url=url,
        data_dir=tmp_path,
        api_database_role=f"christmas_api_{uuid.uuid4().hex[:6]}",
    )
    engine = database.get_engine(settings)
    try:
        with caplog.at_level(logging.WARNING, logger="christmas_spiders.storage.database"):
            database.upgrade(engine, settings)
        assert "cannot create the API's database role" in caplog.text
        database.check_schema(engine)
    finally:
        engine.dispose()
        with admin_engine.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(sa.text(f'DROP ROLE IF EXISTS "{owner}"'))


def test_reads_go_to_the_replica_and_keys_to_the_primary(
    make_app, engine, admin_engine, template_database
) -> None:
    replica = f"xmas_test_{uuid.uuid4().hex[:12]}"
    with admin_engine.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{replica}" TEMPLATE "{template_database}"'))
    replica_url = make_url(ADMIN_URL).set(database=replica).render_as_string(False)
    try:
        replica_engine = sa.create_engine(
            make_url(replica_url).set(drivername="postgresql+psycopg2"), poolclass=sa.pool.NullPool
        )
        with replica_engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO crawl_runs (spider, status) VALUES ('ornament_shop_com', 'failed')"
                )
            )
        replica_engine.dispose()
        app = make_app(DATABASE_REPLICA_URL=replica_url)
        key = new_key(engine)  # on the primary only
        runs = app.test_client().get("/v1/runs", headers=bearer(key)).get_json()
        assert [run["status"] for run in runs["items"]] == ["failed"]  # the replica's data
        assert app.test_client().get("/healthz").status_code == 200
        app.extensions["christmas_db"].dispose()
    finally:
        with admin_engine.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{replica}" WITH (FORCE)'))
