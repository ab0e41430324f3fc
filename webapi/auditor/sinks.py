"""Where a subscriber's deliveries go: the log, a signed HTTP webhook, or any Apprise channel.

A sink delivers a list of events and either returns (delivered) or raises `DeliveryFailed`;
retries, backoff and pausing are the subscriber thread's business. Sinks never log secrets or
full URLs (webhook and Apprise URLs often carry tokens): only the scheme and host.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import warnings
from collections.abc import Sequence
from functools import cache
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests

from christmas_spiders.config import Config, ConfigError, Subscriber
from webapi.auditor.events import Event

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Christmas-Signature-256"
DELIVERY_HEADER = "X-Christmas-Delivery"


class DeliveryFailed(Exception):
    def __init__(self, reason: str, http_status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.http_status = http_status


class Sink(Protocol):
    #: Events per delivery: a webhook sends a batch in one request, Apprise one message each.
    max_events: int

    def describe(self) -> str: ...

    def deliver(self, events: Sequence[Event]) -> int | None:
        """Deliver the events (oldest first); the HTTP status if any. Raises DeliveryFailed."""
        ...

    def close(self) -> None: ...


def sign(secret: str, body: bytes) -> str:
    """The signature header value: `sha256=` + hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def safe_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"


class LogSink:
    """Writes each event to the worker's log (logger `webapi.auditor.sinks`)."""

    def __init__(self, subscriber: str, batch_size: int) -> None:
        self.subscriber = subscriber
        self.max_events = batch_size

    def describe(self) -> str:
        return "the log"

    def deliver(self, events: Sequence[Event]) -> None:
        for event in events:
            logger.info(
                "%s: change %d: %s\n%s",
                self.subscriber,
                event.change.id,
                event.title,
                event.text,
            )

    def close(self) -> None:
        pass


class WebhookSink:
    """POSTs `{"subscriber": …, "events": [...]}` as JSON, signed with the webhook's secret.

    Headers: `X-Christmas-Signature-256: sha256=<hex HMAC-SHA256 of the body>` and
    `X-Christmas-Delivery: <subscriber>:<first change id>-<last change id>`. Any 2xx answer
    is a delivery; anything else, a timeout or a connection error is a failure.
    """

    def __init__(
        self, subscriber: str, url: str, secret: str, timeout: float, batch_size: int, agent: str
    ) -> None:
        self.subscriber = subscriber
        self.max_events = batch_size
        self._url = url
        self._secret = secret
        self._timeout = timeout
        self._session = requests.Session()
        self._session.headers.update({"User-Agent": agent, "Content-Type": "application/json"})

    def describe(self) -> str:
        return f"webhook {safe_url(self._url)}"

    def deliver(self, events: Sequence[Event]) -> int:
        body = json.dumps(
            {"subscriber": self.subscriber, "events": [event.as_json() for event in events]},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        headers = {
            SIGNATURE_HEADER: sign(self._secret, body),
            DELIVERY_HEADER: f"{self.subscriber}:{events[0].change.id}-{events[-1].change.id}",
        }
        try:
            response = self._session.post(
                self._url, data=body, headers=headers, timeout=self._timeout, allow_redirects=False
            )
        except requests.RequestException as error:
            raise DeliveryFailed(self._redact(f"{type(error).__name__}: {error}")) from None
        with response:
            if not 200 <= response.status_code < 300:
                raise DeliveryFailed(
                    f"HTTP {response.status_code} {response.reason}", response.status_code
                )
            return response.status_code

    def _redact(self, message: str) -> str:
        parts = urlsplit(self._url)
        for secret in (self._url, parts.path + (f"?{parts.query}" if parts.query else "")):
            if len(secret) > 1:
                message = message.replace(secret, "…")
        return message[:500]

    def close(self) -> None:
        self._session.close()


@cache
def _apprise() -> Any:
    """Apprise, with its notification plugins loaded (once, in the calling thread)."""
    with warnings.catch_warnings():
        # Apprise's e-mail plugin imports the standard `imghdr` module, deprecated since
        # Python 3.11; it is the library's import, not something we can change.
        warnings.filterwarnings("ignore", "'imghdr' is deprecated", DeprecationWarning)
        import apprise
        from apprise.plugins import N_MGR

        N_MGR.load_modules()
    return apprise


def _apprise_failure(result: Any) -> str:
    messages = [
        entry.message
        for notified in getattr(result, "results", ())
        for attempt in getattr(notified, "attempts", ())
        for entry in attempt
        if entry.level in ("WARNING", "ERROR", "CRITICAL")
    ]
    return messages[-1] if messages else "Apprise could not deliver the notification"


class AppriseSink:
    """Sends one notification (title + text) per event to one Apprise URL."""

    max_events = 1

    def __init__(self, key: str, url: str) -> None:
        apprise = _apprise()
        self._scheme = urlsplit(url).scheme
        self._apprise = apprise.Apprise()
        if not self._apprise.add(url):
            raise ConfigError(
                f"{key} is not a URL Apprise can send to (scheme {self._scheme!r}); "
                "see https://github.com/caronc/apprise/wiki."
            )

    def describe(self) -> str:
        return f"Apprise {self._scheme}://"

    def deliver(self, events: Sequence[Event]) -> None:
        for event in events:
            result = self._apprise.notify(title=event.title, body=event.text)
            if not result:
                raise DeliveryFailed(re.sub(r"\s+", " ", _apprise_failure(result))[:500])

    def close(self) -> None:
        self._apprise.clear()


def build_sink(index: int, subscriber: Subscriber, config: Config) -> Sink:
    """The sink of a resolved subscriber (`config.resolve_subscribers`)."""
    destination = subscriber.destination
    batch_size = subscriber.batch_size or config.auditor_batch_size
    key = f"subscribers[{index}].{destination.kind}"
    if destination.kind == "log":
        return LogSink(subscriber.name, batch_size)
    if destination.url is None:
        raise ConfigError(f"{key} has no URL: resolve the subscribers before building sinks.")
    if destination.kind == "apprise":
        return AppriseSink(key, destination.url)
    if destination.secret is None:
        raise ConfigError(f"{key} has no secret: resolve the subscribers before building sinks.")
    return WebhookSink(
        subscriber.name,
        destination.url,
        destination.secret,
        config.auditor_webhook_timeout_seconds,
        batch_size,
        f"project_christmas-auditor (+{config.contact_url})",
    )
