"""`make demo-up` (`python -m demo live`): the whole system, live, on the replica shops.

Shortened through the configuration: one shop, every year synced every 10 s, the shops moving
every 5 s. A price drop made at the replica must travel through a sync and the audit worker to
an alert line, and the product's page must show the new price; then SIGTERM stops it all,
leaving no process behind (every process it started carries a mark in its environment).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from .conftest import PROJECT_ROOT

OS = "ornament_shop_com"
MOVE = re.compile(
    r"^shop +\| Ornament Shop: (?P<name>.+): (?P<old>\$[\d.]+) → (?P<new>\$[\d.]+) \(price drop\);"
    r" its page: (?P<page>http://\S+)$",
    re.M,
)


def _wait(condition: Callable[[], Any], what: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(0.5)
    return value


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _marked(mark: str) -> list[psutil.Process]:
    """Live processes whose environment carries the mark (zombies have no environment)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("DEMO_LIVE_TEST_MARK") == mark:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _alerted(output: str) -> re.Match[str] | None:
    """A price drop made at the shop whose alert has arrived."""
    for move in MOVE.finditer(output):
        alert = f"alert     | Price drop: {move['name']} now {move['new']} (was {move['old']})"
        if alert in output:
            return move
    return None


def test_a_price_drop_travels_from_the_shop_to_an_alert_and_sigterm_stops_everything(
    embedded_data_dir: Path, tmp_path: Path
) -> None:
    mark = uuid.uuid4().hex
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("CHRISTMAS_", "DATABASE_", "REDIS_"))
        and name not in ("ENV", "PORT")
    }
    env.update(
        CHRISTMAS_DATA_DIR=str(embedded_data_dir),
        PORT=str(_free_port()),
        CHRISTMAS_AUDITOR_POLL_SECONDS="1",
        CHRISTMAS_SCHEDULE=json.dumps(
            {"vendors": [OS], "sync": {"interval": "10s", "spread": "10s"}}
        ),
        DEMO_LIVE_TEST_MARK=mark,
    )
    log_path = tmp_path / "demo-up.out"
    with log_path.open("w") as log:
        demo = subprocess.Popen(
            [sys.executable, "-m", "demo", "live", "--move-every", "5"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        move = _wait(
            lambda: _alerted(log_path.read_text()) or demo.poll() is not None,
            "an alert for a price drop made at the shop",
            300,
        )
        assert demo.poll() is None, log_path.read_text()[-5000:]
        with urllib.request.urlopen(move["page"], timeout=30) as page:
            assert move["new"] in page.read().decode()  # the offers table and the chart
        running = {process.pid for process in _marked(mark)}
        assert demo.pid in running and len(running) >= 8  # demo, replica, bin/up, Redis, 4 types
        demo.send_signal(signal.SIGTERM)
        status = demo.wait(120)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    output = log_path.read_text()
    assert status == 0, output[-5000:]
    assert "Traceback" not in output
    assert "up        | shops: hookedonhallmark_com at http://127.0.0.1:" in output
    assert re.search(
        rf"^auditor +\| .* journal: change \d+: {re.escape(move['name'])}: ", output, re.M
    )
    assert (
        "up        | stopped\n" in output and "demo      | stopped (bin/up exit status 0)" in output
    )
    assert _marked(mark) == [], "processes left behind"
    pid_file = embedded_data_dir / "postgres" / "postmaster.pid"
    _wait(lambda: not pid_file.exists(), "the embedded server to stop with its last user", 30)


def test_make_up_says_first_that_it_crawls_the_live_shops() -> None:
    """bin/up without a `vendors` configuration: its first lines name the live shops (and the
    missing contact), before anything starts; here the release then fails at once (no
    database on port 9), which ends it."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("CHRISTMAS_", "DATABASE_", "REDIS_")) and name not in ("ENV",)
    }
    env.update(
        DATABASE_URL="postgresql://postgres@127.0.0.1:9/none", REDIS_URL="redis://127.0.0.1:9"
    )
    result = subprocess.run(
        ["bin/up"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    lines = result.stdout.splitlines()
    assert result.returncode == 1, result.stdout + result.stderr
    assert lines[0].startswith(
        "up        | shops: the LIVE shops (https://www.hookedonhallmark.com, "
        "https://www.ornament-shop.com, https://www.hallmarkornaments.com)"
    ), result.stdout
    assert "`make demo-up` runs everything against the local replica" in lines[0]
    assert lines[1].startswith("up        | shops: contact_url is not set"), result.stdout
    assert "up        | the release command failed" in lines
