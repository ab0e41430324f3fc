"""Run one command and account for its whole process tree.

    python -m bench.procmon REPORT.json -- COMMAND [ARG...]

The wrapper makes itself a child subreaper (Linux ``PR_SET_CHILD_SUBREAPER``), so every
descendant of COMMAND — chromedriver, Chromium and its helpers included, even those orphaned
when their parent dies — ends up reaped by this process. CPU seconds then come from the OS
accounting, ``getrusage(RUSAGE_CHILDREN)``, which covers every reaped descendant and nothing
of the wrapper itself. Memory is sampled: every ``--interval`` seconds the resident set (RSS)
and proportional set (PSS: shared pages split between the processes sharing them, which is how
a container's memory limit sees them) of every live descendant are summed; the report holds the
peaks, split into the command's own process and everything it started.

COMMAND's stdout and stderr are inherited; its exit status is in the report and is also the
wrapper's. SIGTERM and SIGINT are forwarded to COMMAND.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

PR_SET_CHILD_SUBREAPER = 36
ORPHAN_GRACE_SECONDS = 10.0


def _become_subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _memory(process: psutil.Process, with_pss: bool) -> tuple[int, int]:
    """(rss, pss) in bytes; pss is 0 when not asked for or unreadable."""
    if with_pss:
        try:
            info = process.memory_full_info()
            return info.rss, getattr(info, "pss", 0)
        except psutil.AccessDenied:
            pass
    return process.memory_info().rss, 0


class Sampler:
    """Peak memory of a process tree, sampled."""

    def __init__(self, root_pid: int, me: psutil.Process) -> None:
        self.root_pid = root_pid
        self.me = me
        self.peak_rss = self.peak_pss = 0
        self.peak_main_rss = self.peak_main_pss = 0
        self.peak_others_rss = self.peak_others_pss = 0
        self.peak_processes = 0
        self.samples = 0
        self.timeline: list[tuple[float, int]] = []  # (seconds, tree RSS), one per second

    def sample(self, with_pss: bool, now: float) -> None:
        rss = pss = main_rss = main_pss = 0
        processes = 0
        try:
            tree = self.me.children(recursive=True)
        except psutil.Error:
            return
        for process in tree:
            try:
                one_rss, one_pss = _memory(process, with_pss)
            except psutil.Error:
                continue
            processes += 1
            rss += one_rss
            pss += one_pss
            if process.pid == self.root_pid:
                main_rss, main_pss = one_rss, one_pss
        self.samples += 1
        self.peak_processes = max(self.peak_processes, processes)
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_main_rss = max(self.peak_main_rss, main_rss)
        self.peak_others_rss = max(self.peak_others_rss, rss - main_rss)
        if with_pss:
            self.peak_pss = max(self.peak_pss, pss)
            self.peak_main_pss = max(self.peak_main_pss, main_pss)
            self.peak_others_pss = max(self.peak_others_pss, pss - main_pss)
        if not self.timeline or now - self.timeline[-1][0] >= 1.0:
            self.timeline.append((round(now, 1), rss))


def run(command: list[str], interval: float = 0.1, pss_every: int = 5) -> dict:
    """Run `command` to its end (and its descendants to theirs); the report as a dict."""
    subreaper = _become_subreaper()
    me = psutil.Process()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.monotonic()
    child = subprocess.Popen(command)

    def forward(number: int, frame: object) -> None:
        if child.poll() is None:
            child.send_signal(number)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    sampler = Sampler(child.pid, me)
    count = 0
    try:
        while child.poll() is None:
            sampler.sample(with_pss=count % pss_every == 0, now=time.monotonic() - began)
            count += 1
            time.sleep(interval)
        wall = time.monotonic() - began
        # Orphaned descendants now belong to us: let them finish, then reap them.
        deadline = time.monotonic() + ORPHAN_GRACE_SECONDS
        killed = 0
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid:
                continue
            if time.monotonic() > deadline:
                for process in me.children(recursive=True):
                    try:
                        process.kill()
                        killed += 1
                    except psutil.Error:
                        pass
                deadline = float("inf")
            sampler.sample(with_pss=False, now=time.monotonic() - began)
            time.sleep(interval)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "command": command,
        "exit_status": child.returncode,
        "wall_seconds": round(wall, 3),
        "cpu_user_seconds": round(after.ru_utime - before.ru_utime, 3),
        "cpu_system_seconds": round(after.ru_stime - before.ru_stime, 3),
        "cpu_seconds": round(
            (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 3
        ),
        "peak_rss_bytes": sampler.peak_rss,
        "peak_pss_bytes": sampler.peak_pss,
        "peak_main_rss_bytes": sampler.peak_main_rss,
        "peak_main_pss_bytes": sampler.peak_main_pss,
        "peak_others_rss_bytes": sampler.peak_others_rss,
        "peak_others_pss_bytes": sampler.peak_others_pss,
        "peak_processes": sampler.peak_processes,
        "samples": sampler.samples,
        "timeline": sampler.timeline,
        "subreaper": subreaper,
        "orphans_killed": killed,
    }


def main() -> None:
    arguments = sys.argv[1:]
    if len(arguments) < 3 or arguments[1] != "--":
        sys.exit("usage: python -m bench.procmon REPORT.json -- COMMAND [ARG...]")
    report = run(arguments[2:])
    Path(arguments[0]).write_text(json.dumps(report, indent=1))
    sys.exit(report["exit_status"] if report["exit_status"] >= 0 else 1)


if __name__ == "__main__":
    main()
