"""pytest fixtures serving the replica shops from a subprocess.

Register with `pytest_plugins = ["tests.replica.pytest_plugin"]` in tests/conftest.py.

* `replica` (session): the small catalog of seed `REPLICA_SEED` on three free ports. Tests that
  change it through the control API call `replica.reset()` when done (or use
  `replica_reset`).
* `replica_reset` (function): the session replica, reset after the test.
* `start_replica` (function): a factory for private instances, e.g.
  `start_replica(size="large")`, `start_replica(latency_ms=50, throttle_every=3)`,
  `start_replica(jsonld=True)`; each is stopped at the end of the test. Options are those of
  `tests.replica.process.command_line`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .client import Replica
from .process import ReplicaProcess

REPLICA_SEED = 1
REPLICA_SIZE = "small"


@pytest.fixture(scope="session")
def replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replica]:
    """The three shops, small catalog, fixed seed, for the whole session."""
    log_path = tmp_path_factory.mktemp("replica") / "replica.log"
    process = ReplicaProcess.start(seed=REPLICA_SEED, size=REPLICA_SIZE, log_path=log_path)
    try:
        yield Replica.attach(process)
    finally:
        process.stop()


@pytest.fixture
def replica_reset(replica: Replica) -> Iterator[Replica]:
    """The session replica; overrides, throttling, latency and counts are reset afterwards."""
    replica.reset()
    try:
        yield replica
    finally:
        replica.reset()


@pytest.fixture
def start_replica(tmp_path: Path) -> Iterator[Callable[..., Replica]]:
    """Start private replicas with other options; all are stopped after the test."""
    started: list[ReplicaProcess] = []

    def start(**options: Any) -> Replica:
        options.setdefault("seed", REPLICA_SEED)
        options.setdefault("size", REPLICA_SIZE)
        log_path = tmp_path / f"replica-{len(started)}.log"
        process = ReplicaProcess.start(log_path=log_path, **options)
        started.append(process)
        return Replica.attach(process)

    try:
        yield start
    finally:
        for process in started:
            process.stop()
