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
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from christmas_spiders.distributed import defaults as _redis
from christmas_spiders.scheduling import settings as _scheduling
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


def _boolean(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"{key} must be true or false, not {value!r}.")


def _option(default: Any, parse: Callable[[str, Any], Any], env: str | None = None) -> Any:
    metadata = {"parse": parse, "env": env}
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=metadata)
    return field(default=default, metadata=metadata)


# The audit worker's subscribers (`webapi.auditor`): who receives which history changes, where.
# Every process validates their shape; only the worker reads the secrets they name
# (`resolve_subscribers`), so the crawler and the API start without them.

# The same values as storage.schema.CHANGE_KINDS (importing storage here would be circular).
CHANGE_KINDS = ("listed", "changed", "delisted", "relisted")
# Tables whose changes reach product_changes (the history trigger is on `products`).
SUBSCRIBABLE_TABLES = ("products",)
ALERT_RULES = ("price_drop", "below_target", "back_in_stock", "new_listing", "delisted")
SUBSCRIBER_DESTINATIONS = ("log", "webhook", "apprise")
_SUBSCRIBER_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class AlertRule:
    """One alert rule of a subscriber (see README "Audit worker")."""

    rule: str
    min_percent: Decimal | None = None  # price_drop: only drops of at least this many percent
    sku: str | None = None  # below_target: the SKU watched
    target: Decimal | None = None  # below_target: alert when the price falls to this or below


@dataclass(frozen=True)
class Destination:
    """Where a subscriber's deliveries go: the log, a signed webhook or an Apprise URL.

    A URL or secret may be given in the file (`url`, `secret`) or named by an environment
    variable (`url_env`, `secret_env`); `resolve_subscribers` fills in the latter.
    """

    kind: str
    url: str | None = field(default=None, repr=False)
    url_env: str | None = None
    secret: str | None = field(default=None, repr=False)
    secret_env: str | None = None


@dataclass(frozen=True)
class Subscriber:
    name: str
    destination: Destination
    tables: tuple[str, ...] = SUBSCRIBABLE_TABLES
    kinds: tuple[str, ...] = CHANGE_KINDS
    fields: tuple[str, ...] | None = None  # None: every audited field (`changed` rows only)
    vendors: tuple[str, ...] | None = None  # None: every vendor
    alerts: tuple[AlertRule, ...] = ()  # empty: every matching change; else alerts only
    start: str = "latest"  # where a new subscriber's cursor starts: "latest" or "beginning"
    batch_size: int | None = None  # changes per delivery; None: auditor_batch_size


def _object(key: str, value: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{key} must be an object.")
    unknown = [name for name in value if name not in (*allowed, "$comment")]
    if unknown:
        raise ConfigError(f"{key} has unknown key {unknown[0]!r}; known: {', '.join(allowed)}.")
    return value


def _names(key: str, value: Any, choices: tuple[str, ...]) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key} must be a non-empty list of names from {', '.join(choices)}.")
    unknown = [name for name in value if name not in choices]
    if unknown:
        raise ConfigError(f"{key} has unknown {unknown[0]!r}; choose from {', '.join(choices)}.")
    return tuple(dict.fromkeys(value))


def _env_var(key: str, value: Any) -> str:
    if not isinstance(value, str) or not _ENV_NAME.match(value):
        raise ConfigError(f"{key} must name an environment variable, not {value!r}.")
    return value


def _decimal(key: str, value: Any, minimum: Decimal, maximum: Decimal) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"{key} must be a number, not {value!r}.")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ConfigError(f"{key} must be a number, not {value!r}.") from None
    if not number.is_finite() or not minimum < number < maximum:
        raise ConfigError(f"{key} must be more than {minimum} and less than {maximum}.")
    return number


def _alert_rule(key: str, value: Any) -> AlertRule:
    options = {
        "price_drop": ("min_percent",),
        "below_target": ("sku", "target"),
    }
    if not isinstance(value, dict) or value.get("rule") not in ALERT_RULES:
        raise ConfigError(f"{key}.rule must be one of {', '.join(ALERT_RULES)}.")
    rule = value["rule"]
    _object(key, value, ("rule", *options.get(rule, ())))
    if rule == "price_drop":
        percent = value.get("min_percent")
        return AlertRule(
            rule,
            min_percent=None
            if percent is None
            else _decimal(f"{key}.min_percent", percent, Decimal(0), Decimal(100)),
        )
    if rule == "below_target":
        for required in ("sku", "target"):
            if required not in value:
                raise ConfigError(f"{key} needs {required!r} for the below_target rule.")
        sku = _text(f"{key}.sku", value["sku"]).upper()
        target = _decimal(f"{key}.target", value["target"], Decimal(0), Decimal(10**10))
        return AlertRule(rule, sku=sku, target=target)
    return AlertRule(rule)


