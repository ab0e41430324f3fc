"""The main job on a fresh machine (`make demo`): crawl every year of all three shops.

The live shops cannot be reached from here, so the demo serves the project's local replica of
them (tests/replica, small catalog) and crawls it with the real spiders into the configured
database — the embedded PostgreSQL in .data/ unless DATABASE_URL is set. The three crawls run
side by side as `scrapy crawl` processes; their end-of-crawl summaries and a few stored rows
are printed at the end. Run it twice: the second run finds every product unchanged.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from christmas_spiders import config, logs
from christmas_spiders.processes import crawl_command
from christmas_spiders.storage import get_engine, upgrade
from christmas_spiders.storage.schema import products
from christmas_spiders.vendors import VENDORS
from tests.replica.process import ReplicaProcess

PROJECT_ROOT = Path(__file__).resolve().parent
DEMO_PORTS = {
    "hookedonhallmark_com": 8001,
    "ornament_shop_com": 8002,
    "hallmark_ornaments_com": 8003,
}


_SUMMARY = re.compile(r"crawl run \d+ of .*: (finished|failed) \(")


def _summary(output: str) -> str:
    """The end-of-crawl summary of a crawl's output (its last lines if there is none)."""
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if _SUMMARY.search(line)), None)
    if start is None:
        return "\n".join(lines[-20:])
    end = start + 1
    while end < len(lines) and lines[end].startswith("    "):
        end += 1
    return "\n".join(lines[start:end])


def _start_replica() -> ReplicaProcess:
    """The replica on the demo's fixed ports, so stored links stay the same from run to run
    (free ports when those are taken)."""
    try:
        return ReplicaProcess.start(seed=1, size="small", ports=DEMO_PORTS)
    except RuntimeError:
        return ReplicaProcess.start(seed=1, size="small")


def main() -> int:
    settings = config.load()
    logs.configure(settings.log_level, settings.log_format)
    engine = get_engine(settings)  # starts (and holds) the embedded server when configured
    upgrade(engine, settings)
    with _start_replica() as replica:
        print("replica shops:", ", ".join(replica.base_urls.values()), flush=True)
        crawls = {
            vendor: subprocess.Popen(
                crawl_command(vendor, {"base_url": replica.base_urls[vendor]}),
                cwd=PROJECT_ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for vendor in VENDORS
        }
        outputs = {vendor: crawl.communicate()[0] for vendor, crawl in crawls.items()}
    print()
    for output in outputs.values():
        print(_summary(output), "\n")
    with engine.connect() as connection:
        for vendor in VENDORS:
            rows = connection.execute(
                sa.select(
                    products.c.sku,
                    products.c.name,
                    products.c.price,
                    products.c.availability,
                    products.c.release_year,
                )
                .where(products.c.vendor == vendor)
                .order_by(products.c.release_year.desc(), products.c.name)
                .limit(4)
            ).all()
            print(f"{VENDORS[vendor].display_name}:")
            for sku, name, price, availability, year in rows:
                shown = f"${price}" if price is not None else "no price"
                print(f"  {year}  {sku or '-':<12} {name[:48]:<48} {shown:>10}  {availability}")
    failed = [vendor for vendor, crawl in crawls.items() if crawl.returncode != 0]
    if failed:
        print("failed crawls:", ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
