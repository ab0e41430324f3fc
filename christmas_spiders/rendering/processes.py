"""The browser's processes: find, kill and wait for them, and remove its folder.

A killed Chromium's helpers are re-parented to init, so the tree is collected at launch and
every process in it is killed by pid; a zombie counts as gone (only awaiting its reaping).
"""

from __future__ import annotations

import logging
import shutil
import time

import psutil

logger = logging.getLogger(__name__)

PROCESS_EXIT_SECONDS = 5.0


def running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def process_tree(roots: list[psutil.Process]) -> list[psutil.Process]:
    found: dict[int, psutil.Process] = {}
    for root in roots:
        if not running(root):
            continue
        found[root.pid] = root
        try:
            found.update((child.pid, child) for child in root.children(recursive=True))
        except psutil.NoSuchProcess:
            continue
    return list(found.values())


def kill(processes: list[psutil.Process]) -> None:
    for process in processes:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            continue


def wait_gone(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Wait until the processes are gone; a zombie counts as gone (it is only awaiting reaping,
    which its parent, or init, does)."""
    deadline = time.monotonic() + PROCESS_EXIT_SECONDS
    pending = [process for process in processes if running(process)]
    while pending and time.monotonic() < deadline:
        time.sleep(0.05)
        pending = [process for process in pending if running(process)]
    return pending


def remove_folder(path: str) -> None:
    try:
        shutil.rmtree(path)
    except OSError as error:
        logger.warning("could not remove the browser folder %s: %s", path, error)
