"""Database writes retried while their failure is passing (christmas_spiders.retrying, tenacity).

* ``is_transient`` — a lost connection, a deadlock or a serialization failure: the same write
  may well succeed a moment later. Anything else (a bad value, a constraint) would fail again.
* ``write_retrying`` — a crawl's writes (the store's batches, the run's counts):
  ``db_write_attempts`` tries, waits of ``db_retry_backoff_seconds`` doubling, transient errors
  only, each retry logged as "<what> (attempt 1 of 3), retrying in 0.5 s: <error>"; the last
  error is raised. The waits are plain sleeps: a crawl that is stopping still stores its items.
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


def write_retrying(
    config: Config, what: str, on_retry: Callable[[], None] | None = None
) -> Retrying:
    """Retrying for one write; `what` names it in the log, `on_retry` counts the retries."""
    attempts = config.db_write_attempts

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
        wait=backoff(config.db_retry_backoff_seconds),
        before_sleep=before_sleep,
        reraise=True,
    )
