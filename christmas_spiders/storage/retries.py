"""Database writes retried while their failure is passing (christmas_spiders.retrying, tenacity).

* ``is_transient`` — a lost connection, a deadlock or a serialization failure: the same write
  may well succeed a moment later. Anything else (a bad value, a constraint) would fail again.
* ``transient_retrying`` — one write (or one transaction) tried `attempts` times, waits of
  `first_wait` doubling, transient errors only, each retry logged as "<what> (attempt 1 of 3),
  retrying in 0.5 s: <error>"; the last error is raised. The waits are plain sleeps: a crawl
  that is stopping still stores its items. The catalog's relink retries its years so.
* ``write_retrying`` — that, for a crawl's writes (the store's batches, the counts of what the
  run read): ``db_write_attempts`` tries, waits from ``db_retry_backoff_seconds``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.exc import DBAPIError, OperationalError
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from christmas_spiders.config import Config
from christmas_spiders.errors import one_line
from christmas_spiders.retrying import backoff, failure

logger = logging.getLogger(__name__)

CONFLICT_PGCODES = frozenset({"40P01", "40001"})  # a deadlock, a serialization failure


def is_transient(error: BaseException) -> bool:
    return isinstance(error, DBAPIError) and (
        isinstance(error, OperationalError)
        or error.connection_invalidated
        or getattr(error.orig, "pgcode", None) in CONFLICT_PGCODES
    )


def transient_retrying(
    what: str, attempts: int, first_wait: float, on_retry: Callable[[], None] | None = None
) -> Retrying:
    """Retrying for one write; `what` names it in the log, `on_retry` counts the retries."""

    def before_sleep(state: RetryCallState) -> None:
        logger.warning(
            "%s (attempt %d of %d), retrying in %.1f s: %s",
            what,
            state.attempt_number,
            attempts,
            state.upcoming_sleep,
            one_line(failure(state)),
        )
        if on_retry is not None:
            on_retry()

    return Retrying(
        retry=retry_if_exception(is_transient),
        stop=stop_after_attempt(attempts),
        wait=backoff(first_wait),
        before_sleep=before_sleep,
        reraise=True,
    )


def write_retrying(
    config: Config, what: str, on_retry: Callable[[], None] | None = None
) -> Retrying:
    """Retrying for one write of a crawl, as configured (module doc)."""
    return transient_retrying(
        what, config.db_write_attempts, config.db_retry_backoff_seconds, on_retry
    )
