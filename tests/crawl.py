"""Run `scrapy crawl` the way users do: a child process in the project folder."""

from __future__ import annotations

import os
import subprocess
import sys

from .conftest import PROJECT_ROOT


def scrapy_crawl(
    spider: str,
    *,
    env: dict[str, str],
    arguments: dict[str, str] | None = None,
    settings: dict[str, str] | None = None,
    timeout: float = 120,
    extra: list[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "scrapy", "crawl", spider, *(extra or [])]
    for key, value in (settings or {}).items():
        command += ["-s", f"{key}={value}"]
    for key, value in (arguments or {}).items():
        command += ["-a", f"{key}={value}"]
    child_env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    child_env.update(env)
    return subprocess.run(
        command, cwd=PROJECT_ROOT, env=child_env, capture_output=True, text=True, timeout=timeout
    )
