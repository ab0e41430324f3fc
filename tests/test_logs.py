"""Logging: one JSON object per line on request, never a password from a URL."""

from __future__ import annotations

import json
import logging

import pytest

from christmas_spiders import logs

from .crawl import scrapy_crawl


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("postgresql://app:s3cr3t@db:5432/x", "postgresql://app:***@db:5432/x"),
        ("REDIS_URL='redis://:hunter2@cache:6379/0'", "REDIS_URL='redis://:***@cache:6379/0'"),
        ("http://127.0.0.1:8001/a_p_1.html", "http://127.0.0.1:8001/a_p_1.html"),
        ("postgresql://postgres@127.0.0.1/x", "postgresql://postgres@127.0.0.1/x"),
    ],
)
def test_redact_passwords_in_urls(line: str, expected: str) -> None:
    assert logs.redact(line) == expected


def test_json_format_is_one_object_per_line() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "a\nb %s", ("db://u:pw@h",), None)
    line = logs.JsonFormatter().format(record)
    assert "\n" not in line
    assert json.loads(line)["message"] == "a\nb db://u:***@h"


def test_crawl_logs_json_lines_without_secrets(database_url: str, tmp_path) -> None:
    # The shared test server trusts local connections, so the password is accepted and unused.
    with_password = database_url.replace("postgres@", "postgres:s3cr3t@", 1)
    result = scrapy_crawl(
        "ornament_shop_com",
        env={
            "LOG_FORMAT": "json",
            "DATABASE_URL": with_password,
            "CHRISTMAS_DATA_DIR": str(tmp_path),
        },
        arguments={"count": "3"},
        settings={"SPIDER_MODULES": "tests.spiders"},
    )
    assert result.returncode == 0, result.stdout[-2000:]
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(events) > 10
    assert any("3 created" in event["message"] for event in events)
    assert "postgres:***@" in result.stdout  # the settings dump names the URL, redacted
    assert "s3cr3t" not in result.stdout + result.stderr
