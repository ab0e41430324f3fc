"""The first hour of a new user (issue #20): what a newcomer's first commands run into.

* `flask --app webapi run` stopped with SIGTERM stops the embedded PostgreSQL it was the last
  user of (it used to die without leaving the server's handle list).
* Without the project's packages, a command says in one sentence what to do, instead of a
  traceback or Flask's "No such command 'keys'".
* The crawler's User-Agent names the operator's contact from configuration; the default
  names nobody else's.
"""

from __future__ import annotations

import json
import logging
import os
import re
import selectors
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
from scrapy.utils.test import get_crawler

from christmas_spiders import config
from christmas_spiders.config.keys import CONTACT_URL_UNSET
from christmas_spiders.spiders.ornament_shop_com import OrnamentShopSpider

from .conftest import PROJECT_ROOT


def _wait(condition: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(0.1)
    return value


def _bare_env(**values: str) -> dict[str, str]:
    """This environment without the project's own settings (no DATABASE_URL: embedded)."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("CHRISTMAS_", "DATABASE_", "REDIS_", "FLASK_")) and name != "ENV"
    }
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(values)
    return env


# -- SIGTERM to `flask run` ------------------------------------------------------------------------


def _read_line(stream: Any, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
    """The first match of `pattern` in what `stream` has written (all of it is in the message).

    Read from the file descriptor, not through the text wrapper: the wrapper may hold several
    lines in its buffer while select() says there is nothing more to read."""
    seen = ""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(stream.fileno(), selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(timeout=0.5):
                continue
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                break
            seen += chunk.decode(errors="replace")
            if match := pattern.search(seen):
                return match
    raise AssertionError(f"no line matching {pattern.pattern!r}; output:\n{seen}")


def test_sigterm_to_flask_run_stops_the_embedded_server_it_was_the_last_user_of(
    embedded_data_dir: Path,
) -> None:
    env = _bare_env(CHRISTMAS_DATA_DIR=str(embedded_data_dir))
    upgrade = subprocess.run(
        [sys.executable, "-m", "christmas_spiders.storage", "upgrade"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    pgdata = embedded_data_dir / "postgres"
    flask = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "webapi", "run", "--port", "0"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        port = _read_line(flask.stdout, re.compile(r"Running on http://127\.0\.0\.1:(\d+)"), 90)[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30) as answer:
            assert json.loads(answer.read())["status"] == "ok"
        postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
        assert json.loads((pgdata / ".handle_pids.json").read_text()) == [flask.pid]
        flask.send_signal(signal.SIGTERM)
        output, _ = flask.communicate(timeout=60)
    finally:
        if flask.poll() is None:
            flask.kill()
            flask.wait()
        flask.stdout.close()  # also when a check failed: no pipe left for the GC to warn about
    assert flask.returncode == 128 + signal.SIGTERM, output
    assert "Traceback" not in output, output
    assert json.loads((pgdata / ".handle_pids.json").read_text()) == []
    # The last user stopped the server: its pid file goes (the postmaster may linger as a
    # zombie that this container's init does not reap, so its pid is not the test).
    _wait(lambda: not (pgdata / "postmaster.pid").exists(), "the embedded server to stop")
    assert not psutil.pid_exists(postmaster) or (
        psutil.Process(postmaster).status() == psutil.STATUS_ZOMBIE
    )


# -- without the project's packages ---------------------------------------------------------------

SETUP_SENTENCE = re.compile(
    r"^project_christmas: \S+ lacks the project's packages \([a-z0-9, ]+\): run `make setup`, "
    r"then `\. \.venv/bin/activate` and run the command again \(or run it as "
    r"\.venv/bin/<command>\)\.\n\Z"
)


def test_a_python_without_the_projects_packages_says_in_one_sentence_what_to_do(
    tmp_path: Path,
) -> None:
    """A real interpreter without them (a bare virtual environment, as a system Python)."""
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    for command in (["scheduler.py", "list"], ["-m", "christmas_spiders.storage", "upgrade"]):
        result = subprocess.run(
            [str(bare / "bin" / "python"), *command],
            cwd=PROJECT_ROOT,
            env=_bare_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert (result.returncode, result.stdout) == (1, ""), result.stderr
        assert SETUP_SENTENCE.match(result.stderr), result.stderr


def test_flask_keys_without_the_projects_packages_names_the_cause_not_a_missing_command() -> None:
    """Flask installed, the project's other packages not (the issue's `No such command
    'keys'`): the app factory cannot import, and that is what the user reads."""
    blocked = "import sys; sys.modules['apscheduler'] = sys.modules['marshmallow'] = None; "
    run_flask = "from flask.cli import main; sys.argv[0] = 'flask'; main()"
    result = subprocess.run(
        [sys.executable, "-c", blocked + run_flask, "--app", "webapi", "keys", "list"],
        cwd=PROJECT_ROOT,
        env=_bare_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout) == (1, ""), result.stderr
    assert SETUP_SENTENCE.match(result.stderr), result.stderr
    assert "(marshmallow, apscheduler)" in result.stderr


# -- the User-Agent's contact ---------------------------------------------------------------------


def _config(**values: str) -> config.Config:
    return config.load(
        {"ENV": "", "CONFIG_PATH": str(PROJECT_ROOT / "config/default.json"), **values}
    )


def test_the_default_contact_names_nobody_and_says_it_is_not_configured() -> None:
    agent = _config().user_agent
    assert agent == f"project_christmas/0.1 (+{CONTACT_URL_UNSET})"
    assert CONTACT_URL_UNSET.split("/")[2].endswith(".invalid")  # RFC 2606: nobody's domain
    assert _config(CHRISTMAS_CONTACT_URL="mailto:crawl@example.org").user_agent == (
        "project_christmas/0.1 (+mailto:crawl@example.org)"
    )


# The settings a crawl gets: the project's module, then the ProjectConfig add-on, as Scrapy
# applies them when it builds a crawler (`scrapy settings` does not run add-ons).
_CRAWL_USER_AGENT = (
    "from scrapy.addons import AddonManager; from scrapy.settings import Settings; "
    "s = Settings(); s.setmodule('christmas_spiders.settings', priority='project'); "
    "AddonManager.load_pre_crawler_settings(s); print(s['USER_AGENT'])"
)


def _scrapy_settings(**values: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _CRAWL_USER_AGENT],
        cwd=PROJECT_ROOT,
        env=_bare_env(**values),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_crawler_sends_the_configured_contact_and_refuses_a_bad_one() -> None:
    sent = _scrapy_settings(CHRISTMAS_CONTACT_URL="https://example.org/our-crawler")
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout == "project_christmas/0.1 (+https://example.org/our-crawler)\n"
    bad = _scrapy_settings(CHRISTMAS_CONTACT_URL="call Bob")
    assert bad.returncode == 2  # a configuration error, as for every command
    assert bad.stderr == (
        "configuration error: CHRISTMAS_CONTACT_URL must be an http(s):// URL or a mailto: "
        "address, not 'call Bob'.\n"
    )


@pytest.mark.parametrize(
    ("contact", "base_url", "warned"),
    [
        ({}, None, True),  # a live shop, nobody named
        ({"CHRISTMAS_CONTACT_URL": "mailto:crawl@example.org"}, None, False),
        ({}, "http://127.0.0.1:8002", False),  # a replica or mirror
    ],
)
def test_a_crawl_of_a_live_shop_without_a_contact_warns(
    contact: dict[str, str], base_url: str | None, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    crawler = get_crawler(OrnamentShopSpider, {"CHRISTMAS_CONFIG": _config(**contact)})
    arguments = {"year": "1998"} | ({"base_url": base_url} if base_url else {})
    with caplog.at_level(logging.WARNING):
        OrnamentShopSpider.from_crawler(crawler, **arguments)
    assert ("contact_url is not set" in caplog.text) is warned, caplog.text