def _destination(key: str, kind: str, value: Any) -> Destination:
    if kind == "log":
        if value is not True:
            raise ConfigError(f"{key} must be true (deliver to the worker's log).")
        return Destination("log")
    if kind == "apprise" and isinstance(value, str):
        value = {"url": value}
    secrets = ("secret", "secret_env") if kind == "webhook" else ()
    options = _object(key, value, ("url", "url_env", *secrets))
    if ("url" in options) == ("url_env" in options):
        raise ConfigError(f"{key} needs exactly one of 'url' and 'url_env'.")
    url = options.get("url")
    if url is not None:
        url = _destination_url(f"{key}.url", kind, url)
    url_env = _env_var(f"{key}.url_env", options["url_env"]) if "url_env" in options else None
    secret = secret_env = None
    if kind == "webhook":
        if ("secret" in options) == ("secret_env" in options):
            raise ConfigError(
                f"{key} needs exactly one of 'secret_env' (recommended) and 'secret': "
                "every webhook delivery is signed."
            )
        if "secret" in options:
            secret = _text(f"{key}.secret", options["secret"])
        else:
            secret_env = _env_var(f"{key}.secret_env", options["secret_env"])
    return Destination(kind, url=url, url_env=url_env, secret=secret, secret_env=secret_env)


def _destination_url(key: str, kind: str, value: Any) -> str:
    if kind == "webhook":
        url = _url(("http", "https"))(key, value)
        if url is None:
            raise ConfigError(f"{key} must be a URL starting with http:// or https://.")
        return url
    # Apprise URLs (json://, mailto://, discord://, …) are checked by Apprise at worker start.
    if not isinstance(value, str) or "://" not in value:
        raise ConfigError(f"{key} must be an Apprise URL such as mailto://… or json://….")
    return value


def _subscriber(key: str, value: Any) -> Subscriber:
    allowed = (
        "name",
        *SUBSCRIBER_DESTINATIONS,
        "tables",
        "kinds",
        "fields",
        "vendors",
        "alerts",
        "start",
        "batch_size",
    )
    options = _object(key, value, allowed)
    name = options.get("name")
    if not isinstance(name, str) or not _SUBSCRIBER_NAME.match(name):
        raise ConfigError(
            f"{key}.name must be a short lower-case name (letters, digits, - _ .), not {name!r}."
        )
    chosen = [kind for kind in SUBSCRIBER_DESTINATIONS if kind in options]
    if len(chosen) != 1:
        raise ConfigError(f"{key} needs exactly one of {', '.join(SUBSCRIBER_DESTINATIONS)}.")
    kind = chosen[0]
    alerts = options.get("alerts", [])
    if not isinstance(alerts, list):
        raise ConfigError(f"{key}.alerts must be a list of rules.")
    start = options.get("start", "latest")
    if start not in ("latest", "beginning"):
        raise ConfigError(f"{key}.start must be 'latest' or 'beginning', not {start!r}.")
    batch_size = options.get("batch_size")
    return Subscriber(
        name=name,
        destination=_destination(f"{key}.{kind}", kind, options[kind]),
        tables=_names(f"{key}.tables", options["tables"], SUBSCRIBABLE_TABLES)
        if "tables" in options
        else SUBSCRIBABLE_TABLES,
        kinds=_names(f"{key}.kinds", options["kinds"], CHANGE_KINDS)
        if "kinds" in options
        else CHANGE_KINDS,
        fields=_names(f"{key}.fields", options["fields"], AUDITABLE_FIELDS)
        if "fields" in options
        else None,
        vendors=_names(f"{key}.vendors", options["vendors"], tuple(VENDORS))
        if "vendors" in options
        else None,
        alerts=tuple(
            _alert_rule(f"{key}.alerts[{index}]", rule) for index, rule in enumerate(alerts)
        ),
        start=start,
        batch_size=None
        if batch_size is None
        else _number(int, 1, 10_000)(f"{key}.batch_size", batch_size),
    )


