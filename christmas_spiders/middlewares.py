"""Downloader middlewares of our own (the Selenium one lives in rendering.py).

``BackoffRetryMiddleware`` replaces Scrapy's RetryMiddleware: same settings (RETRY_TIMES,
RETRY_HTTP_CODES, RETRY_EXCEPTIONS), but a retry waits first — the server's ``Retry-After``
when it sends one (429/503), else exponential backoff with jitter:
``RETRY_BACKOFF_BASE`` × 2^(attempt-1), capped at ``RETRY_BACKOFF_MAX`` seconds. The wait is an
asyncio sleep: other requests go on meanwhile.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.http import Response
from scrapy.utils.response import response_status_message


def retry_after_seconds(response: Response) -> float | None:
    """The Retry-After header as seconds (delta-seconds or an HTTP date), or None."""
    value = response.headers.get(b"Retry-After")
    if not value:
        return None
    text = value.decode("latin-1").strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class BackoffRetryMiddleware(RetryMiddleware):
    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler.settings)
        self.crawler = crawler
        self.base = crawler.settings.getfloat("RETRY_BACKOFF_BASE", 1.0)
        self.maximum = crawler.settings.getfloat("RETRY_BACKOFF_MAX", 60.0)
        if self.base < 0 or self.maximum < self.base:
            raise ValueError("RETRY_BACKOFF_BASE must be ≥ 0 and ≤ RETRY_BACKOFF_MAX.")

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> BackoffRetryMiddleware:
        return cls(crawler)

    def delay(self, request: Request, response: Response | None = None) -> float:
        attempt = request.meta.get("retry_times", 1)
        backoff = min(self.maximum, self.base * 2 ** (attempt - 1) * random.uniform(0.75, 1.25))
        told = retry_after_seconds(response) if response is not None else None
        if told is not None:
            self.crawler.stats.inc_value("retry/retry_after_honoured")
            # The server's wait, but never less than our own backoff: a shop answering
            # `Retry-After: 0` (or 1) through an outage must not use up every retry at once.
            return min(self.maximum, max(told, backoff))
        return backoff

    async def process_response(self, request: Request, response: Response) -> Request | Response:
        if request.meta.get("dont_retry", False) or response.status not in self.retry_http_codes:
            return response
        retry = self._retry(request, response_status_message(response.status))
        if retry is None:
            return response
        await asyncio.sleep(self.delay(retry, response))
        return retry

    async def process_exception(self, request: Request, exception: Exception) -> Request | None:
        if request.meta.get("dont_retry", False) or not isinstance(
            exception, self.exceptions_to_retry
        ):
            return None
        retry = self._retry(request, exception)
        if retry is not None:
            await asyncio.sleep(self.delay(retry))
        return retry
