"""`make bench`: every performance figure, side by side with its baseline, in one table.

    python -m bench                      # everything, full size: bench/results.md (+ .json)
    python -m bench --quick              # tiny sizes (the test suite runs this); writes nothing
    python -m bench --only 1,4 [--output FILE]
    python -m bench --report-only        # results.md again from results.json + NOTES.md

One session (bench.session.Session) holds the services — the local PostgreSQL that `make test`
uses (or DATABASE_URL / TEST_DATABASE_URL; an embedded one if none answers) and Redis
(REDIS_URL or 127.0.0.1:6379) — and one replica of the three shops (20,000 products each),
shared by the figures; each figure's script also runs alone (`python -m bench.<script>`).

| # | figure | script |
| --- | --- | --- |
| 1 | crawl efficiency | bench/crawl_efficiency.py |
| 2 | crawl cost | bench/crawl_cost.py (reuses 1's crawls) |
| 3 | crawl speed near the polite limit | bench/crawl_speed.py |
| 4 | storage | bench/storage_upserts.py |
| 5 | scale-out | bench/crawl_workers.py |
| 6 | API | bench/api_latency.py (written with the API: see `api_rows`) |
| 7 | audit delivery | bench/auditor_latency.py |
| 8 | memory | bench/memory.py (reuses 1's crawls) |
| 9 | ornament linking | bench/ornament_linking.py (offline, then in PostgreSQL side by side) |
| 10 | quick sync | bench/quick_sync.py (its own full syncs, quick syncs and the audit worker) |

The table and every figure's detail go to stdout and, for a full run, to bench/results.md
with the machine, date, versions and load, followed by bench/NOTES.md (the analysis: what
bounds each figure, what to change, how each figure is made); bench/results.json keeps the
run's data so that the report can be rendered again after the notes change. Progress goes to
stderr.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from bench.constants import PROJECT_ROOT
from bench.report import (
    Detail,
    Row,
    log,
    machine,
    markdown,
    render_details,
    rows_table,
    stdout_to_stderr,
    versions,
)
from bench.services import child_env
from bench.session import Session
from christmas_spiders.errors import one_line

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results.md"
RECORD = BENCH / "results.json"
NOTES = BENCH / "NOTES.md"

TITLES = {
    "1": "crawl efficiency",
    "2": "crawl cost",
    "3": "crawl speed near the polite limit",
    "4": "storage",
    "5": "scale-out",
    "6": "API",
    "7": "audit delivery",
    "8": "memory",
    "9": "ornament linking",
    "10": "quick sync",
}
# Run order: 2 and 8 reuse 1's full syncs while the shared replica is up.
ORDER = ("1", "2", "8", "10", "5", "3", "4", "7", "6", "9")


# --- figure 6: the API's script, written with the API ------------------------------------------
#
# The hook: bench/api_latency.py belongs to the API's issue. If it defines
# `measure(session) -> list[Row]`, that is called like every other figure. Otherwise it is run
# as a script (`python -m bench.api_latency`, on the session's PostgreSQL server) and its
# Markdown table — columns endpoint | requests | p50 ms | p99 ms | req/s | non-200 — is read
# into rows and judged here. Without the file, figure 6 is reported as not measured.

API_P99_MS = 25.0
API_RATE = 200.0
API_P50_FACTOR = 3.0


def api_rows(session: Session) -> list[Row]:
    if not (BENCH / "api_latency.py").exists():
        return [
            Row(
                "6",
                "API: p50/p99 and requests/s, list, history, SKU view vs /healthz",
                "not measured",
                "",
                "hook: bench/api_latency.py is not written yet",
                None,
            )
        ]
    module = importlib.import_module("bench.api_latency")
    if hasattr(module, "measure"):
        return module.measure(session)
    arguments = ["--products", "3000", "--history", "3", "--seconds", "1", "--clients", "2"]
    command = [sys.executable, "-m", "bench.api_latency", *(arguments if session.quick else [])]
    log("API: " + " ".join(command[1:]))
    output = subprocess.run(
        command,
        cwd=PROJECT_ROOT,
        env=child_env(DATABASE_URL=session.services.server_url, LOG_LEVEL="WARNING"),
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    if output.returncode != 0:
        raise RuntimeError(f"bench.api_latency failed:\n{(output.stdout + output.stderr)[-3000:]}")
    session.detail("6", "API (bench/api_latency.py's own output)", output.stdout)
    return parse_api_table(output.stdout)


def _number(text: str) -> float:
    return float(re.sub(r"[^\d.]", "", text) or "nan")


def parse_api_table(text: str) -> list[Row]:
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("|")]
    header = next((i for i, line in enumerate(lines) if "p50" in line and "p99" in line), None)
    if header is None:
        return [Row("6", "API", "see the detail below", "", "unreadable table", None)]
    names = [cell.strip().lower() for cell in lines[header].strip("|").split("|")]
    column = {
        key: next(i for i, name in enumerate(names) if key in name)
        for key in ("endpoint", "p50", "p99", "req/s", "non-200")
    }
    table = {}
    for line in lines[header + 2 :]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        table[cells[column["endpoint"]]] = {
            key: (cells[index] if key == "endpoint" else _number(cells[index]))
            for key, index in column.items()
        }
    health = table.get("/healthz")
    rows = []
    for endpoint, found in table.items():
        line = f"{found['p50']:.1f} / {found['p99']:.1f} ms, {found['req/s']:,.0f} req/s"
        if endpoint == "/healthz":
            rows.append(Row("6", "API /healthz: p50 / p99, requests/s", line, "", "", None))
            continue
        factor = found["p50"] / health["p50"] if health else float("nan")
        bounded = endpoint.startswith(("product list", "product history"))  # the p50 goal
        met = (
            found["p99"] <= API_P99_MS
            and found["req/s"] >= API_RATE
            and found["non-200"] == 0
            and (factor <= API_P50_FACTOR if bounded else True)
        )
        goal = f"p99 ≤ {API_P99_MS:g} ms at ≥ {API_RATE:g} req/s"
        if bounded:
            goal += f"; p50 {factor:.1f}× /healthz (goal ≤ {API_P50_FACTOR:g}×)"
        rows.append(
            Row(
                "6",
                f"API {endpoint}: p50 / p99, requests/s",
                line,
                f"/healthz p50 {health['p50']:.1f} ms" if health else "",
                goal,
                met,
            )
        )
    return rows


# --- running ------------------------------------------------------------------------------------


def figure_functions() -> dict[str, Callable[[Session], list[Row]]]:
    from bench import (
        auditor_latency,
        crawl_cost,
        crawl_efficiency,
        crawl_speed,
        crawl_workers,
        memory,
        ornament_linking,
        quick_sync,
        storage_upserts,
    )

    return {
        "1": crawl_efficiency.measure,
        "2": crawl_cost.measure,
        "3": crawl_speed.measure,
        "4": storage_upserts.measure,
        "5": crawl_workers.measure,
        "6": api_rows,
        "7": auditor_latency.measure,
        "8": memory.measure,
        "9": ornament_linking.measure,
        "10": quick_sync.measure,
    }


def _load() -> str:
    return "{:.2f} / {:.2f} / {:.2f}".format(*os.getloadavg())


def run(figures: list[str], quick: bool) -> tuple[list[Row], Session, dict[str, dict]]:
    functions = figure_functions()
    rows: dict[str, list[Row]] = {}
    timing: dict[str, dict] = {}
    session = Session(quick=quick)
    try:
        for figure in [f for f in ORDER if f in figures]:
            load = _load()
            began = time.monotonic()
            log(f"figure {figure}: {TITLES[figure]} (load {load})")
            try:
                rows[figure] = functions[figure](session)
            except Exception as error:  # one broken figure must not lose the others
                traceback.print_exc()
                rows[figure] = [Row(figure, TITLES[figure], "failed", "", one_line(error), False)]
            timing[figure] = {
                "seconds": time.monotonic() - began,
                "load_before": load,
                "load_after": _load(),
            }
    except BaseException:
        session.close()
        raise
    ordered = [row for figure in sorted(rows, key=int) for row in rows[figure]]
    return ordered, session, timing


def record(
    rows: list[Row],
    session: Session,
    timing: dict[str, dict],
    started: datetime,
    seconds: float,
    arguments: str,
    machine: dict[str, str],
) -> dict:
    """Everything the report shows, as JSON (bench/results.json beside results.md)."""
    return {
        "arguments": arguments,
        "started": started.isoformat(timespec="seconds"),
        "seconds": round(seconds, 1),
        "quick": session.quick,
        "rows": [asdict(row) for row in rows],
        "details": [asdict(detail) for detail in session.details],
        "timing": timing,
        "machine": {**machine, "load at the end": _load() + " (1 / 5 / 15 min)"},
        "services": session.services.server_kind + "; Redis " + session.services.redis_url,
        "versions": {**versions(), **session.services.versions()},
    }


def report(data: dict) -> str:
    rows = [Row(**row) for row in data["rows"]]
    details = [Detail(**detail) for detail in data["details"]]
    started = datetime.fromisoformat(data["started"])
    met = [row for row in rows if row.met is True]
    missed = [row for row in rows if row.met is False]
    summary = f"Goals: {len(met)} met, {len(missed)} missed"
    if missed:
        summary += " (figure " + ", ".join(sorted({r.figure for r in missed}, key=int)) + ")"
    lines = [
        "# Benchmarks",
        "",
        f"`{data['arguments']}` — {started:%Y-%m-%d %H:%M} UTC, {data['seconds'] / 60:.1f} min "
        f"({'quick sizes' if data['quick'] else 'full sizes'}). {summary}; the notes below "
        "say what bounds each missed goal and what to change.",
        "",
        rows_table(rows),
        "",
        "## Machine",
        "",
        markdown(
            ["", ""],
            [
                *data["machine"].items(),
                ("services", data["services"]),
                (
                    "versions",
                    ", ".join(f"{name} {version}" for name, version in data["versions"].items()),
                ),
            ],
        ),
        "",
        "The machine is shared: other engineers' test suites run on the same two cores, so "
        "timings carry that noise (load per figure below). Counts (figures 1, 4) and memory "
        "(figure 8) do not depend on it; rates, CPU shares and latencies do.",
        "",
        markdown(
            ["figure", "seconds", "load before (1 / 5 / 15 min)", "load after"],
            [
                [f"{n}. {TITLES[n]}", f"{t['seconds']:.0f}", t["load_before"], t["load_after"]]
                for n, t in sorted(data["timing"].items(), key=lambda item: int(item[0]))
            ],
        ),
        "",
        "## Details",
        "",
        render_details(sorted(details, key=lambda d: int(d.figure))),
    ]
    if NOTES.exists():
        lines += ["", NOTES.read_text(encoding="utf-8").strip()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes; keeps the scripts working"
    )
    parser.add_argument("--only", help="figures to run, e.g. 1,4 (default: all)")
    parser.add_argument(
        "--output",
        type=Path,
        help="write the report here (default: bench/results.md, and bench/results.json, for a "
        "full run of every figure; nowhere otherwise)",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="measure nothing: render bench/results.md again from bench/results.json and "
        "bench/NOTES.md (after editing the notes)",
    )
    args = parser.parse_args(argv)
    if args.report_only:
        text = report(json.loads(RECORD.read_text(encoding="utf-8")))
        (args.output or RESULTS).write_text(text, encoding="utf-8")
        print(text)
        return 0
    figures = sorted(TITLES, key=int)
    if args.only:
        figures = [f.strip() for f in args.only.split(",") if f.strip()]
        unknown = [f for f in figures if f not in TITLES]
        if unknown:
            parser.error(f"unknown figure(s) {', '.join(unknown)}; known: 1-{len(TITLES)}")
    output = args.output
    full = not args.quick and not args.only
    if output is None and full:
        output = RESULTS
    started = datetime.now(UTC)
    machine_facts = machine()
    began = time.monotonic()
    with stdout_to_stderr():
        rows, session, timing = run(figures, args.quick)
    try:
        arguments = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
        data = record(
            rows,
            session,
            timing,
            started,
            time.monotonic() - began,
            arguments.strip(),
            machine_facts,
        )
    finally:
        session.close()
    text = report(data)
    print(text)
    if output:
        output.write_text(text, encoding="utf-8")
        output.with_suffix(".json").write_text(json.dumps(data, indent=1), encoding="utf-8")
        log(f"written to {output} (and {output.with_suffix('.json').name})")
    return 1 if any(row.ours == "failed" for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
