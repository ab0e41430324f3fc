"""The embedded PostgreSQL: a fresh machine needs no database server of its own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psutil

from .conftest import PROJECT_ROOT

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
