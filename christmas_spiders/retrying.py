"""Retrying with backoff, on tenacity: the parts every retry loop of ours shares.

Each retry loop is a ``tenacity.Retrying`` that says what it retries (``retry=``), how many
times (``stop=``; forever by default) and what it logs (``before_sleep=``: the failed attempt's
number and error, and the coming wait, ``state.upcoming_sleep``). This module adds:

* ``backoff(first, maximum, jitter=False)`` — the waits: first, 2×first, 4×first … capped at
  ``maximum``; with ``jitter`` each is drawn from 80–100 % of that, so that processes which lost
  the same server do not all come back at the same instant.
* ``interruptible(event)`` — the sleep between attempts for a process that stops on SIGTERM: it
  ends as soon as ``event`` is set and raises ``Interrupted``, so no further attempt is made.
* ``after_failure(error, retrying, attempt)`` — retries `attempt` as though a first try had just
  failed with `error`: a connection that was just lost is reopened after the first wait.
* ``failure(state)`` — the error of the attempt that failed, for ``before_sleep``.

A leaf: tenacity and the standard library only.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable
from typing import TypeVar

import tenacity

T = TypeVar("T")


class Interrupted(Exception):
    """The process is stopping (its stop event is set): unwind instead of trying again."""


def backoff(
    first: float, maximum: float = math.inf, *, jitter: bool = False
) -> Callable[[tenacity.RetryCallState], float]:
    """Waits of first × 2^(failures − 1), at most `maximum`; with `jitter`, 80–100 % of that."""
    exponential = tenacity.wait_exponential(multiplier=first, max=maximum)
    if not jitter:
        return exponential
    return lambda state: exponential(state) * random.uniform(0.8, 1.0)


def interruptible(event: threading.Event) -> Callable[[float], None]:
    """A sleep that raises Interrupted as soon as `event` is set (at once if it is set already)."""

    def sleep(seconds: float) -> None:
        if event.wait(seconds):
            raise Interrupted

    return sleep


def after_failure(
    error: BaseException | None, retrying: tenacity.Retrying, attempt: Callable[[], T]
) -> T:
    """`retrying(attempt)`, with `error` (when not None) counted as its first failed try."""
    pending = [error] if error is not None else []

    def call() -> T:
        if pending:
            raise pending.pop()
        return attempt()

    return retrying(call)


def failure(state: tenacity.RetryCallState) -> BaseException:
    """The error of the attempt that just failed."""
    assert state.outcome is not None and state.outcome.failed
    error = state.outcome.exception()
    assert error is not None
    return error
