"""The README's commands work as written (issue #20).

Every command in a ```sh block of README.md and docs/*.md is written for a shell where
`. .venv/bin/activate` has run (the README says so once): none goes through `.venv/bin/`, each
program is found in such a shell, each `make` target exists, each `python -m` module and
`python FILE` is there. Then a bash script made of the README's commands themselves, read from
the files at test time, runs in an activated shell whose PATH does not hold the venv: the
README's "look at it" block (flask run in the background, a key, the API) and the
documented lines for the schema, a crawl of a replica, and the scheduler's jobs. Only the
replica's URL and the web server's port are put in, as the README's own words allow.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
from importlib.util import find_spec
from pathlib import Path

from .conftest import PROJECT_ROOT
from .replica.client import Replica

DOCUMENTS = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
FENCE = re.compile(
    r"^(?:<!-- (?P<note>[^\n]*) -->\n)?```(?:sh|bash|shell)\n(?P<body>.*?)^```", re.M | re.S
)
RUNS_THIS_BLOCK = "tests/test_readme.py runs this block"
# Documented lines the script runs too: (file, the line exactly as written, up to its comment).
LINES = [
    ("docs/api.md", "python -m christmas_spiders.storage upgrade"),
    ("README.md", "scrapy crawl ornament_shop_com -a base_url=http://127.0.0.1:8002"),
    ("docs/scheduler.md", "python scheduler.py list"),
]
# Programs of the deployer's own machine, not of this project's shell.
ELSEWHERE = {"heroku"}


def _blocks(path: Path) -> list[tuple[str | None, list[str]]]:
    """Each sh block of the file: its note (the HTML comment above it) and its commands
    (continued lines and quotes across lines joined; blank and comment lines left out)."""
    blocks = []
    for match in FENCE.finditer(path.read_text()):
        commands, pending = [], ""
        for line in match["body"].replace("\\\n", " ").splitlines():
            pending = f"{pending}\n{line}" if pending else line
            try:
                shlex.split(pending, comments=True)
            except ValueError:
                continue  # a quote still open: the command goes on
            if pending.strip() and not pending.lstrip().startswith("#"):
                commands.append(pending)
            pending = ""
        blocks.append((match["note"], commands))
    return blocks


def _program(line: str) -> str:
    """The program a command line runs: after `NAME=value` words, inside a `$(…)`."""
    words = shlex.split(line, comments=True)
    while words and re.match(r"^[A-Za-z_]\w*=", words[0]) and not words[0].count("$("):
        words.pop(0)
    first = words[0]
    return first.split("$(", 1)[1] if "$(" in first else first


def _activated_env(**values: str) -> dict[str, str]:
    """A shell's environment before activation: no venv on PATH, none of our settings."""
    venv_bin = str(PROJECT_ROOT / ".venv" / "bin")
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("CHRISTMAS_", "DATABASE_", "REDIS_", "FLASK_", "VIRTUAL_ENV"))
        and name not in ("ENV", "PYTHONPATH")
    }
    path = [part for part in env.get("PATH", "/usr/bin:/bin").split(":") if part != venv_bin]
    env["PATH"] = ":".join(path)
    env.update(values)
    return env


def test_every_documented_command_is_written_for_the_activated_shell() -> None:
    commands = [
        (path.relative_to(PROJECT_ROOT), line)
        for path in DOCUMENTS
        for _, lines in _blocks(path)
        for line in lines
    ]
    assert len(commands) > 50  # the blocks were found
    assert [c for c in commands if ".venv/bin/" in c[1] and "activate" not in c[1]] == []
    targets = set(re.findall(r"^([\w-]+):", (PROJECT_ROOT / "Makefile").read_text(), re.M))
    programs = {_program(line) for _, line in commands} - ELSEWHERE
    resolve = 'for p in "$@"; do printf "%s\\t%s\\n" "$p" "$(command -v "$p" || true)"; done'
    resolved = subprocess.run(
        ["bash", "-c", f". .venv/bin/activate && {resolve}", "bash", *sorted(programs)],
        cwd=PROJECT_ROOT,
        env=_activated_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    missing = [line.split("\t")[0] for line in resolved.splitlines() if not line.split("\t")[1]]
    assert len(resolved.splitlines()) == len(programs) and missing == [], resolved
    for path, line in commands:
        words = shlex.split(line, comments=True)
        if words[0] == "make":
            assert set(words[1:]) <= targets, (path, line)
        if words[0] == "python" and words[1] == "-m":
            assert find_spec(words[2]) is not None, (path, line)
        elif words[0] == "python":
            assert (PROJECT_ROOT / words[1]).is_file(), (path, line)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _script(replica: Replica, port: int, flask_log: Path) -> str:
    """The commands, as bash: the documented lines, then the README's runnable block."""
    script = ["set -euo pipefail", ". .venv/bin/activate"]
    for name, line in LINES:
        documented = [c for _, lines in _blocks(PROJECT_ROOT / name) for c in lines]
        assert any(c.split("  #")[0].rstrip() == line for c in documented), (name, line)
        script.append(line.replace("http://127.0.0.1:8002", replica.base_urls["ornament_shop_com"]))
    (runnable,) = [
        lines for note, lines in _blocks(DOCUMENTS[0]) if note and RUNS_THIS_BLOCK in note
    ]
    for line in runnable:
        line = line.replace("127.0.0.1:5000", f"127.0.0.1:{port}")
        if line.startswith("flask --app webapi run"):
            script += [
                f"{line.split('  #')[0]} > {flask_log} 2>&1 &",
                "flask_pid=$!",
                "trap 'kill -TERM $flask_pid; wait $flask_pid || true' EXIT",
                f"curl -s -o /dev/null --retry 60 --retry-connrefused --retry-delay 1 "
                f"http://127.0.0.1:{port}/healthz",
            ]
        else:
            script.append(line)
    return "\n".join(script) + "\n"


def test_the_readmes_commands_run_as_written_in_an_activated_shell(
    replica: Replica, database_url: str, tmp_path: Path
) -> None:
    port, flask_log = _free_port(), tmp_path / "flask-run.log"
    script = _script(replica, port, flask_log)
    env = _activated_env(
        DATABASE_URL=database_url,
        CHRISTMAS_DATA_DIR=str(tmp_path / "data"),
        FLASK_RUN_PORT=str(port),  # flask run's port, as `--port` would give it
    )
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr + flask_log.read_text(errors="replace")
    assert result.returncode == 0, f"{script}\n{output[-6000:]}"
    assert re.search(r"crawl run \d+ of ornament_shop_com .*: finished \(finished\)", output)
    assert "scheduler: not running;" in result.stdout
    answer = json.loads(result.stdout.splitlines()[-1])  # the curl of /v1/changes
    assert answer["changes"] == [] and "next_after_id" in answer, answer  # no drop after 1 sync
    assert "Traceback" not in output, output[-6000:]
