"""Downloader middlewares of our own (the Selenium one lives in rendering/).

``BackoffRetryMiddleware`` replaces Scrapy's RetryMiddleware: same settings (RETRY_TIMES,
RETRY_HTTP_CODES, RETRY_EXCEPTIONS), but a retry waits first. Without a ``Retry-After`` the
wait is exponential backoff with jitter, ``RETRY_BACKOFF_BASE`` × 2^(attempt-1) capped at
``RETRY_BACKOFF_MAX``. With one (delta-seconds or an HTTP date, on 429/503) the wait is the
server's, in full, and never shorter than our backoff; a shop asking for more than
``RETRY_AFTER_MAX`` seconds is not retried at all (the request gives up, the next crawl fetches
it again) rather than retried sooner than it asked. The wait is an asyncio sleep: other
requests go on meanwhile. ``RETRY_WAIT_SCALE`` (tests only, default 1) multiplies every wait.

``CharsetMiddleware`` reads a page whose bytes are not the UTF-8 it declares as the legacy
page it is (see ``mislabelled_utf8``), and counts pages by encoding.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.downloadermiddlewares.retry import RetryMiddleware, get_retry_request
from scrapy.http import Response, TextResponse
from scrapy.settings import BaseSettings
from scrapy.utils.response import response_status_message
from w3lib.encoding import html_body_declared_encoding

logger = logging.getLogger(__name__)

# The web's default for legacy Western pages (WHATWG Encoding Standard; what browsers use).
LEGACY_ENCODING = "cp1252"


def retry_after_seconds(value: bytes | str | None, now: datetime) -> float | None:
    """A Retry-After header as seconds from `now` (delta-seconds or an HTTP date; a date in the
    past is 0), or None when it is absent or unreadable."""
    if not value:
        return None
    text = (value.decode("latin-1") if isinstance(value, bytes) else value).strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True)
class RetryWaits:
    """How long a retry waits (the shop's time: ``scale`` applies to the sleep only)."""

    base: float = 1.0
    maximum: float = 60.0
    retry_after_max: float = 900.0
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.base <= self.maximum:
            raise ValueError("RETRY_BACKOFF_BASE must be ≥ 0 and ≤ RETRY_BACKOFF_MAX.")
        if self.retry_after_max < 0:
            raise ValueError("RETRY_AFTER_MAX must be ≥ 0 seconds.")
        if self.scale <= 0:
            raise ValueError("RETRY_WAIT_SCALE must be > 0.")

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> RetryWaits:
        """From the project's settings (christmas_spiders.settings), these defaults without."""
        return cls(
            base=settings.getfloat("RETRY_BACKOFF_BASE", cls.base),
            maximum=settings.getfloat("RETRY_BACKOFF_MAX", cls.maximum),
            retry_after_max=settings.getfloat("RETRY_AFTER_MAX", cls.retry_after_max),
            scale=settings.getfloat("RETRY_WAIT_SCALE", cls.scale),
        )

    def wait(self, attempt: int, retry_after: float | None, jitter: float = 1.0) -> float | None:
        """Seconds before retry number `attempt` (1 = the first retry), or None when the shop's
        Retry-After is longer than we wait for. `jitter` multiplies the backoff (0.75–1.25)."""
        backoff = min(self.maximum, self.base * 2 ** (attempt - 1) * jitter)
        if retry_after is None:
            return backoff
        if retry_after > self.retry_after_max:
            return None
        # The server's wait, but never less than our own backoff: a shop answering
        # `Retry-After: 0` (or 1) through an outage must not use up every retry at once.
        return max(retry_after, backoff)


class BackoffRetryMiddleware(RetryMiddleware):
    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler.settings)
        self.crawler = crawler
        self.waits = RetryWaits.from_settings(crawler.settings)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> BackoffRetryMiddleware:
        return cls(crawler)

    def retry_request(self, request: Request, reason: str | Exception) -> Request | None:
        """The retry of `request` (Scrapy's get_retry_request: same meta keys and stats), or None
        when its retries are used up."""
        assert self.crawler.spider is not None
        return get_retry_request(
            request,
            spider=self.crawler.spider,
            reason=reason,
            max_retry_times=request.meta.get("max_retry_times", self.max_retry_times),
            priority_adjust=request.meta.get("priority_adjust", self.priority_adjust),
            give_up_log_level=request.meta.get("give_up_log_level", self.give_up_log_level),
        )

    async def process_response(self, request: Request, response: Response) -> Request | Response:
        if request.meta.get("dont_retry", False) or response.status not in self.retry_http_codes:
            return response
        stats = self.crawler.stats
        told = retry_after_seconds(response.headers.get(b"Retry-After"), datetime.now(UTC))
        attempt = request.meta.get("retry_times", 0) + 1
        wait = self.waits.wait(attempt, told, random.uniform(0.75, 1.25))
        if wait is None:
            stats.inc_value("retry/retry_after_too_long")
            logger.warning(
                "%s: the shop asks to retry after %.0f s, more than RETRY_AFTER_MAX (%.0f s); "
                "giving up on it (the next crawl fetches it again)",
                request.url,
                told,
                self.waits.retry_after_max,
            )
            return response
        retry = self.retry_request(request, response_status_message(response.status))
        if retry is None:
            return response
        if told is not None:
            stats.inc_value("retry/retry_after_honoured")
            stats.max_value("retry/retry_after_longest", round(told))
            logger.info("%s: retrying in %.0f s as the shop asks (Retry-After)", request.url, wait)
        await asyncio.sleep(wait * self.waits.scale)
        return retry

    async def process_exception(self, request: Request, exception: Exception) -> Request | None:
        if request.meta.get("dont_retry", False) or not isinstance(
            exception, self.exceptions_to_retry
        ):
            return None
        retry = self.retry_request(request, exception)
        if retry is not None:
            wait = self.waits.wait(retry.meta["retry_times"], None, random.uniform(0.75, 1.25))
            assert wait is not None  # only a Retry-After gives up
            await asyncio.sleep(wait * self.waits.scale)
        return retry


