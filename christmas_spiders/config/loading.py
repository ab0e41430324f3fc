"""Reading the configuration: environment variables, then the JSON file, then the defaults.

This module is the only reader of ``os.environ`` in the project (``load``, and the secrets only
the audit worker reads, ``resolve_subscribers``).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from marshmallow import ValidationError

from christmas_spiders import logs
from christmas_spiders.config.fields import error_sentence, read_value
from christmas_spiders.config.keys import CONFIG_DIR, ENV_NAMES, SCHEMA, Config
from christmas_spiders.config.subscribers import URLS, Subscriber
from christmas_spiders.errors import ConfigError


def load(environ: Mapping[str, str] | None = None) -> Config:
    """Build the configuration; raises ConfigError naming the first bad key."""
    environ = os.environ if environ is None else environ
    data, source = _read_file(environ)
    unknown = sorted(set(data) - set(SCHEMA.fields) - {"$comment"})
    if unknown:
        raise ConfigError(f"{source}: unknown key {unknown[0]!r}.")

    values: dict[str, Any] = {}
    labels: dict[str, str] = {}  # key → how an error names it: its variable, or file and key
    for name in SCHEMA.fields:
        env_name = ENV_NAMES.get(name)
        if env_name and environ.get(env_name, "") != "":
            values[name], labels[name] = environ[env_name], env_name
        elif name in data:
            values[name], labels[name] = data[name], f"{source}: {name}"
    try:
        config = Config(**SCHEMA.load(values))
    except ValidationError as error:
        name, messages = next(iter(error.normalized_messages().items()))
        raise ConfigError(error_sentence(labels[name], messages)) from None
    if config.redis_url and not config.redis_tls_verify:
        config = replace(config, redis_url=_without_tls_verification(config.redis_url))
    return config


def load_for_command() -> Config:
    """A command's configuration, with logging set up from it. A bad configuration ends the
    command here: the one-sentence error on stderr, exit status 2."""
    try:
        config = load()
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    logs.configure(config.log_level, config.log_format)
    return config


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


def _without_tls_verification(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != "rediss" or "ssl_cert_reqs=" in parts.query:
        return url
    query = f"{parts.query}&ssl_cert_reqs=none" if parts.query else "ssl_cert_reqs=none"
    return parts._replace(query=query).geturl()


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
        for option in ("url", "secret"):
            env_name = getattr(destination, f"{option}_env")
            if env_name is None:
                continue
            value = environ.get(env_name, "").strip()
            if not value:
                raise ConfigError(
                    f"{key}.{option}_env names {env_name}, which is not set in the environment."
                )
            values[option] = value
        if destination.url_env:
            label = f"{destination.url_env} (from {key}.url_env)"
            values["url"] = read_value(label, URLS[destination.kind], values["url"])
        resolved.append(replace(subscriber, destination=replace(destination, **values)))
    return tuple(resolved)
