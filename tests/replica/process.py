"""Running the replica CLI as a subprocess, for tests, benchmarks and the demo.

    with ReplicaProcess.start(seed=1, size="small") as process:
        process.base_urls["ornament_shop_com"]  # 'http://127.0.0.1:41023'

The process is started with `python -m tests.replica`, its ready line is read from stdout,
and `stop()` sends SIGTERM (then SIGKILL after a grace period).
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from christmas_spiders.processes import stop_process

from .models import VENDORS

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def command_line(
    *,
    seed: int = 1,
    size: int | str = "small",
    host: str = "127.0.0.1",
    ports: dict[str, int] | None = None,
    latency_ms: int = 0,
    jsonld: bool = False,
    throttle_every: int | None = None,
    throttle_burst: int = 0,
    throttle_status: int = 429,
    retry_after: int = 1,
    access_log: bool = False,
    watch_stdin: bool = True,
) -> list[str]:
    """The argv of `python -m tests.replica` for these options."""
    ports = ports or {}
    argv = [sys.executable, "-m", "tests.replica", "--seed", str(seed), "--size", str(size)]
    argv += ["--host", host]
    argv += ["--hooh-port", str(ports.get(VENDORS[0], 0))]
    argv += ["--os-port", str(ports.get(VENDORS[1], 0))]
    argv += ["--ho-port", str(ports.get(VENDORS[2], 0))]
    argv += ["--latency-ms", str(latency_ms)]
    if jsonld:
        argv.append("--jsonld")
    if throttle_every is not None:
        argv += ["--throttle-every", str(throttle_every)]
    if throttle_burst:
        argv += ["--throttle-burst", str(throttle_burst)]
    argv += ["--throttle-status", str(throttle_status), "--retry-after", str(retry_after)]
    if access_log:
        argv.append("--access-log")
    if watch_stdin:
        argv.append("--watch-stdin")
    return argv


@dataclass
class ReplicaProcess:
    """A running `python -m tests.replica`."""

    popen: subprocess.Popen[str]
    base_urls: dict[str, str]
    log_path: Path
    options: dict[str, Any] = field(default_factory=dict)
    _own_log: bool = False

    @classmethod
    def start(
        cls, *, log_path: Path | None = None, timeout: float = 60.0, **options: Any
    ) -> ReplicaProcess:
        """Start a replica with `command_line(**options)`; wait for its ready line."""
        own_log = log_path is None
        if log_path is None:
            handle, name = tempfile.mkstemp(prefix="replica-", suffix=".log")
            os.close(handle)
            log_path = Path(name)
        environ = dict(os.environ)
        environ["PYTHONPATH"] = os.pathsep.join(
            [str(PROJECT_ROOT), *filter(None, [environ.get("PYTHONPATH")])]
        )
        with open(log_path, "w", encoding="utf-8") as log:
            popen = subprocess.Popen(
                command_line(**options),
                cwd=PROJECT_ROOT,
                env=environ,
                stdin=subprocess.PIPE,  # closed by stop(); --watch-stdin exits on EOF
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        try:
            base_urls = _read_ready_line(popen, timeout, log_path)
        except BaseException:
            _terminate(popen)
            raise
        return cls(popen, base_urls, log_path, options, own_log)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self, grace: float = 10.0) -> int:
        """SIGTERM, wait, SIGKILL if needed; the exit status."""
        status = _terminate(self.popen, grace)
        if self._own_log and status == 0:
            self.log_path.unlink(missing_ok=True)
        return status

    def __enter__(self) -> ReplicaProcess:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _read_ready_line(
    popen: subprocess.Popen[str], timeout: float, log_path: Path
) -> dict[str, str]:
    stdout: IO[str] | None = popen.stdout
    assert stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if selector.select(timeout=0.2):
                line = stdout.readline()
                if line:
                    origins = json.loads(line)
                    if set(origins) != set(VENDORS):
                        raise RuntimeError(f"unexpected ready line from the replica: {line!r}")
                    return origins
            if popen.poll() is not None:
                break
    tail = log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
    raise RuntimeError(
        f"the replica did not report ready within {timeout:.0f}s "
        f"(exit status {popen.poll()}); its log ends with:\n{tail}"
    )


def _terminate(popen: subprocess.Popen[str], grace: float = 10.0) -> int:
    if popen.stdin is not None:
        popen.stdin.close()  # --watch-stdin: it exits on EOF too
    status = stop_process(popen, grace, name="the replica")
    if popen.stdout is not None:
        popen.stdout.close()
    return status