def mislabelled_utf8(body: bytes) -> bool:
    """Whether a body that is not valid UTF-8 is a legacy single-byte page under a wrong label:
    not one character of it decodes as a UTF-8 multi-byte sequence. A body mixing valid and
    invalid UTF-8 is UTF-8 with a few bad bytes."""
    text = body.decode("utf-8", "replace")
    return not any(ord(char) > 0x7F and char != "\ufffd" for char in text)


def is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def legacy_encoding(body: bytes) -> str:
    """The encoding of a mislabelled page: what its own <meta> declares, unless that is UTF-8
    too, else windows-1252."""
    declared = html_body_declared_encoding(body)
    return declared if declared and declared != "utf-8" else LEGACY_ENCODING


class CharsetMiddleware:
    """Text pages: a page declared UTF-8 (by its header or its <meta>) whose bytes are a legacy
    encoding is read in that encoding (``encoding/mislabelled``); one mixing valid and invalid
    UTF-8 is kept as UTF-8 and counted (``encoding/invalid_utf8``). Every page not in UTF-8 is
    counted by encoding (``encoding/cp1252``…). Pages with no declaration at all are Scrapy's
    to detect."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CharsetMiddleware:
        return cls(crawler)

    def process_response(self, request: Request, response: Response) -> Response:
        if not isinstance(response, TextResponse):
            return response
        stats = self.crawler.stats
        if response.encoding == "utf-8" and not is_utf8(response.body):
            if mislabelled_utf8(response.body):
                encoding = legacy_encoding(response.body)
                stats.inc_value("encoding/mislabelled")
                logger.warning(
                    "%s: the page says UTF-8 but is not; read as %s", response.url, encoding
                )
                response = response.replace(encoding=encoding)
            else:
                stats.inc_value("encoding/invalid_utf8")
                logger.warning("%s: invalid UTF-8 bytes read as U+FFFD", response.url)
        if response.encoding != "utf-8":
            stats.inc_value(f"encoding/{response.encoding}")
        return response
