"""Every error a crawl logs, counted and kept, and the ones that fail its run.

Scrapy counts log lines (``log_count/ERROR``) only between spider_opened and spider_closed, so
an error logged by a spider_closed handler never reached the end-of-crawl summary. ``ErrorLog``
is a logging handler the crawl-run recorder installs for the whole crawl: it counts every
ERROR (and CRITICAL) record, keeps the first few as one line each for the run's stats and the
summary, and tells which of them fail the run.

An error fails the run when a part of the crawl broke, rather than one page or one item:

* an exception raised by a signal handler (Scrapy logs it from ``scrapy.utils.signal``:
  "Error caught on signal handler"),
* a component that failed to start or close (``scrapy.core.engine``: "Scraper close
  failure", "Error while processing requests from start()", …),
* an exception nobody handled, in an asyncio task or a Twisted Deferred,
* an error our own code logs with ``extra=FAILS_RUN`` (e.g. the crawl's heartbeat stopped).

A page that could not be read or an item that was dropped is counted and listed, and the run's
status stays as the crawl's other rules make it.
"""

from __future__ import annotations

import logging
import threading
from typing import Final

from christmas_spiders import logs
from christmas_spiders.errors import one_line

FAILS_RUN: Final = {"fails_run": True}  # logger.error(..., extra=FAILS_RUN)
FAILING_LOGGERS = ("scrapy.utils.signal", "scrapy.core.engine", "asyncio", "twisted")
KEPT = 5  # errors kept word for word (the rest are counted)
_LONGEST = 400  # characters of one kept error


def describe(record: logging.LogRecord) -> str:
    """One line: the logger, the message's first line and, with a traceback, the exception."""
    message = record.getMessage().strip().splitlines()
    text = f"{record.name}: {message[0] if message else ''}"
    if record.exc_info and record.exc_info[1] is not None:
        error = record.exc_info[1]
        text += f" ({type(error).__name__}: {one_line(error)})"
    text = logs.redact(text)
    return text if len(text) <= _LONGEST else text[: _LONGEST - 1] + "…"


def fails_run(record: logging.LogRecord) -> bool:
    return bool(getattr(record, "fails_run", False)) or record.name in FAILING_LOGGERS


class ErrorLog(logging.Handler):
    """Counts ERROR records from every logger of the process while it is installed."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0  # errors logged
        self.failing = 0  # of which fail the run
        self.first: list[str] = []  # the first KEPT, described
        self.failures: list[str] = []  # the first KEPT that fail the run, described
        self._guard = threading.Lock()  # records come from the reactor and worker threads

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = describe(record)
        except Exception:  # a malformed record: logging's own report, as for any handler
            self.handleError(record)
            text = f"{record.name}: (the message could not be formatted)"
        with self._guard:
            self.count += 1
            if len(self.first) < KEPT:
                self.first.append(text)
            if fails_run(record):
                self.failing += 1
                if len(self.failures) < KEPT:
                    self.failures.append(text)

    def install(self) -> ErrorLog:
        logging.getLogger().addHandler(self)
        return self

    def remove(self) -> None:
        logging.getLogger().removeHandler(self)

    def stats(self) -> dict[str, object]:
        """For the run's stats: counts and the kept errors."""
        with self._guard:
            return {
                "errors/logged": self.count,
                "errors/failing": self.failing,
                "errors/first": list(self.first),
                "errors/failures": list(self.failures),
            }
