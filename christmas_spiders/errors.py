"""Errors every part shares (a leaf: imports nothing of ours): ``ConfigError``, and an exception
as one short line, for logs and error answers."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration problem, phrased as one sentence that names the key."""


def one_line(error: BaseException) -> str:
    """The first non-blank line of the error's message, or its class name when it has none.

    SQLAlchemy wraps the driver's error in `.orig` (its own message adds the SQL and a link):
    the driver's error is the one described. psycopg2 messages often span several lines, and
    some errors have none at all.
    """
    cause = getattr(error, "orig", None) or error
    for line in str(cause).splitlines():
        if line.strip():
            return line.strip()
    return type(cause).__name__
