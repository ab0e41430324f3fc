"""The ProjectConfig add-on: the configuration reaches Scrapy's settings where Scrapy builds them,
so importing the settings module does nothing and ``-s`` overrides what the configuration sets."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from scrapy.addons import AddonManager
from scrapy.settings import Settings

from christmas_spiders.config import PROJECT_ROOT

SHARED_SCHEDULER = "christmas_spiders.distributed.request_scheduler.SharedRequestScheduler"


def run(tmp_path: Path, *argv: str, config: str = "{ not json") -> subprocess.CompletedProcess:
    """`python *argv` in the project folder, with this configuration file and nothing else."""
    path = tmp_path / "broken.json"
    path.write_text(config)
    env = {"PATH": "/usr/bin:/bin", "CONFIG_PATH": str(path)}
    return subprocess.run(
        [sys.executable, *argv],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_importing_the_settings_with_a_broken_configuration_does_not_exit(
    tmp_path: Path,
) -> None:
    result = run(tmp_path, "-c", "import christmas_spiders.settings as s; print(s.BOT_NAME)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "christmas_spiders"
    assert result.stderr == ""


def test_scrapy_crawl_with_a_broken_configuration_says_one_sentence_and_exits_2(
    tmp_path: Path,
) -> None:
    result = run(tmp_path, "-m", "scrapy", "crawl", "ornament_shop_com")
    assert result.returncode == 2
    path = tmp_path / "broken.json"
    assert result.stderr.strip() == (
        f"configuration error: configuration file {path} is not valid JSON "
        "(line 1: Expecting property name enclosed in double quotes)."
    )
    assert result.stdout == ""


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The configuration file (CONFIG_PATH) the test writes; the test session's logging is left
    as it was (the add-on sets up the project's)."""
    path = tmp_path / "config.json"
    monkeypatch.setenv("CONFIG_PATH", str(path))
    for name in ("REDIS_URL", "LOG_LEVEL", "CHRISTMAS_CONTACT_URL"):
        monkeypatch.delenv(name, raising=False)
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield path
    root.handlers[:] = handlers
    root.setLevel(level)


def project_settings(config_file: Path, config: dict[str, object]) -> Settings:
    """The project's settings module, as `scrapy` reads it, with this configuration to load."""
    config_file.write_text(json.dumps(config))
    settings = Settings()
    settings.setmodule("christmas_spiders.settings", priority="project")
    return settings


def test_the_addon_loads_the_configuration_and_s_overrides_what_it_sets(
    config_file: Path,
) -> None:
    contact = "https://example.com/about-our-crawler"
    settings = project_settings(config_file, {"contact_url": contact, "log_level": "WARNING"})
    settings.set("LOG_LEVEL", "DEBUG", priority="cmdline")  # -s LOG_LEVEL=DEBUG
    AddonManager.load_pre_crawler_settings(settings)
    config = settings["CHRISTMAS_CONFIG"]
    assert config.contact_url == contact and config.log_level == "WARNING"
    assert settings["USER_AGENT"] == f"project_christmas/0.1 (+{contact})"
    assert settings["LOG_LEVEL"] == "DEBUG"
    assert logging.getLogger().level == logging.DEBUG


def test_redis_url_brings_the_shared_scheduler_and_budget(config_file: Path) -> None:
    settings = project_settings(config_file, {"redis_url": "redis://127.0.0.1:6379/0"})
    AddonManager.load_pre_crawler_settings(settings)
    assert settings["SCHEDULER"] == SHARED_SCHEDULER
    middlewares = {
        getattr(key, "__name__", key): order
        for key, order in settings.getdict("DOWNLOADER_MIDDLEWARES").items()
    }
    assert middlewares["SharedBudgetMiddleware"] == 900
    assert middlewares["christmas_spiders.rendering.SeleniumMiddleware"] == 950


def test_without_redis_url_scrapy_keeps_its_own_scheduler(config_file: Path) -> None:
    settings = project_settings(config_file, {})
    AddonManager.load_pre_crawler_settings(settings)
    assert settings["CHRISTMAS_CONFIG"].redis_url is None
    assert settings["SCHEDULER"] == "scrapy.core.scheduler.Scheduler"
    names = [getattr(key, "__name__", key) for key in settings.getdict("DOWNLOADER_MIDDLEWARES")]
    assert "SharedBudgetMiddleware" not in names
    assert "christmas_spiders.rendering.SeleniumMiddleware" in names