def _subscribers(key: str, value: Any) -> tuple[Subscriber, ...]:
    if isinstance(value, str):  # from the environment: a JSON list
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{key} is not valid JSON ({error.msg}).") from None
    if not isinstance(value, list):
        raise ConfigError(f"{key} must be a list of subscribers.")
    subscribers = tuple(_subscriber(f"{key}[{index}]", item) for index, item in enumerate(value))
    names = [subscriber.name for subscriber in subscribers]
    for index, name in enumerate(names):
        if name in names[:index]:
            raise ConfigError(f"{key}[{index}].name {name!r} is used twice; names must be unique.")
    return subscribers


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
    # Distributed crawling, only with redis_url; see README "Scale out". The defaults are the
    # named constants of christmas_spiders.distributed.defaults.
    redis_key_prefix: str = _option(_redis.REDIS_KEY_PREFIX, _text)
    # TLS Redis (rediss://) whose certificate cannot be verified (Heroku Redis signs its own):
    # false adds ssl_cert_reqs=none to redis_url.
    redis_tls_verify: bool = _option(True, _boolean)
    redis_run_ttl_seconds: int = _option(_redis.RUN_TTL_SECONDS, _number(int, 2, 30 * 86400))
    crawl_idle_seconds: float = _option(_redis.IDLE_SECONDS, _number(float, 0.5, 3600.0))
    crawl_worker_timeout_seconds: float = _option(
        _redis.WORKER_TIMEOUT_SECONDS, _number(float, 2.0, 3600.0)
    )
    year_links_ttl_seconds: int = _option(
        _redis.YEAR_LINKS_TTL_SECONDS, _number(int, 1, 365 * 86400)
    )
    shop_max_concurrency: int = _option(_redis.SHOP_MAX_CONCURRENCY, _number(int, 1, 1000))
    shop_requests_per_second: float = _option(
        _redis.SHOP_REQUESTS_PER_SECOND, _number(float, 0.01, 100_000.0)
    )
    worker_poll_seconds: float = _option(_redis.WORKER_POLL_SECONDS, _number(float, 0.1, 3600.0))
    worker_max_crawls: int = _option(_redis.WORKER_MAX_CRAWLS, _number(int, 1, 100))
    # The audit worker (webapi.auditor); see README "Audit worker".
    subscribers: tuple[Subscriber, ...] = _option((), _subscribers)
    auditor_poll_seconds: float = _option(5.0, _number(float, 0.05, 3600.0))
    auditor_batch_size: int = _option(100, _number(int, 1, 10_000))
    auditor_webhook_timeout_seconds: float = _option(10.0, _number(float, 0.1, 300.0))
    auditor_delivery_attempts: int = _option(5, _number(int, 1, 100))
    auditor_retry_backoff_seconds: float = _option(1.0, _number(float, 0.0, 300.0))
    auditor_pause_seconds: float = _option(900.0, _number(float, 1.0, 7 * 86400.0))
    auditor_delivery_log_days: int = _option(30, _number(int, 1, 3650))
    # The scheduler (`python scheduler.py`); see README "Scheduler". One structured option
    # (`CHRISTMAS_SCHEDULE` as JSON); its shape, defaults and checks live in
    # christmas_spiders.scheduling.settings.
    schedule: _scheduling.Schedule = _option(_scheduling.Schedule(), _scheduling.parse_schedule)
    # The read-only API (webapi); see README "API". Where it reads: a replica when set (e.g. a
    # Heroku Postgres follower), else api_database_url, else database_url. Key checks, the
    # change feed and `last_used_at` always use api_database_url / database_url (the primary).
    database_replica_url: str | None = _option(
        None, _url(("postgresql", "postgres")), "DATABASE_REPLICA_URL"
    )
    api_database_url: str | None = _option(None, _url(("postgresql", "postgres")))
    # The SELECT-only role `python -m christmas_spiders.storage upgrade` creates; the API runs
    # as it (SET ROLE on a shared login, or a URL above naming it).
    api_database_role: str = _option("christmas_api", _text)
    api_rate_limit: int = _option(600, _number(int, 1, 10_000_000))  # requests per key/window
    api_rate_limit_window_seconds: int = _option(60, _number(int, 1, 86_400))
    api_statement_timeout_seconds: float = _option(10.0, _number(float, 0.1, 3600.0))
    # How long a process trusts a key it found valid: a revoked key works this much longer.
    api_key_cache_seconds: float = _option(5.0, _number(float, 0.0, 3600.0))
    # The web view (webapi.web); see README "Web view". Off: its pages are public (they show
    # what the shops show publicly); on: they need an API key, like /v1 always does.
    web_requires_key: bool = _option(False, _boolean)

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
    config = Config(**values)
    if config.redis_url and not config.redis_tls_verify:
        config = replace(config, redis_url=_without_tls_verification(config.redis_url))
    return config


def _without_tls_verification(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != "rediss" or "ssl_cert_reqs=" in parts.query:
        return url
    query = f"{parts.query}&ssl_cert_reqs=none" if parts.query else "ssl_cert_reqs=none"
    return parts._replace(query=query).geturl()


def env_names() -> dict[str, str]:
    """Config key → the environment variable that overrides it (for docs and tests)."""
    return {
        spec.name: _env_name(spec.name, spec.metadata["env"])
        for spec in fields(Config)
        if spec.name != "vendors"
    }


def resolve_subscribers(
    config: Config, environ: Mapping[str, str] | None = None
) -> tuple[Subscriber, ...]:
    """The subscribers with the URLs and secrets named by `url_env` / `secret_env` filled in.

    Only the audit worker calls this, so the other processes start without its secrets. Raises
    ConfigError naming the key whose variable is unset or holds a bad URL.
    """
    environ = os.environ if environ is None else environ
    resolved = []
    for index, subscriber in enumerate(config.subscribers):
        destination = subscriber.destination
        key = f"subscribers[{index}].{destination.kind}"
        values: dict[str, str] = {}
        for option, env_option in (("url", "url_env"), ("secret", "secret_env")):
            env_name = getattr(destination, env_option)
            if env_name is None:
                continue
            value = environ.get(env_name, "").strip()
            if not value:
                raise ConfigError(
                    f"{key}.{env_option} names {env_name}, which is not set in the environment."
                )
            values[option] = (
                _destination_url(f"{env_name} (from {key}.url_env)", destination.kind, value)
                if option == "url"
                else value
            )
        resolved.append(replace(subscriber, destination=replace(destination, **values)))
    return tuple(resolved)
