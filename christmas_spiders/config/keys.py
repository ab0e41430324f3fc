"""Every configuration key: its default, the field that reads it, its environment variable.

Defaults here; see docs/configuration.md. A key's variable is ``CHRISTMAS_<KEY>`` unless
``_option`` names another (``DATABASE_URL``…).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import marshmallow as ma

from christmas_spiders.config import fields as f
from christmas_spiders.config.schedule import Schedule, schedule_field
from christmas_spiders.config.subscribers import Subscriber, subscribers_field
from christmas_spiders.distributed import defaults as _redis
from christmas_spiders.domain import AUDITABLE_FIELDS
from christmas_spiders.vendors import VENDORS

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = PROJECT_ROOT / "config"

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")
_POSTGRES = ("postgresql", "postgres")
# contact_url's default: nobody's address (the reserved .invalid domain), which tells a shop's
# owner that the operator has not said who they are; docs/configuration.md says why.
CONTACT_URL_UNSET = "https://contact-url-not-configured.invalid/"


def _option(default: Any, reader: ma.fields.Field, env: str | None = None) -> Any:
    metadata = {"field": reader, "env": env}
    if isinstance(default, dict):
        return dataclasses.field(default_factory=lambda: dict(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _field_names(value: Any) -> Any:
    """A comma-separated list from the environment, or a JSON list; names stripped."""
    names = value.split(",") if isinstance(value, str) else value
    if not isinstance(names, list | tuple):
        return names
    return [name.strip() if isinstance(name, str) else name for name in names]


class _Origin(f.Strict):
    unknown_key = "has unknown key {key!r}."
    base_url = f.url(("http", "https"), optional=True)


class _Origins(f.Strict.from_dict({vendor: f.Object(_Origin) for vendor in VENDORS})):
    """Per vendor, the origin its spider crawls instead of the live shop (e.g. a replica)."""

    unknown_key = "has unknown vendor {key!r}; known: {known}."

    @ma.post_load
    def base_urls(self, data: dict[str, Any], **kwargs: Any) -> dict[str, dict[str, str]]:
        return {
            vendor: {"base_url": options["base_url"].rstrip("/")}
            for vendor, options in data.items()
            if options.get("base_url")
        }


@dataclasses.dataclass(frozen=True)
class Config:
    """Every setting of the project. Defaults here; see docs/configuration.md."""

    database_url: str | None = _option(None, f.url(_POSTGRES, optional=True), "DATABASE_URL")
    redis_url: str | None = _option(
        None, f.url(("redis", "rediss", "unix"), optional=True), "REDIS_URL"
    )
    log_level: str = _option("INFO", f.Choice(LOG_LEVELS, upper=True), "LOG_LEVEL")
    log_format: str = _option("text", f.Choice(LOG_FORMATS), "LOG_FORMAT")
    data_dir: Path = _option(PROJECT_ROOT / ".data", f.Folder(PROJECT_ROOT), "CHRISTMAS_DATA_DIR")
    audited_fields: tuple[str, ...] = _option(
        ("price", "availability"),
        f.names(
            AUDITABLE_FIELDS,
            invalid="must be a non-empty list of product fields.",
            unknown="names unknown field(s) {unknown}; choose from {choices}.",
            pre_load=_field_names,
        ),
    )
    suspicious_price_ratio: float = _option(3.0, f.number(1.01, 1000.0))
    store_batch_size: int = _option(500, f.integer(1, 50_000))
    store_flush_seconds: float = _option(2.0, f.number(0.05, 3600.0))
    db_write_attempts: int = _option(5, f.integer(1, 100))
    db_retry_backoff_seconds: float = _option(0.5, f.number(0.0, 60.0))
    # Where a shop's owner reaches whoever runs the crawler (User-Agent); see CONTACT_URL_UNSET.
    contact_url: str = _option(
        CONTACT_URL_UNSET,
        f.matching(
            r"(?i)(?:https?://|mailto:)\S+\Z",
            "must be an http(s):// URL or a mailto: address, not {input!r}.",
        ),
    )
    vendors: Mapping[str, Mapping[str, str]] = _option(
        {}, f.Object(_Origins, error_messages={"invalid": "must be an object keyed by vendor id."})
    )
    # A year whose crawl found fewer products than this share of the last complete crawl of
    # it delists nothing (the crawl looks incomplete).
    delist_min_ratio: float = _option(0.5, f.number(0.0, 1.0))
    # Quick syncs (`-a mode=quick`, docs/spiders.md): every product page is read again within
    # this many days, by the scheduled full syncs (then a quick sync re-reads only older pages)
    # or else by the quick syncs, the oldest first, spread over them (quick.rules).
    quick_refresh_days: float = _option(7.0, f.number(0.01, 3650.0))
    # Crawl health (christmas_spiders.health, docs/health.md): when a run is `suspect`.
    # Coverage and first-run checks need this many product pages (smaller runs: vanishes only).
    health_min_items: int = _option(10, f.integer(1, 1_000_000))
    # A year with fewer products than this share of its last healthy run's.
    health_min_year_ratio: float = _option(0.8, f.number(0.0, 1.0))
    # A field shown on fewer products than this share of its last healthy coverage.
    health_min_coverage_ratio: float = _option(0.8, f.number(0.0, 1.0))
    # More than this share of the products that had a field lost it in the run.
    health_max_vanished_share: float = _option(0.5, f.number(0.0, 1.0))
    # A vendor's first run: price, name and availability on at least this share.
    health_first_run_min_share: float = _option(0.5, f.number(0.0, 1.0))
    # Problem pages, errors and retries: at most this much above the last healthy run.
    health_max_problem_share: float = _option(0.25, f.number(0.0, 1.0))
    health_max_error_share: float = _option(0.1, f.number(0.0, 1.0))
    health_max_retry_share: float = _option(0.5, f.number(0.0, 100.0))
    # Distributed crawling, only with redis_url; see docs/scale-out.md. The defaults are the
    # named constants of christmas_spiders.distributed.defaults.
    redis_key_prefix: str = _option(_redis.REDIS_KEY_PREFIX, f.text())
    # TLS Redis (rediss://) whose certificate cannot be verified (Heroku Redis signs its own):
    # false adds ssl_cert_reqs=none to redis_url.
    redis_tls_verify: bool = _option(True, f.Boolean())
    redis_run_ttl_seconds: int = _option(_redis.RUN_TTL_SECONDS, f.integer(2, 30 * 86400))
    crawl_idle_seconds: float = _option(_redis.IDLE_SECONDS, f.number(0.5, 3600.0))
    crawl_worker_timeout_seconds: float = _option(
        _redis.WORKER_TIMEOUT_SECONDS, f.number(2.0, 3600.0)
    )
    crawl_lease_seconds: float = _option(_redis.REQUEST_LEASE_SECONDS, f.number(2.0, 3600.0))
    year_links_ttl_seconds: int = _option(_redis.YEAR_LINKS_TTL_SECONDS, f.integer(1, 365 * 86400))
    shop_max_concurrency: int = _option(_redis.SHOP_MAX_CONCURRENCY, f.integer(1, 1000))
    shop_requests_per_second: float = _option(
        _redis.SHOP_REQUESTS_PER_SECOND, f.number(0.01, 100_000.0)
    )
    worker_poll_seconds: float = _option(_redis.WORKER_POLL_SECONDS, f.number(0.1, 3600.0))
    worker_max_crawls: int = _option(_redis.WORKER_MAX_CRAWLS, f.integer(1, 100))
    # The audit worker (webapi.auditor); see docs/auditor.md.
    subscribers: tuple[Subscriber, ...] = _option((), subscribers_field())
    auditor_poll_seconds: float = _option(5.0, f.number(0.05, 3600.0))
    auditor_batch_size: int = _option(100, f.integer(1, 10_000))
    auditor_webhook_timeout_seconds: float = _option(10.0, f.number(0.1, 300.0))
    auditor_delivery_attempts: int = _option(5, f.integer(1, 100))
    auditor_retry_backoff_seconds: float = _option(1.0, f.number(0.0, 300.0))
    auditor_pause_seconds: float = _option(900.0, f.number(1.0, 7 * 86400.0))
    auditor_delivery_log_days: int = _option(30, f.integer(1, 3650))
    # The scheduler (`python scheduler.py`); see docs/scheduler.md. One structured option
    # (`CHRISTMAS_SCHEDULE` as JSON); its shape, defaults and checks live in
    # christmas_spiders.config.schedule.
    schedule: Schedule = _option(Schedule(), schedule_field())
    # The read-only API (webapi); see docs/api.md. Where it reads: a replica when set (e.g. a
    # Heroku Postgres follower), else api_database_url, else database_url. Key checks, the
    # change feed and `last_used_at` always use api_database_url / database_url (the primary).
    database_replica_url: str | None = _option(
        None, f.url(_POSTGRES, optional=True), "DATABASE_REPLICA_URL"
    )
    api_database_url: str | None = _option(None, f.url(_POSTGRES, optional=True))
    # The SELECT-only role `python -m christmas_spiders.storage upgrade` creates; the API runs
    # as it (SET ROLE on a shared login, or a URL above naming it).
    api_database_role: str = _option("christmas_api", f.text())
    api_rate_limit: int = _option(600, f.integer(1, 10_000_000))  # requests per key/window
    api_rate_limit_window_seconds: int = _option(60, f.integer(1, 86_400))
    api_statement_timeout_seconds: float = _option(10.0, f.number(0.1, 3600.0))
    # How long a process trusts a key it found valid: a revoked key works this much longer.
    api_key_cache_seconds: float = _option(5.0, f.number(0.0, 3600.0))
    # The web view (webapi.web); see docs/web.md. Off: its pages are public (they show what the
    # shops show publicly); on: they need an API key, like /v1 always does.
    web_requires_key: bool = _option(False, f.Boolean())

    @property
    def dead_letter_dir(self) -> Path:
        return self.data_dir / "dead-letter"

    def base_url(self, vendor: str) -> str:
        """The origin a spider crawls: configuration first, else the live shop."""
        return self.vendors.get(vendor, {}).get("base_url") or VENDORS[vendor].base_url

    @property
    def user_agent(self) -> str:
        """The crawler's User-Agent: what crawls, and after `+` where to reach who runs it."""
        return f"project_christmas/0.1 (+{self.contact_url})"


# Key → the environment variable that overrides it (`vendors`, an object, is read from the file
# only), and the schema that reads every key.
ENV_NAMES = {
    spec.name: spec.metadata["env"] or f"CHRISTMAS_{spec.name.upper()}"
    for spec in dataclasses.fields(Config)
    if spec.name != "vendors"
}
SCHEMA = ma.Schema.from_dict(
    {spec.name: spec.metadata["field"] for spec in dataclasses.fields(Config)}, name="ConfigSchema"
)()
