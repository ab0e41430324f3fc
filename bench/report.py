"""How the benchmarks report: the results table (`Row`, `rows_table`, `markdown`), the detail
tables under it (`Detail`, `render_details`), number formats (`mb`, `percentile`), progress lines
on stderr (`log`, `stdout_to_stderr`: stdout carries only the tables) and the machine and the
versions a results file names (`machine`, `versions`).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.constants import MB


@dataclass
class Row:
    """One line of the results table."""

    figure: str  # "1", "2", …
    measure: str
    ours: str
    baseline: str = ""
    ratio_goal: str = ""
    met: bool | None = None  # None: informative, no goal of its own

    @property
    def verdict(self) -> str:
        return {True: "yes", False: "**no**", None: "—"}[self.met]

    def cells(self) -> list[str]:
        return [self.figure, self.measure, self.ours, self.baseline, self.ratio_goal, self.verdict]


TABLE_HEADERS = ["#", "figure", "ours", "baseline", "ratio / goal", "met?"]


def markdown(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(cell, headers)) + " |"]
    lines.append("| " + " | ".join("---" for _ in headers) + " |")
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in rows]
    return "\n".join(lines)


def rows_table(rows: Sequence[Row]) -> str:
    return markdown(TABLE_HEADERS, [row.cells() for row in rows])


def mb(value: float) -> str:
    return f"{value / MB:,.0f} MB"


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """While measuring, stdout is stderr: the project's log handler (installed on sys.stdout
    whenever its settings or the API are imported) must not mix log lines into the tables."""
    saved = sys.stdout
    sys.stdout = sys.stderr
    try:
        yield
    finally:
        sys.stdout = saved


def log(message: str) -> None:
    """Progress on stderr (stdout carries the tables)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Detail:
    """A detail table or note printed under the main table, headed by its figure."""

    figure: str
    title: str
    text: str


def render_details(details: Sequence[Detail]) -> str:
    return "\n\n".join(f"### {d.figure}. {d.title}\n\n{d.text.strip()}" for d in details)


# --- machine ------------------------------------------------------------------------------------


def _command_version(*command: str) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "not found"


def machine() -> dict[str, str]:
    memory = psutil.virtual_memory()
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    one, five, fifteen = os.getloadavg()
    return {
        "cores": f"{os.cpu_count()} ({model})",
        "memory": f"{memory.total / MB / 1024:.1f} GB ({memory.available / MB / 1024:.1f} GB free)",
        "load": f"{one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min)",
        "kernel": os.uname().release,
    }


def versions() -> dict[str, str]:
    import importlib.metadata as metadata

    found = {"Python": sys.version.split()[0]}
    for package in ("Scrapy", "scrapy-redis", "selenium", "SQLAlchemy", "psycopg2-binary"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    chromium = _command_version("/usr/bin/chromium", "--version")
    driver = _command_version("/usr/bin/chromedriver", "--version")
    found["Chromium"] = chromium.removeprefix("Chromium ").split(" built on")[0]
    found["chromedriver"] = driver.removeprefix("ChromeDriver ").split(" (")[0]
    return found
