"""The embedded PostgreSQL: a fresh machine needs no database server of its own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psutil

from .conftest import PROJECT_ROOT

# 16 threads call embedded.start (and get_engine) at once, 20 rounds with a barrier before each;
# the answers are printed as JSON, then the process holds the server until its stdin closes.
_THREADS, _ROUNDS = 16, 20
_STARTS = f"""
import json, logging, sys, threading
from pathlib import Path
from christmas_spiders import config
from christmas_spiders.storage import embedded, get_engine
logging.basicConfig(level=logging.INFO)  # stderr
settings = config.load()
barrier = threading.Barrier({_THREADS})
urls, engines, errors = [], set(), []
def call():
    for _ in range({_ROUNDS}):
        barrier.wait()
        try:
            urls.append(embedded.start(Path(sys.argv[1])))
            engines.add(id(get_engine(settings)))
        except Exception as error:  # reported below, so the test names it
            errors.append(f"{{type(error).__name__}}: {{error}}")
threads = [threading.Thread(target=call) for _ in range({_THREADS})]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps({{"urls": urls, "engines": len(engines), "errors": errors}}), flush=True)
sys.stdin.read()
"""

_HOLD = """
import sys
import sqlalchemy as sa
from christmas_spiders import config
from christmas_spiders.storage import get_engine
engine = get_engine(config.load())
print("ready", flush=True)
sys.stdin.readline()
with engine.connect() as connection:
    print(connection.execute(sa.text("SELECT count(*) FROM vendors")).scalar(), flush=True)
"""


def _env(data_dir: Path) -> dict[str, str]:
    return {"CHRISTMAS_DATA_DIR": str(data_dir), "PATH": "/usr/bin:/bin"}


def _storage(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "christmas_spiders.storage", *args],
        cwd=PROJECT_ROOT,
        env=_env(data_dir),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _server_running(data_dir: Path) -> bool:
    pid_file = data_dir / "postgres" / "postmaster.pid"
    return pid_file.exists() and psutil.pid_exists(int(pid_file.read_text().split()[0]))


def _starts(data_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _STARTS, str(data_dir)],
        cwd=PROJECT_ROOT,
        env=_env(data_dir),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _handle_pids(data_dir: Path) -> list[int]:
    return json.loads((data_dir / "postgres" / ".handle_pids.json").read_text())


def test_threads_of_one_process_start_the_server_once(embedded_data_dir: Path) -> None:
    """Cold (a fresh data folder) in one process, then warm (the server running) in another:
    every call of every thread gets the same URL, and each process starts or joins it once."""
    cold = _starts(embedded_data_dir)
    try:
        answer = json.loads(cold.stdout.readline())
        assert answer["errors"] == []
        assert (len(answer["urls"]), answer["engines"]) == (_THREADS * _ROUNDS, 1)
        (url,) = set(answer["urls"])
        assert _handle_pids(embedded_data_dir) == [cold.pid]
        warm = _starts(embedded_data_dir)
        output, log = warm.communicate("", timeout=120)
        assert warm.returncode == 0, log
        assert json.loads(output) == {
            "urls": [url] * _THREADS * _ROUNDS,
            "engines": 1,
            "errors": [],
        }
        assert log.count("embedded PostgreSQL ready") == 1, log
        assert _handle_pids(embedded_data_dir) == [cold.pid]  # the warm one left, once
        _, log = cold.communicate("", timeout=120)
    finally:
        cold.kill()
    assert cold.returncode == 0, log
    assert log.count("embedded PostgreSQL ready") == 1, log
    assert "Traceback" not in log
    assert not _server_running(embedded_data_dir)


def test_upgrade_on_embedded_server_is_idempotent_and_stops_after(embedded_data_dir: Path) -> None:
    for command in ("upgrade", "upgrade", "check"):
        result = _storage(embedded_data_dir, command)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "embedded PostgreSQL ready" in result.stdout
    assert "schema is current" in result.stdout
    assert not _server_running(embedded_data_dir)


def test_server_is_shared_and_stops_with_the_last_process(embedded_data_dir: Path) -> None:
    assert _storage(embedded_data_dir, "upgrade").returncode == 0
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD],
        cwd=PROJECT_ROOT,
        env=_env(embedded_data_dir),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        # Another process joins and leaves: the holder's server must survive it.
        assert _storage(embedded_data_dir, "check").returncode == 0
        assert _server_running(embedded_data_dir)
        output, _ = holder.communicate("go\n", timeout=60)
    finally:
        holder.kill()
    assert output.strip() == "3"
    assert not _server_running(embedded_data_dir)


def test_dead_process_does_not_keep_the_server_alive(embedded_data_dir: Path) -> None:
    assert _storage(embedded_data_dir, "upgrade").returncode == 0
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    handles = embedded_data_dir / "postgres" / ".handle_pids.json"
    handles.write_text(json.dumps([int(dead.stdout)]))  # a crashed process left its pid
    assert _storage(embedded_data_dir, "check").returncode == 0
    assert not _server_running(embedded_data_dir)
