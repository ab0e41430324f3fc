"""The middleware's settings (``SELENIUM_*``, read once at start) and a request's render spec
(``meta["render"]``), both checked with one sentence per problem."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scrapy.settings import BaseSettings

from christmas_spiders.rendering.errors import BadRenderRequest, RenderSettingsError

DEFAULT_BROWSER_PATH = "/usr/bin/chromium"
DEFAULT_DRIVER_PATH = "/usr/bin/chromedriver"
DEFAULT_MAX_BROWSERS = 1
DEFAULT_PAGE_TIMEOUT = 30.0
DEFAULT_WAIT_TIMEOUT = 15.0
DEFAULT_SETTLE_TIME = 0.5
DEFAULT_MAX_RESTARTS = 2

BROWSER_FOLDER_PREFIX = "xmas-"  # + 8 random characters; kept short, see _check_temp_dir
# Chromium's singleton socket lives in $TMPDIR/org.chromium.Chromium.XXXXXX/SingletonSocket, and a
# Unix socket path holds at most 107 bytes; our per-browser TMPDIR is <temp dir>/xmas-XXXXXXXX.
_SOCKET_PATH_MAX = 107
_SOCKET_PATH_TAIL = len(
    f"/{BROWSER_FOLDER_PREFIX}12345678/org.chromium.Chromium.123456/SingletonSocket"
)
_SPEC_KEYS = ("wait_for", "count_from", "timeout")


@dataclass(frozen=True)
class RenderConfig:
    """The middleware's settings, checked once at start."""

    browser_path: str = DEFAULT_BROWSER_PATH
    driver_path: str = DEFAULT_DRIVER_PATH
    max_browsers: int = DEFAULT_MAX_BROWSERS
    page_timeout: float = DEFAULT_PAGE_TIMEOUT
    wait_timeout: float = DEFAULT_WAIT_TIMEOUT
    settle_time: float = DEFAULT_SETTLE_TIME
    max_restarts: int = DEFAULT_MAX_RESTARTS
    user_agent: str | None = None
    temp_dir: str = field(default_factory=tempfile.gettempdir)  # browsers' folders go here

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> RenderConfig:
        config = cls(
            browser_path=_executable(settings, "SELENIUM_BROWSER_PATH", DEFAULT_BROWSER_PATH),
            driver_path=_executable(settings, "SELENIUM_DRIVER_PATH", DEFAULT_DRIVER_PATH),
            max_browsers=_count(settings, "SELENIUM_MAX_BROWSERS", DEFAULT_MAX_BROWSERS, 1),
            page_timeout=_seconds(settings, "SELENIUM_PAGE_TIMEOUT", DEFAULT_PAGE_TIMEOUT),
            wait_timeout=_seconds(settings, "SELENIUM_WAIT_TIMEOUT", DEFAULT_WAIT_TIMEOUT),
            settle_time=_seconds(settings, "SELENIUM_SETTLE_TIME", DEFAULT_SETTLE_TIME),
            max_restarts=_count(settings, "SELENIUM_MAX_RESTARTS", DEFAULT_MAX_RESTARTS, 0),
            user_agent=settings.get("USER_AGENT") or None,
            temp_dir=_check_temp_dir(tempfile.gettempdir()),
        )
        if config.settle_time >= config.wait_timeout:
            raise RenderSettingsError(
                f"SELENIUM_SETTLE_TIME ({config.settle_time:g} s) must be shorter than "
                f"SELENIUM_WAIT_TIMEOUT ({config.wait_timeout:g} s), or no render could settle."
            )
        concurrent = settings.getint("CONCURRENT_REQUESTS")
        if config.max_browsers > concurrent:
            raise RenderSettingsError(
                f"SELENIUM_MAX_BROWSERS ({config.max_browsers}) must not exceed "
                f"CONCURRENT_REQUESTS ({concurrent}), or some browsers could never be used."
            )
        return config


def _executable(settings: BaseSettings, name: str, default: str) -> str:
    value = settings.get(name, default)
    if not isinstance(value, str | Path) or not str(value).strip():
        raise RenderSettingsError(f"{name} must be the path of an executable, not {value!r}.")
    path = str(value).strip()
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise RenderSettingsError(f"{name} must be the path of an executable, not {path!r}.")
    return path


def _check_temp_dir(path: str) -> str:
    room = _SOCKET_PATH_MAX - _SOCKET_PATH_TAIL
    if len(path) > room:
        raise RenderSettingsError(
            f"the temporary folder {path} ({len(path)} characters) is too long a path for "
            f"Chromium's sockets; set TMPDIR to a folder of at most {room} characters."
        )
    return path


def _count(settings: BaseSettings, name: str, default: int, minimum: int) -> int:
    value = settings.get(name, default)
    try:
        if isinstance(value, bool | float):
            raise ValueError(value)
        number = int(value)
    except (TypeError, ValueError):
        raise RenderSettingsError(f"{name} must be a whole number, not {value!r}.") from None
    if number < minimum:
        raise RenderSettingsError(f"{name} must be at least {minimum}, not {value!r}.")
    return number


def _seconds(settings: BaseSettings, name: str, default: float) -> float:
    value = settings.get(name, default)
    try:
        if isinstance(value, bool):
            raise ValueError(value)
        number = float(value)
    except (TypeError, ValueError):
        raise RenderSettingsError(f"{name} must be a number of seconds, not {value!r}.") from None
    if not 0 < number < float("inf"):
        raise RenderSettingsError(f"{name} must be a number of seconds above 0, not {value!r}.")
    return number


@dataclass(frozen=True)
class RenderSpec:
    """What one request asks of the browser: ``request.meta["render"]``, checked."""

    wait_for: str | None = None
    count_from: str | None = None
    timeout: float | None = None

    @classmethod
    def from_meta(cls, value: Any) -> RenderSpec:
        if not isinstance(value, dict):
            raise BadRenderRequest(
                f"meta['render'] must be a dict such as {{'wait_for': '.product-item'}}, "
                f"not {value!r}."
            )
        unknown = sorted(set(value) - set(_SPEC_KEYS))
        if unknown:
            raise BadRenderRequest(
                f"meta['render'] has unknown key(s) {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(_SPEC_KEYS)}."
            )
        for key in ("wait_for", "count_from"):
            selector = value.get(key)
            if selector is not None and (not isinstance(selector, str) or not selector.strip()):
                raise BadRenderRequest(f"meta['render'][{key!r}] must be a CSS selector.")
        if value.get("count_from") and not value.get("wait_for"):
            raise BadRenderRequest("meta['render'] has count_from without wait_for.")
        timeout = value.get("timeout")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
        ):
            raise BadRenderRequest(
                f"meta['render']['timeout'] must be seconds above 0, not {timeout!r}."
            )
        return cls(value.get("wait_for"), value.get("count_from"), timeout)
