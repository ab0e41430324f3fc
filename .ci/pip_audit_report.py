"""The verdict on a pip-audit JSON report (see .ci/pip-audit): print it, exit 1 only for a
vulnerability in what we run (--runtime) that is not in the reviewed list (--ignore).

    python .ci/pip_audit_report.py REPORT.json --runtime requirements.txt --ignore FILE
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_names(path: Path) -> set[str]:
    """Package names pinned in a requirements file (comments and options skipped)."""
    names = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        found = _PIN.match(line.strip())
        if found:
            names.add(canonical(found.group(1)))
    return names


def reviewed_ids(path: Path) -> set[str]:
    """Ids of the first column of the reviewed list (`ID  # why`)."""
    if not path.exists():
        return set()
    ids = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry:
            ids.add(entry.split()[0])
    return ids


def verdict(report: dict, runtime: set[str], reviewed: set[str]) -> tuple[list[str], int]:
    """(lines to print, exit status)."""
    dependencies = report.get("dependencies", [])
    skipped = [d for d in dependencies if d.get("skip_reason")]
    audited = [d for d in dependencies if not d.get("skip_reason")]
    lines: list[str] = []
    failing = 0
    for dependency in audited:
        name = canonical(dependency["name"])
        for vuln in dependency.get("vulns", []):
            ids = {vuln["id"], *vuln.get("aliases", [])}
            fixes = ", ".join(vuln.get("fix_versions", [])) or "none yet"
            where = "runtime" if name in runtime else "development only"
            if where == "runtime" and not ids & reviewed:
                outcome, failing = "FAILS CI", failing + 1
            elif where == "runtime":
                outcome = "reviewed: not exploitable in our use (.ci/pip-audit-ignore)"
            else:
                outcome = "reported"
            lines.append(
                f"pip-audit: {dependency['name']} {dependency['version']} ({where}): "
                f"{vuln['id']} (fixed in {fixes}): {outcome}"
            )
    found = sum(len(d.get("vulns", [])) for d in audited)
    lines.append(
        f"pip-audit: {len(audited)} of {len(dependencies)} dependencies audited, "
        f"{found} known vulnerabilit{'y' if found == 1 else 'ies'}, {failing} failing CI"
    )
    if skipped:
        lines.append(
            f"pip-audit: NOT AUDITED: {len(skipped)} of {len(dependencies)} dependencies: the "
            f"vulnerability service had no answer for them (e.g. {skipped[0]['skip_reason']}). "
            "This does not fail CI; audit where the service is reachable."
        )
    return lines, 1 if failing else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("report", type=Path)
    parser.add_argument("--runtime", type=Path, required=True)
    parser.add_argument("--ignore", type=Path, required=True)
    args = parser.parse_args(argv)
    report = json.loads(args.report.read_text(encoding="utf-8"))
    lines, status = verdict(report, pinned_names(args.runtime), reviewed_ids(args.ignore))
    print("\n".join(lines))
    return status


if __name__ == "__main__":
    sys.exit(main())
