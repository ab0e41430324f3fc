"""What the scheduler asks for (``Crawl``) and what became of it (``Outcome``)."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Crawl:
    job_id: str
    vendor: str
    arguments: Mapping[str, str]  # spider arguments: {"year": "2019"}, {"product_id": "42"}
    budget: float  # seconds

    @property
    def key(self) -> str:
        """The same crawl is the same vendor with the same arguments."""
        return " ".join([self.vendor, *(f"{k}={v}" for k, v in sorted(self.arguments.items()))])


@dataclass(frozen=True)
class Outcome:
    crawl: Crawl
    status: str  # finished, failed, skipped (not started), or running (left to the workers)
    reason: str
    run_id: int | None = None
    exit_status: int | None = None
    duration: float = 0.0
    counters: Mapping[str, int] = field(default_factory=dict)


def describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"
