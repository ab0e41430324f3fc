"""The audit worker's configuration: subscribers validated at start, secrets from the
environment, one sentence naming the key; and its commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from christmas_spiders import config
from christmas_spiders.config import AlertRule, ConfigError, Destination, resolve_subscribers
from christmas_spiders.storage import schema
from webapi.auditor import state
from webapi.auditor.worker import Worker

from .conftest import PROJECT_ROOT

EXAMPLE = [
    {
        "name": "drops",
        "apprise": {"url_env": "DROPS_APPRISE_URL"},
        "vendors": ["ornament_shop_com"],
        "alerts": [
            {"rule": "price_drop", "min_percent": 10},
            {"rule": "back_in_stock"},
            {"rule": "below_target", "sku": "qx1571nb ", "target": "20.00"},
            {"rule": "below_target", "ornament": 42, "target": "15"},
            {"rule": "price_drop", "sku": "2999QXM2797"},
        ],
    },
    {
        "name": "price-feed",
        "webhook": {"url": "https://example.com/hooks/christmas", "secret_env": "FEED_SECRET"},
        "kinds": ["changed"],
        "fields": ["price"],
        "batch_size": 50,
        "start": "beginning",
    },
    {"name": "journal", "log": True},
]


def _load(tmp_path: Path, subscribers: Any, **environ: str) -> config.Config:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"subscribers": subscribers}))
    return config.load({"CONFIG_PATH": str(path), **environ})


def test_subscribers_from_the_file(tmp_path: Path) -> None:
    drops, feed, journal = _load(tmp_path, EXAMPLE).subscribers
    assert drops.destination == Destination("apprise", url_env="DROPS_APPRISE_URL")
    assert drops.vendors == ("ornament_shop_com",)
    assert drops.alerts == (
        AlertRule("price_drop", min_percent=Decimal(10)),
        AlertRule("back_in_stock"),
        AlertRule("below_target", sku="QX1571NB", target=Decimal("20.00")),
        AlertRule("below_target", target=Decimal(15), ornament=42),
        AlertRule("price_drop", sku="2999QXM2797"),
    )
    assert (feed.kinds, feed.fields, feed.batch_size, feed.start) == (
        ("changed",),
        ("price",),
        50,
        "beginning",
    )
    assert feed.destination.secret is None  # read by the worker only, from FEED_SECRET
    assert (journal.destination.kind, journal.kinds, journal.fields) == (
        "log",
        schema.CHANGE_KINDS,
        None,
    )


def test_subscribers_from_the_environment_win_over_the_file(tmp_path: Path) -> None:
    loaded = _load(
        tmp_path, EXAMPLE, CHRISTMAS_SUBSCRIBERS=json.dumps([{"name": "only", "log": True}])
    )
    assert [subscriber.name for subscriber in loaded.subscribers] == ["only"]


def test_worker_reads_the_secrets_it_names(tmp_path: Path) -> None:
    loaded = _load(tmp_path, EXAMPLE)
    drops, feed, _ = resolve_subscribers(
        loaded, {"DROPS_APPRISE_URL": "json://127.0.0.1:9/alerts", "FEED_SECRET": "s3cret"}
    )
    assert (drops.destination.url, feed.destination.secret) == (
        "json://127.0.0.1:9/alerts",
        "s3cret",
    )
    assert "s3cret" not in repr(feed)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"FEED_SECRET": "s"}, r"subscribers\[0\]\.apprise\.url_env names DROPS_APPRISE_URL, "),
        (
            {"DROPS_APPRISE_URL": "json://127.0.0.1:9/x"},
            r"subscribers\[1\]\.webhook\.secret_env names FEED_SECRET, which is not set",
        ),
        (
            {"DROPS_APPRISE_URL": "no scheme", "FEED_SECRET": "s"},
            r"DROPS_APPRISE_URL \(from subscribers\[0\]\.apprise\.url_env\) must be an Apprise",
        ),
    ],
)
def test_missing_or_bad_secret_names_the_key(
    tmp_path: Path, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_subscribers(_load(tmp_path, EXAMPLE), environ)


def _with(index: int, **changes: Any) -> list[dict[str, Any]]:
    entries = json.loads(json.dumps(EXAMPLE))
    entries[index].update(changes)
    return [entry for entry in entries if entry]


@pytest.mark.parametrize(
    ("subscribers", "named"),
    [
        ({"name": "x"}, r"subscribers must be a list"),
        (["x"], r"subscribers\[0\] must be an object"),
        (_with(2, name="Journal Log"), r"subscribers\[2\]\.name must be a short lower-case"),
        (_with(2, name="drops"), r"subscribers\[2\]\.name 'drops' is used twice"),
        (_with(2, webhook={"url": "http://x"}), r"subscribers\[2\] needs exactly one of log"),
        (_with(2, log="yes"), r"subscribers\[2\]\.log must be true"),
        (_with(2, colour="red"), r"subscribers\[2\] has unknown key 'colour'"),
        (_with(2, fields=["price", "colour"]), r"subscribers\[2\]\.fields has unknown 'colour'"),
        (_with(2, vendors=["amazon_com"]), r"subscribers\[2\]\.vendors has unknown 'amazon_com'"),
        (_with(2, kinds=[]), r"subscribers\[2\]\.kinds must be a non-empty list"),
        (_with(2, tables=["crawl_runs"]), r"subscribers\[2\]\.tables has unknown 'crawl_runs'"),
        (_with(2, start="now"), r"subscribers\[2\]\.start must be 'latest' or 'beginning'"),
        (_with(2, batch_size=0), r"subscribers\[2\]\.batch_size must be between 1 and 10000"),
        (
            _with(1, webhook={"url": "ftp://example.com", "secret_env": "S"}),
            r"subscribers\[1\]\.webhook\.url must be a URL starting with http or https",
        ),
        (
            _with(1, webhook={"url": "https://example.com"}),
            r"subscribers\[1\]\.webhook needs exactly one of 'secret_env' \(recommended\)",
        ),
        (
            _with(1, webhook={"url": "https://example.com", "secret_env": "not a name"}),
            r"subscribers\[1\]\.webhook\.secret_env must name an environment variable",
        ),
        (_with(0, apprise="discord"), r"subscribers\[0\]\.apprise\.url must be an Apprise URL"),
        (_with(0, alerts=[{"rule": "cheaper"}]), r"subscribers\[0\]\.alerts\[0\]\.rule must be"),
        (
            _with(0, alerts=[{"rule": "price_drop", "min_percent": 150}]),
            r"subscribers\[0\]\.alerts\[0\]\.min_percent must be more than 0 and less than 100",
        ),
        (
            _with(0, alerts=[{"rule": "crawl_health", "sku": "QX1"}]),
            r"subscribers\[0\]\.alerts\[0\] has unknown key 'sku'",
        ),
        (
            _with(0, alerts=[{"rule": "below_target", "sku": "QX1"}]),
            r"subscribers\[0\]\.alerts\[0\] needs 'target' for the below_target rule",
        ),
        (
            _with(0, alerts=[{"rule": "below_target", "target": "20"}]),
            r"subscribers\[0\]\.alerts\[0\] needs 'sku' or 'ornament' for the below_target",
        ),
        (
            _with(0, alerts=[{"rule": "price_drop", "sku": "QX1", "ornament": 5}]),
            r"subscribers\[0\]\.alerts\[0\] takes 'sku' or 'ornament', not both",
        ),
        (
            _with(0, alerts=[{"rule": "back_in_stock", "ornament": "the horse"}]),
            r"subscribers\[0\]\.alerts\[0\]\.ornament must be",
        ),
        (
            _with(0, alerts=[{"rule": "delisted", "ornament": 0}]),
            r"subscribers\[0\]\.alerts\[0\]\.ornament must be",
        ),
        (
            _with(0, alerts=[{"rule": "below_target", "sku": "QX1", "target": "cheap"}]),
            r"subscribers\[0\]\.alerts\[0\]\.target must be a number",
        ),
    ],
)
def test_bad_subscriber_names_the_key(tmp_path: Path, subscribers: Any, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        _load(tmp_path, subscribers)


def test_bad_subscribers_json_in_the_environment_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"CHRISTMAS_SUBSCRIBERS is not valid JSON"):
        _load(tmp_path, [], CHRISTMAS_SUBSCRIBERS="[{")


def test_auditor_settings_are_validated(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CHRISTMAS_AUDITOR_DELIVERY_ATTEMPTS"):
        _load(tmp_path, [], CHRISTMAS_AUDITOR_DELIVERY_ATTEMPTS="0")
    loaded = _load(tmp_path, [], CHRISTMAS_AUDITOR_POLL_SECONDS="0.5")
    assert (loaded.auditor_poll_seconds, loaded.auditor_batch_size) == (0.5, 100)


def test_change_kinds_match_the_schema() -> None:
    assert config.CHANGE_KINDS == schema.CHANGE_KINDS


def test_worker_refuses_to_start_without_subscribers(tmp_path: Path) -> None:
    settings = _load(tmp_path, [], DATABASE_URL="postgresql://127.0.0.1:9/x")
    with pytest.raises(ConfigError, match="subscribers is empty"):
        Worker(settings)


def test_worker_refuses_an_apprise_url_apprise_cannot_use(tmp_path: Path) -> None:
    settings = _load(
        tmp_path,
        [{"name": "chat", "apprise": "nosuchservice://token"}],
        DATABASE_URL="postgresql://127.0.0.1:9/x",
    )
    with pytest.raises(
        ConfigError, match=r"subscribers\[0\]\.apprise is not a URL Apprise can send"
    ):
        Worker(settings)


def _command(database_url: str, tmp_path: Path, *args: str, **environ: str):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": database_url,
        "CHRISTMAS_DATA_DIR": str(tmp_path / "data"),
        "CONFIG_PATH": str(PROJECT_ROOT / "config" / "default.json"),
        **environ,
    }
    return subprocess.run(
        [sys.executable, "-m", "webapi.auditor", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_worker_command_stops_at_start_on_a_missing_secret(
    database_url: str, tmp_path: Path
) -> None:
    entries = [{"name": "feed", "webhook": {"url": "http://127.0.0.1:9/", "secret_env": "NOPE"}}]
    result = _command(database_url, tmp_path, CHRISTMAS_SUBSCRIBERS=json.dumps(entries))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "configuration error: subscribers[0].webhook.secret_env names NOPE, "
        "which is not set in the environment."
    )


def test_status_and_resume_commands(engine: Engine, database_url: str, tmp_path: Path) -> None:
    entries = [{"name": "feed", "log": True}]
    with engine.begin() as connection:
        connection.execute(
            sa.insert(schema.audit_subscribers).values(
                name="feed", last_change_id=0, failures=5, paused_at=sa.func.now()
            )
        )
    status = _command(database_url, tmp_path, "status", CHRISTMAS_SUBSCRIBERS=json.dumps(entries))
    assert status.returncode == 0, status.stderr
    [row] = [line for line in status.stdout.splitlines() if line.startswith("| feed ")]
    assert row.split(" | ")[3] == "5"
    resumed = _command(database_url, tmp_path, "resume", "feed")
    assert resumed.returncode == 0, resumed.stderr
    with engine.connect() as connection:
        assert state.load(connection, "feed").paused_at is None
    assert _command(database_url, tmp_path, "resume", "nobody").returncode == 1
