"""`make demo`: a day in the life of the price tracker, told in about a minute.

1. The replica shops are served and every year of all three is crawled (day 1), side by side
   with the real spiders, into the configured database (the embedded PostgreSQL in .data/
   unless DATABASE_URL is set).
2. "A day later": the database's clock cannot be moved, so on the embedded database (the
   demo's own) everything recorded so far is dated a day back; then the shops move through the
   replica's control API (`demo.shops.a_day_later`).
3. Day 2: the same sync again records what moved: price drops and rises, sales, sell-outs and
   restocks, a product gone and one new. Charts get steps, /changes lists drops and restocks.
4. It ends with what was recorded and the commands to look at it.

Run it again and another day passes.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from christmas_spiders import config, logs
from christmas_spiders.processes import crawl_command
from christmas_spiders.storage import get_engine, market_index, upgrade
from christmas_spiders.vendors import VENDORS
from demo.shops import Move, a_day_later, expected_changes, start_replica
from tests.replica.client import Replica

PROJECT_ROOT = Path(__file__).resolve().parents[1]
_SUMMARY = re.compile(r"crawl run \d+ of .*: (finished|failed) \(")


def summary(output: str) -> str:
    """The end-of-crawl summary of a crawl's output (its last lines if there is none)."""
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if _SUMMARY.search(line)), None)
    if start is None:
        return "\n".join(lines[-20:])
    end = start + 1
    while end < len(lines) and lines[end].startswith("    "):
        end += 1
    return "\n".join(lines[start:end])


def sync(replica: Replica) -> list[str]:
    """Crawl every year of the three shops side by side; the shops whose crawl failed."""
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
    for output in outputs.values():
        print(summary(output), "\n", flush=True)
    return [vendor for vendor, crawl in crawls.items() if crawl.returncode != 0]


def date_back_a_day(engine: Engine) -> None:
    """Every timestamp of every table, a day earlier: what the database would hold had the
    first sync run yesterday. The history trigger ignores these columns; the year index's
    precomputed steps are rebuilt from the moved history (a refresh only adds days)."""
    query = sa.text(
        "SELECT c.table_name, c.column_name FROM information_schema.columns c"
        " JOIN information_schema.tables t USING (table_schema, table_name)"
        " WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'"
        "  AND c.data_type = 'timestamp with time zone'"
        " ORDER BY c.table_name, c.ordinal_position"
    )
    with engine.begin() as connection:
        quote = connection.dialect.identifier_preparer.quote
        columns: dict[str, list[str]] = defaultdict(list)
        for table, column in connection.execute(query):
            columns[table].append(quote(column))
        for table, names in columns.items():
            moved = ", ".join(f"{name} = {name} - interval '1 day'" for name in names)
            connection.execute(sa.text(f"UPDATE {quote(table)} SET {moved}"))
        market_index.refresh_year_index(connection, rebuild=True)


def _print_day(moves: list[Move]) -> None:
    print("A day later at the shops (made through the replica's control API):")
    for vendor in VENDORS:
        print(f"  {VENDORS[vendor].display_name}")
        for made in (made for made in moves if made.vendor == vendor):
            print(f"    {made}")
        counts = expected_changes(made for made in moves if made.vendor == vendor)
        print(
            "    to be recorded: " + ", ".join(f"{n} {name}" for name, n in sorted(counts.items()))
        )
    print(flush=True)


_RECORDED = sa.text(
    "SELECT p.vendor, c.kind, c.field, c.old_value, c.new_value"
    " FROM product_changes c JOIN products p ON p.id = c.product_id"
    " WHERE c.crawl_run_id > :after"
)
_EVENTS = ("price drops", "price rises", "sold out", "back in stock", "listed", "delisted")


def _event(kind: str, field: str | None, old: str | None, new: str | None) -> str | None:
    """How a collector names a recorded change (None: not one of _EVENTS)."""
    if field == "price" and old and new:
        return "price drops" if Decimal(new) < Decimal(old) else "price rises"
    if field == "availability":
        return {"unavailable": "sold out", "available": "back in stock"}.get(new or "")
    return kind if kind in ("listed", "delisted") else None


