"""The Redis client, built from the configuration's ``redis_url`` (as scrapy-redis builds it from
``REDIS_URL``), and the start-up check every distributed process makes."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from christmas_spiders.distributed import defaults
from christmas_spiders.errors import one_line


class RedisUnavailable(RuntimeError):
    """Redis cannot be reached; the message is one sentence naming the URL (password hidden)."""


def safe_url(url: str) -> str:
    """The URL with its password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def client(url: str) -> redis.Redis:
    """A client with short timeouts and two quick retries: a lost server fails fast."""
    return redis.Redis.from_url(
        url,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), defaults.REDIS_RETRIES),
        **defaults.REDIS_PARAMS,
    )


def check(url: str) -> redis.Redis:
    """Connect and PING; raise RedisUnavailable with a clear sentence when that fails."""
    server = client(url)
    try:
        server.ping()
    except redis.RedisError as error:
        server.close()
        raise RedisUnavailable(
            f"Redis at {safe_url(url)} (REDIS_URL) is unreachable: {one_line(error)}."
        ) from None
    return server
