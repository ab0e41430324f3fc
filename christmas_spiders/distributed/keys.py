"""Every Redis key of the project, built in one place (docs/scale-out.md lists them).

A crawl run is ``<vendor>:<crawl_runs.id>``; its keys share the stem
``<prefix>:run:<vendor>:<run id>`` and all expire together (``redis_run_ttl_seconds``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RunKeys:
    prefix: str
    vendor: str
    run_id: int

    @property
    def name(self) -> str:
        """How a run is named in logs and announcements: ``<vendor>:<run id>``."""
        return f"{self.vendor}:{self.run_id}"

    @property
    def stem(self) -> str:
        return f"{self.prefix}:run:{self.vendor}:{self.run_id}"

    @property
    def requests(self) -> str:
        """Sorted set: the shared request queue (score = -priority)."""
        return f"{self.stem}:requests"

    @property
    def seen(self) -> str:
        """Set: fingerprints of every request scheduled in this run (the dedup filter)."""
        return f"{self.stem}:seen"

    @property
    def workers(self) -> str:
        """Sorted set: worker id → time of its last report (Redis clock, ms)."""
        return f"{self.stem}:workers"

    @property
    def busy(self) -> str:
        """Set: workers that hold requests (popped, downloading or being parsed)."""
        return f"{self.stem}:busy"

    @property
    def leases(self) -> str:
        """Sorted set: requests taken from the queue, lease id ``<worker>#<n>`` → expiry (Redis
        clock, ms); a lease leaves it when its worker is done with the request."""
        return f"{self.stem}:leases"

    @property
    def leased(self) -> str:
        """Hash: lease id → ``<queue score> <request JSON>``, to put the request back."""
        return f"{self.stem}:leased"

    @property
    def state(self) -> str:
        """Hash: status (running/closed), arguments, years, product_gone, lost, reclaimed,
        seeded."""
        return f"{self.stem}:state"

    def all(self) -> tuple[str, ...]:
        """The run's keys, in the order the Lua scripts of ``shared_run`` expect them."""
        return (
            self.requests,
            self.seen,
            self.workers,
            self.busy,
            self.state,
            self.leases,
            self.leased,
        )


def announcements(prefix: str) -> str:
    """Hash: ``<vendor>:<run id>`` → JSON ``{"vendor", "run_id"}`` of every run open to workers."""
    return f"{prefix}:runs"


def announcement_channel(prefix: str) -> str:
    """Pub/sub channel: a message wakes the standing workers (the hash is the truth)."""
    return f"{prefix}:runs:announced"


def year_link(prefix: str, vendor: str, year: int) -> str:
    """String: JSON list of the category URLs of one year of one shop (the 2020 key shape)."""
    return f"{prefix}:cache:integration:{vendor}:links:year:{year}"


def shop_leases(prefix: str, vendor: str) -> str:
    """Sorted set: concurrency leases on a shop, lease id → expiry (Redis clock, ms)."""
    return f"{prefix}:shop:{vendor}:leases"


def shop_bucket(prefix: str, vendor: str) -> str:
    """Hash: the shop's token bucket, ``tokens`` and ``at`` (Redis clock, ms)."""
    return f"{prefix}:shop:{vendor}:bucket"