_SHARED = sa.text(
    "SELECT count(*) FROM (SELECT ornament_id FROM products"
    " WHERE ornament_id IS NOT NULL AND delisted_at IS NULL"
    " GROUP BY ornament_id HAVING count(DISTINCT vendor) > 1) shared"
)
# A product of day 2's price drops whose ornament the most shops sell: its page shows the most
# (several shops' lines, one with a step).
_EXAMPLE = sa.text(
    "SELECT p.id, p.sku FROM product_changes c JOIN products p ON p.id = c.product_id"
    " JOIN (SELECT ornament_id, count(DISTINCT vendor) AS shops FROM products"
    "       GROUP BY ornament_id) o ON o.ornament_id = p.ornament_id"
    " WHERE c.crawl_run_id > :after"
    "  AND CASE WHEN c.field = 'price' THEN c.new_value::numeric < c.old_value::numeric END"
    " ORDER BY o.shops DESC, p.sku IS NULL, c.id LIMIT 1"
)


def _print_recorded(engine: Engine, after: int) -> str:
    """What day 2's crawls recorded, shop by shop; the web view's path of an example."""
    with engine.connect() as connection:
        events = Counter(
            (vendor, _event(kind, field, old, new))
            for vendor, kind, field, old, new in connection.execute(_RECORDED, {"after": after})
        )
        shared = connection.execute(_SHARED).scalar()
        example = connection.execute(_EXAMPLE, {"after": after}).first()
    print("What the tracker recorded on day 2 (product_changes):")
    for vendor in VENDORS:
        parts = ", ".join(f"{name} {events[vendor, name]}" for name in _EVENTS)
        print(f"  {VENDORS[vendor].display_name:<22} {parts}")
    print(f"  {shared} ornaments are sold by more than one shop.\n")
    if example is None:
        return "/changes"
    return f"/sku/{example.sku}" if example.sku else f"/products/{example.id}"


def _print_next_steps(example: str) -> None:
    web = "http://127.0.0.1:5000"
    print(
        "Look at it, in a shell where `. .venv/bin/activate` has run:\n"
        "  flask --app webapi run    # the web view; Ctrl-C stops it (nothing else runs)\n"
        f"  {web}/changes  {web}{example}  {web}/runs\n"
        "and the API, in a second shell, with a key of your own:\n"
        "  KEY=$(flask --app webapi keys create me | tail -n 1)\n"
        f"  curl -s -H \"Authorization: Bearer $KEY\" '{web}/v1/changes?event=price_drop'\n"
        "`make demo` again: another day. `make demo-up`: the whole system live, the shops\n"
        "moving every 90 s, alerts as they come; Ctrl-C stops it.",
        flush=True,
    )


def main() -> int:
    settings = config.load()
    logs.configure(settings.log_level, settings.log_format)
    engine = get_engine(settings)  # starts (and holds) the embedded server when configured
    upgrade(engine, settings)
    replica = start_replica()
    try:
        print("The replica shops:", ", ".join(replica.base_urls.values()), "\n", flush=True)
        print("Day 1: every year of the three shops\n", flush=True)
        failed = sync(replica)
        if settings.database_url is None:
            date_back_a_day(engine)
            print("(Day 1 is dated a day back: the embedded database is the demo's own.)\n")
        else:
            print("(DATABASE_URL is set: day 1 keeps its time, the demo rewrites no dates.)\n")
        with engine.connect() as connection:
            after = connection.execute(sa.text("SELECT coalesce(max(id), 0) FROM crawl_runs"))
            last_run = after.scalar_one()
        _print_day(a_day_later(replica))
        print("Day 2: the same sync again\n", flush=True)
        failed += sync(replica)
    finally:
        replica.stop()
    example = _print_recorded(engine, last_run)
    _print_next_steps(example)
    if failed:
        print("failed crawls:", ", ".join(sorted(set(failed))), file=sys.stderr)
    return 1 if failed else 0
