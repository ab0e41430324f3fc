"""Property-based fuzzing of the whole API from its own OpenAPI document (schemathesis), against
a live server on loopback: no 5xx, and every answer matches the document."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode, checks
from schemathesis.specs.openapi import checks as openapi_checks
from werkzeug.serving import make_server

from webapi import auth, create_app

from .conftest import _url_for
from .test_api import owner_engine, seed_catalog

MAX_EXAMPLES = 25


@pytest.fixture(scope="module")
def live_api(admin_engine, template_database, tmp_path_factory) -> Iterator[tuple[str, str]]:
    """A seeded catalog served by a real HTTP server on 127.0.0.1; its base URL and a key."""
    name = f"xmas_fuzz_{uuid.uuid4().hex[:12]}"
    with admin_engine.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
    catalog = seed_catalog(_url_for(name), tmp_path_factory.mktemp("fuzz"))
    engine = owner_engine(catalog.url)
    with engine.begin() as connection:
        _, key = auth.create_key(connection, "fuzzer")
    engine.dispose()
    app = create_app(
        catalog.settings(tmp_path_factory.mktemp("app"), CHRISTMAS_API_RATE_LIMIT="10000000")
    )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", key
    server.shutdown()
    thread.join(10)
    server.server_close()
    app.extensions["christmas_db"].dispose()
    with admin_engine.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def api_schema(live_api):
    base_url, _ = live_api
    return schemathesis.openapi.from_url(f"{base_url}/openapi.json")


# Every operation of the document (checked below, so a new endpoint cannot be left out).
OPERATIONS = [
    "/healthz",
    "/v1/vendors",
    "/v1/vendors/{vendor_id}",
    "/v1/products",
    "/v1/products.csv",
    "/v1/products/{product_id}",
    "/v1/products/{product_id}/history",
    "/v1/skus/{sku}",
    "/v1/ornaments",
    "/v1/ornaments/{ornament_id}",
    "/v1/series",
    "/v1/series/{name}",
    "/v1/changes",
    "/v1/runs",
    "/v1/market/gaps",
    "/v1/market/gaps.csv",
    "/v1/market/gaps/{ornament_id}/history",
    "/v1/market/rare",
    "/v1/market/years",
    "/v1/market/years.csv",
    "/v1/market/years/{year}",
    "/v1/market/years/{year}.csv",
]
# Nothing to make invalid: no negative cases.
WITHOUT_PARAMETERS = {"/healthz", "/v1/vendors", "/v1/series"}
CHECKS = [
    checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.response_headers_conformance,
]


def test_every_operation_is_fuzzed(api_schema) -> None:
    found = sorted(result.ok().path for result in api_schema.get_all_operations())
    assert found == sorted(OPERATIONS)


# Schemathesis's own pytest plugin (`schema.parametrize`) needs the schema at import time, or
# uses a pytest internal that pytest 9 removed (`from_fixture`); Hypothesis runs its strategies
# directly instead.
@pytest.mark.parametrize(
    ("path", "mode"),
    [
        (path, mode)
        for path in OPERATIONS
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        if mode is GenerationMode.POSITIVE or path not in WITHOUT_PARAMETERS
    ],
)
def test_api_conforms_to_its_openapi_document(api_schema, live_api, path, mode) -> None:
    _, key = live_api
    operation = api_schema[path]["GET"]
    headers = {"Authorization": f"Bearer {key}"}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def call(case) -> None:
        extra = [openapi_checks.negative_data_rejection] if mode is GenerationMode.NEGATIVE else []
        case.call_and_validate(headers=headers, checks=CHECKS + extra, timeout=30)

    call()
