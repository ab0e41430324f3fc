"""One benchmark session: `Session` holds the services (bench/services.py), a working folder, the
replicas of the three shops (`tests.replica` as child processes, seed 1, one per size and
latency, started on first use), the detail tables the figures add, and whether the run is
`--quick` (the replica's small catalog instead of the full size). `standalone()` is the
`python -m bench.<script> [--quick]` entry of a single figure's script.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.report import Detail, log, render_details, rows_table, stdout_to_stderr
from bench.services import Services
from tests.replica.process import ReplicaProcess

FULL_SIZE = 20_000  # products per shop: the "large" replica
QUICK_SIZE = 60  # --quick: the replica's `small` catalog (every edge case still there)


class Session:
    """Services, the shared replica and measured runs of one `python -m bench` (or one script)."""

    def __init__(self, quick: bool = False, work: Path | None = None) -> None:
        self.quick = quick
        self.services = Services()
        self._work = None if work else tempfile.TemporaryDirectory(prefix="christmas-bench-")
        self.work = work or Path(self._work.name)
        self.work.mkdir(parents=True, exist_ok=True)
        self.details: list[Detail] = []
        self.cache: dict[Any, Any] = {}
        self._replicas: dict[tuple[int, int], ReplicaProcess] = {}

    @property
    def size(self) -> int:
        return QUICK_SIZE if self.quick else FULL_SIZE

    def scaled(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def replica(self, size: int | None = None, latency_ms: int = 0) -> ReplicaProcess:
        """A replica of `size` products per shop, started once per session."""
        key = (size or self.size, latency_ms)
        if key not in self._replicas:
            log(f"starting the replica: {key[0]:,} products per shop, latency {latency_ms} ms")
            self._replicas[key] = ReplicaProcess.start(
                seed=1, size=key[0], latency_ms=latency_ms, timeout=120
            )
        return self._replicas[key]

    def stop_replica(self, size: int | None = None, latency_ms: int = 0) -> None:
        process = self._replicas.pop((size or self.size, latency_ms), None)
        if process is not None:
            process.stop()

    def detail(self, figure: str, title: str, text: str) -> None:
        self.details.append(Detail(figure, title, text))

    def close(self) -> None:
        for process in self._replicas.values():
            process.stop()
        self._replicas.clear()
        self.services.close()
        if self._work is not None:
            self._work.cleanup()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def standalone(measure: Any, description: str, argv: Sequence[str] | None = None) -> None:
    """`python -m bench.<script> [--quick]`: one figure's rows and details, as Markdown."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes (keeps the script working)"
    )
    args = parser.parse_args(argv)
    with Session(quick=args.quick) as session:
        with stdout_to_stderr():
            rows = measure(session)
        print(rows_table(rows))
        if session.details:
            print()
            print(render_details(session.details))
