"""Child processes: the `scrapy crawl` command line, and stopping a child (real processes)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import psutil

from christmas_spiders.processes import crawl_command, stop_process

# A child that says it is ready once its SIGTERM handler is in place.
IGNORES_SIGTERM = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(600)\n"
)
# A child that stops only on a second SIGTERM, as a Scrapy crawl stops at once (uncleanly) on a
# second one: it says when it has its handler, and when the first SIGTERM arrived.
STOPS_ON_A_SECOND_SIGTERM = (
    "import signal, sys, time\n"
    "received = []\n"
    "def on_sigterm(signum, frame):\n"
    "    received.append(signum)\n"
    "    if len(received) > 1:\n"
    "        sys.exit(0)\n"
    "    print('first', flush=True)\n"
    "signal.signal(signal.SIGTERM, on_sigterm)\n"
    "print('ready', flush=True)\n"
    "while True:\n"
    "    time.sleep(600)\n"
)
# A child that starts a grandchild in its process group, then exits on SIGTERM.
LEAVES_A_GRANDCHILD = (
    "import subprocess, sys, time\n"
    "grandchild = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
    "print(grandchild.pid, flush=True)\n"
    "time.sleep(600)\n"
)


def start(script: str, **options: object) -> tuple[subprocess.Popen[str], str]:
    """The child, and the first line it printed (its pipe is closed then)."""
    popen = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, **options
    )
    assert popen.stdout is not None
    with popen.stdout:
        return popen, popen.stdout.readline().strip()


def test_crawl_command_puts_options_then_settings_then_spider_arguments() -> None:
    command = crawl_command(
        "ornament_shop_com", {"year": "2019"}, {"LOG_LEVEL": "INFO"}, ["--nolog"]
    )
    assert command == [
        sys.executable,
        "-m",
        "scrapy",
        "crawl",
        "ornament_shop_com",
        "--nolog",
        "-s",
        "LOG_LEVEL=INFO",
        "-a",
        "year=2019",
    ]
    assert crawl_command("x", settings=[("A", 1)]) == [*command[:4], "x", "-s", "A=1"]


def test_a_child_that_exits_on_sigterm_gives_its_own_status() -> None:
    popen = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    assert stop_process(popen, grace=60) == -signal.SIGTERM


def test_a_child_ignoring_sigterm_is_killed_after_the_grace_period() -> None:
    popen, ready = start(IGNORES_SIGTERM)
    assert ready == "ready"
    assert stop_process(popen, grace=0.5, name="the stubborn child") == -signal.SIGKILL


def test_a_child_signalled_already_gets_no_second_sigterm() -> None:
    popen = subprocess.Popen(
        [sys.executable, "-c", STOPS_ON_A_SECOND_SIGTERM], stdout=subprocess.PIPE, text=True
    )
    assert popen.stdout is not None
    with popen.stdout:
        assert popen.stdout.readline().strip() == "ready"
        popen.send_signal(signal.SIGTERM)
        assert popen.stdout.readline().strip() == "first"
        # A second SIGTERM would end it with status 0; none comes, so the grace runs out.
        assert stop_process(popen, grace=0.5, signalled=True) == -signal.SIGKILL


def test_with_group_what_the_child_left_behind_is_killed_too() -> None:
    popen, pid = start(LEAVES_A_GRANDCHILD, start_new_session=True)
    grandchild = psutil.Process(int(pid))
    assert stop_process(popen, grace=60, group=True) == -signal.SIGTERM
    deadline = time.monotonic() + 60
    while not dead(grandchild):
        assert time.monotonic() < deadline, "the grandchild outlived the stop"
        time.sleep(0.05)


def dead(process: psutil.Process) -> bool:
    """Gone, or a zombie (killed; its new parent may not reap it at once)."""
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_child_that_has_exited_is_only_reaped() -> None:
    popen = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    popen.wait()
    assert stop_process(popen, grace=60, group=True) == 3
