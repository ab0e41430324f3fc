"""Configuration for every process: environment variables, then a JSON file, then defaults.

This module is the only reader of ``os.environ`` in the project. ``load()`` returns one frozen
``Config``; a malformed file, an unknown key or a bad value raises ``ConfigError`` with one
sentence that names the key, and each process turns that into an exit at start.

The JSON file is ``config/<ENV>.json`` (``ENV`` defaults to ``default``) or the path in
``CONFIG_PATH``. Every scalar key can be overridden by an environment variable: the well-known
ones keep their usual names (``DATABASE_URL``, ``REDIS_URL``, ``LOG_LEVEL``, ``LOG_FORMAT``,
``CHRISTMAS_DATA_DIR``), the rest are ``CHRISTMAS_<KEY>`` (``CHRISTMAS_STORE_BATCH_SIZE``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from christmas_spiders.vendors import VENDORS

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = PROJECT_ROOT / "config"

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")
# Columns of `products` whose changes the history trigger can record.
AUDITABLE_FIELDS = (
    "price",
    "regular_price",
    "availability",
    "availability_text",
    "name",
    "sku",
    "link",
    "image_url",
    "release_year",
    "series",
    "series_number",
    "artist",
    "brand",
    "currency",
)


class ConfigError(ValueError):
    """A configuration problem, phrased as one sentence that names the key."""


def _url(schemes: tuple[str, ...]) -> Callable[[str, Any], str | None]:
    def parse(key: str, value: Any) -> str | None:
        if value is None or value == "":
            return None
        if not isinstance(value, str) or urlsplit(value).scheme not in schemes:
            raise ConfigError(f"{key} must be a URL starting with {' or '.join(schemes)}://.")
        return value

    return parse


def _choice(choices: tuple[str, ...], upper: bool = False) -> Callable[[str, Any], str]:
    def parse(key: str, value: Any) -> str:
        text = str(value).upper() if upper else str(value).lower()
        if text not in choices:
            raise ConfigError(f"{key} must be one of {', '.join(choices)}, not {value!r}.")
        return text

    return parse


def _number(kind: type, minimum: float, maximum: float) -> Callable[[str, Any], Any]:
    def parse(key: str, value: Any) -> Any:
        if isinstance(value, bool):
            raise ConfigError(f"{key} must be a number, not {value!r}.")
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be a number, not {value!r}.") from None
        if kind is int and isinstance(value, float) and value != number:
            raise ConfigError(f"{key} must be a whole number, not {value!r}.")
        if not minimum <= number <= maximum:
            raise ConfigError(f"{key} must be between {minimum} and {maximum}, not {value!r}.")
        return number

    return parse


def _path(key: str, value: Any) -> Path:
    if not isinstance(value, str | Path) or not str(value).strip():
        raise ConfigError(f"{key} must be a folder path, not {value!r}.")
    path = Path(value).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def _text(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key} must be a non-empty string, not {value!r}.")
    return value.strip()


def _audited_fields(key: str, value: Any) -> tuple[str, ...]:
    names = value.split(",") if isinstance(value, str) else value
    if not isinstance(names, list | tuple) or not names:
        raise ConfigError(f"{key} must be a non-empty list of product fields.")
    chosen = tuple(dict.fromkeys(str(name).strip() for name in names))
    unknown = [name for name in chosen if name not in AUDITABLE_FIELDS]
    if unknown:
        raise ConfigError(
            f"{key} names unknown field(s) {', '.join(unknown)}; "
            f"choose from {', '.join(AUDITABLE_FIELDS)}."
        )
    return chosen


def _vendors(key: str, value: Any) -> Mapping[str, Mapping[str, str]]:
    if not isinstance(value, dict):
        raise ConfigError(f"{key} must be an object keyed by vendor id.")
    result: dict[str, dict[str, str]] = {}
    for vendor, options in value.items():
        if vendor not in VENDORS:
            raise ConfigError(f"{key} has unknown vendor {vendor!r}; known: {', '.join(VENDORS)}.")
        if not isinstance(options, dict):
            raise ConfigError(f"{key}.{vendor} must be an object.")
        for option, option_value in options.items():
            if option != "base_url":
                raise ConfigError(f"{key}.{vendor} has unknown key {option!r}.")
            base_url = _url(("http", "https"))(f"{key}.{vendor}.base_url", option_value)
            if base_url:
                result[vendor] = {"base_url": base_url.rstrip("/")}
    return result


def _option(default: Any, parse: Callable[[str, Any], Any], env: str | None = None) -> Any:
    metadata = {"parse": parse, "env": env}
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Config:
    """Every setting of the project. Defaults here; see README "Configuration"."""

    database_url: str | None = _option(None, _url(("postgresql", "postgres")), "DATABASE_URL")
    redis_url: str | None = _option(None, _url(("redis", "rediss", "unix")), "REDIS_URL")
    log_level: str = _option("INFO", _choice(LOG_LEVELS, upper=True), "LOG_LEVEL")
    log_format: str = _option("text", _choice(LOG_FORMATS), "LOG_FORMAT")
    data_dir: Path = _option(PROJECT_ROOT / ".data", _path, "CHRISTMAS_DATA_DIR")
    audited_fields: tuple[str, ...] = _option(("price", "availability"), _audited_fields)
    suspicious_price_ratio: float = _option(3.0, _number(float, 1.01, 1000.0))
    store_batch_size: int = _option(500, _number(int, 1, 50_000))
    store_flush_seconds: float = _option(2.0, _number(float, 0.05, 3600.0))
    db_write_attempts: int = _option(5, _number(int, 1, 100))
    db_retry_backoff_seconds: float = _option(0.5, _number(float, 0.0, 60.0))
    contact_url: str = _option("https://github.com/dannykspaw/project_christmas", _text)
    vendors: Mapping[str, Mapping[str, str]] = _option({}, _vendors)
    # A year whose crawl found fewer products than this share of the last complete crawl of
    # it delists nothing (the crawl looks incomplete).
    delist_min_ratio: float = _option(0.5, _number(float, 0.0, 1.0))

    @property
    def dead_letter_dir(self) -> Path:
        return self.data_dir / "dead-letter"

    def base_url(self, vendor: str) -> str:
        """The origin a spider crawls: configuration first, else the live shop."""
        return self.vendors.get(vendor, {}).get("base_url") or VENDORS[vendor].base_url


def _env_name(spec_name: str, env: str | None) -> str:
    return env or f"CHRISTMAS_{spec_name.upper()}"


def _read_file(environ: Mapping[str, str]) -> tuple[dict[str, Any], str]:
    explicit = environ.get("CONFIG_PATH")
    if explicit:
        path = Path(explicit)
    else:
        name = environ.get("ENV") or "default"
        if not name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"ENV must be a plain name such as 'default', not {name!r}.")
        path = CONFIG_DIR / f"{name}.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if explicit or environ.get("ENV"):
            raise ConfigError(f"configuration file {path} does not exist.") from None
        return {}, str(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"configuration file {path} is not valid JSON (line {error.lineno}: {error.msg})."
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"configuration file {path} must hold a JSON object.")
    return data, str(path)


def load(environ: Mapping[str, str] | None = None) -> Config:
    """Build the configuration; raises ConfigError naming the first bad key."""
    environ = os.environ if environ is None else environ
    data, source = _read_file(environ)
    specs = {spec.name: spec for spec in fields(Config)}
    unknown = sorted(set(data) - set(specs) - {"$comment"})
    if unknown:
        raise ConfigError(f"{source}: unknown key {unknown[0]!r}.")

    values: dict[str, Any] = {}
    for name, spec in specs.items():
        parse = spec.metadata["parse"]
        env_name = _env_name(name, spec.metadata["env"])
        if name != "vendors" and environ.get(env_name, "") != "":
            values[name] = parse(env_name, environ[env_name])
        elif name in data:
            values[name] = parse(f"{source}: {name}", data[name])
    return Config(**values)


def env_names() -> dict[str, str]:
    """Config key → the environment variable that overrides it (for docs and tests)."""
    return {
        spec.name: _env_name(spec.name, spec.metadata["env"])
        for spec in fields(Config)
        if spec.name != "vendors"
    }
