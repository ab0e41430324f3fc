"""Configuration for every process: environment variables, then a JSON file, then defaults.

This package is the only reader of ``os.environ`` in the project. ``load()`` returns one frozen
``Config``; a malformed file, an unknown key or a bad value raises ``ConfigError`` with one
sentence that names the key, and each process turns that into an exit at start.

The JSON file is ``config/<ENV>.json`` (``ENV`` defaults to ``default``) or the path in
``CONFIG_PATH``. Every scalar key can be overridden by an environment variable: the well-known
ones keep their usual names (``DATABASE_URL``, ``REDIS_URL``, ``LOG_LEVEL``, ``LOG_FORMAT``,
``CHRISTMAS_DATA_DIR``, ``DATABASE_REPLICA_URL``), the rest are ``CHRISTMAS_<KEY>``
(``CHRISTMAS_STORE_BATCH_SIZE``). See docs/configuration.md.

* ``keys``        — every key: its default, the field that reads it, its variable (``Config``).
* ``loading``     — env → file → defaults (``load``), and the auditor's secrets.
* ``fields``      — the marshmallow fields and validators, with the sentences users read.
* ``subscribers`` — the audit worker's subscribers and alert rules.
* ``schedule``    — the scheduler's ``schedule`` option.
"""

from christmas_spiders.config.keys import CONFIG_DIR, LOG_FORMATS, LOG_LEVELS, PROJECT_ROOT, Config
from christmas_spiders.config.loading import load, load_for_command, resolve_subscribers
from christmas_spiders.config.schedule import JobKind, Schedule
from christmas_spiders.config.subscribers import (
    ALERT_RULES,
    SUBSCRIBABLE_TABLES,
    SUBSCRIBER_DESTINATIONS,
    AlertRule,
    Destination,
    Subscriber,
)
from christmas_spiders.domain import AUDITABLE_FIELDS, CHANGE_KINDS
from christmas_spiders.errors import ConfigError

__all__ = [
    "ALERT_RULES",
    "AUDITABLE_FIELDS",
    "CHANGE_KINDS",
    "CONFIG_DIR",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "PROJECT_ROOT",
    "SUBSCRIBABLE_TABLES",
    "SUBSCRIBER_DESTINATIONS",
    "AlertRule",
    "Config",
    "ConfigError",
    "Destination",
    "JobKind",
    "Schedule",
    "Subscriber",
    "load",
    "load_for_command",
    "resolve_subscribers",
]
