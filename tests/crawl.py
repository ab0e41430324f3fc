"""Run `scrapy crawl` the way users do: a child process in the project folder."""

from __future__ import annotations

import os
import subprocess

from christmas_spiders.processes import crawl_command

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
    command = crawl_command(spider, arguments, settings, extra or ())
    child_env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    child_env.update(env)
    return subprocess.run(
        command, cwd=PROJECT_ROOT, env=child_env, capture_output=True, text=True, timeout=timeout
    )
