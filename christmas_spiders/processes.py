"""Child processes of ours: the `scrapy crawl` command line, and how a child is stopped.

* ``crawl_command`` — ``python -m scrapy crawl <spider> [options] -s NAME=VALUE… -a NAME=VALUE…``,
  run in the project folder (``PROJECT_ROOT``): the scheduler's crawls, the demo, the
  benchmarks and the tests all build it here.
* ``stop_process`` — SIGTERM, ``grace`` seconds to exit, then SIGKILL; with ``group=True`` (a
  child started with ``start_new_session=True``) whatever the child left behind in its process
  group, such as a browser, is killed too once the child is gone. With ``signalled=True`` the
  SIGTERM was sent already (several children stopped at once): a second one would make a
  Scrapy crawl stop at once, uncleanly, so none is sent.

A leaf: standard library only, so the demo, benchmarks and the replica can use it cheaply.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterable, Mapping
from typing import Any

logger = logging.getLogger(__name__)


def crawl_command(
    spider: str,
    arguments: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
    options: Iterable[str] = (),
) -> list[str]:
    """The argv of one `scrapy crawl`: spider arguments as ``-a``, Scrapy settings as ``-s``,
    `options` (other command-line options, such as ``--loglevel``) as given."""
    pairs = settings.items() if isinstance(settings, Mapping) else (settings or ())
    command = [sys.executable, "-m", "scrapy", "crawl", spider, *options]
    for name, value in pairs:
        command += ["-s", f"{name}={value}"]
    for name, value in (arguments or {}).items():
        command += ["-a", f"{name}={value}"]
    return command


def stop_process(
    popen: subprocess.Popen[Any],
    grace: float,
    *,
    group: bool = False,
    name: str | None = None,
    signalled: bool = False,
) -> int:
    """Stop the child: SIGTERM, up to `grace` seconds, then SIGKILL; its exit status.

    With `group`, the child leads a process group of its own (``start_new_session=True``): the
    SIGKILL goes to the whole group, and so does a last one once the child has exited, for
    what it left behind. A child that has exited already is only reaped (and its group
    cleared). `name`, when given, is how the warning about a kill names the child. With
    `signalled`, the caller sent the SIGTERM already: only the wait and the kill are left.
    """
    if popen.poll() is None:
        if not signalled:
            with contextlib.suppress(ProcessLookupError):
                popen.send_signal(signal.SIGTERM)
        try:
            popen.wait(grace)
        except subprocess.TimeoutExpired:
            logger.warning(
                "%s did not stop within %.0f s of SIGTERM: killed", name or popen.args, grace
            )
            _kill(popen, group)
            popen.wait()
    if group:
        _kill(popen, group)  # what the child left behind, if anything
    return popen.returncode


def _kill(popen: subprocess.Popen[Any], group: bool) -> None:
    if group:
        # The group outlives its leader while a member lives; an empty group is gone.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, signal.SIGKILL)
    else:
        with contextlib.suppress(ProcessLookupError):
            popen.kill()
