"""Configuration: env first, then the JSON file, then defaults; bad input fails fast."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from christmas_spiders import config
from christmas_spiders.config import ConfigError


def _write(tmp_path: Path, data: object) -> str:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return str(path)


def test_defaults_without_file_or_env(tmp_path: Path) -> None:
    loaded = config.load({"CONFIG_PATH": _write(tmp_path, {})})
    assert loaded.database_url is None
    assert loaded.audited_fields == ("price", "availability")
    assert loaded.log_format == "text"
    assert loaded.base_url("ornament_shop_com") == "https://www.ornament-shop.com"


def test_env_wins_over_file_and_file_over_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path, {"log_level": "warning", "store_batch_size": 50})
    loaded = config.load({"CONFIG_PATH": path, "LOG_LEVEL": "debug"})
    assert loaded.log_level == "DEBUG"
    assert loaded.store_batch_size == 50


def test_env_named_after_key_for_project_settings(tmp_path: Path) -> None:
    loaded = config.load(
        {
            "CONFIG_PATH": _write(tmp_path, {}),
            "CHRISTMAS_AUDITED_FIELDS": "price,availability,name",
            "CHRISTMAS_STORE_BATCH_SIZE": "20",
        }
    )
    assert loaded.audited_fields == ("price", "availability", "name")
    assert loaded.store_batch_size == 20


def test_env_selects_file_in_config_folder() -> None:
    loaded = config.load({"ENV": "default"})
    assert loaded.log_level == "INFO"


def test_vendor_base_url_from_file(tmp_path: Path) -> None:
    path = _write(tmp_path, {"vendors": {"ornament_shop_com": {"base_url": "http://127.0.0.1:9/"}}})
    loaded = config.load({"CONFIG_PATH": path})
    assert loaded.base_url("ornament_shop_com") == "http://127.0.0.1:9"
    assert loaded.base_url("hookedonhallmark_com") == "https://www.hookedonhallmark.com"


@pytest.mark.parametrize(
    ("data", "environ", "named"),
    [
        ({"databse_url": "postgresql://x"}, {}, "'databse_url'"),
        ({"log_level": "LOUD"}, {}, "log_level"),
        ({"store_batch_size": 0}, {}, "store_batch_size"),
        ({"store_batch_size": "many"}, {}, "store_batch_size"),
        ({"audited_fields": ["price", "colour"]}, {}, "audited_fields"),
        ({"vendors": {"amazon_com": {}}}, {}, "vendors"),
        ({"vendors": {"ornament_shop_com": {"base_url": "ftp://x"}}}, {}, "base_url"),
        ({}, {"DATABASE_URL": "mysql://localhost/x"}, "DATABASE_URL"),
        ({}, {"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({}, {"CHRISTMAS_DB_WRITE_ATTEMPTS": "-1"}, "CHRISTMAS_DB_WRITE_ATTEMPTS"),
    ],
)
def test_bad_value_names_the_key(tmp_path: Path, data: dict, environ: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        config.load({"CONFIG_PATH": _write(tmp_path, data), **environ})


def test_malformed_file_is_reported_with_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not valid JSON \(line 2"):
        config.load({"CONFIG_PATH": _write(tmp_path, '{\n  "log_level": ,\n}')})


def test_missing_named_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        config.load({"ENV": "no-such-environment"})


def test_process_stops_at_start_with_one_sentence(tmp_path: Path) -> None:
    env = {"CONFIG_PATH": _write(tmp_path, {"log_level": "LOUD"}), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "christmas_spiders.storage", "upgrade"],
        env=env,
        cwd=config.PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert result.stderr.strip().startswith("configuration error:")
    assert "log_level must be one of" in result.stderr
    assert "Traceback" not in result.stderr


def test_unverified_tls_redis_gets_ssl_cert_reqs_none(tmp_path: Path) -> None:
    environ = {
        "CONFIG_PATH": _write(tmp_path, {}),
        "REDIS_URL": "rediss://:pw@redis.example:6380/0",
        "CHRISTMAS_REDIS_TLS_VERIFY": "false",
    }
    assert config.load(environ).redis_url == "rediss://:pw@redis.example:6380/0?ssl_cert_reqs=none"
    environ["CHRISTMAS_REDIS_TLS_VERIFY"] = "true"
    assert config.load(environ).redis_url == "rediss://:pw@redis.example:6380/0"
    with pytest.raises(ConfigError, match="CHRISTMAS_REDIS_TLS_VERIFY must be true or false"):
        config.load({**environ, "CHRISTMAS_REDIS_TLS_VERIFY": "maybe"})
