"""Ornament commands.

python -m christmas_spiders.catalog link ITEMS.jsonl [ITEMS.jsonl …]
python -m christmas_spiders.catalog relink

`link` reads items as `scrapy crawl <vendor> -O items.jsonl` writes them (vendor-sites.md §C2)
from every file, links them all together (christmas_spiders.catalog.linker) and prints one JSON
line per item, in input order: its `vendor`, `link`, `ornament` (a key equal for the listings of
one ornament, e.g. "1994:QX5216" or "1994:name:central yuletide|1"), `condition`, `method`
(`item_number` or `name`) and `score` (0–100).

A line that is not a JSON object or not a usable item is reported on stderr with its file and
line number and skipped; the other items are still linked and printed, and the exit status is
1. An unreadable file stops the command before any output, with exit status 2.

`relink` re-links every stored product with the current rules (catalog.relink), after a rule
change; it logs what changed. A second run changes nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from christmas_spiders.catalog.linker import InvalidListing, Listing, link_all, listing_from_item
from christmas_spiders.catalog.relink import relink
from christmas_spiders.config import load_for_command
from christmas_spiders.errors import one_line
from christmas_spiders.storage import SchemaMismatch, check_schema, get_engine

logger = logging.getLogger("christmas_spiders.catalog")


def read_listings(path: Path) -> Iterator[Listing | str]:
    """Each line's Listing, or a sentence saying why the line was skipped."""
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            where = f"{path}:{number}"
            try:
                text = raw.decode("utf-8")
                if not text.strip():
                    continue
                yield listing_from_item(json.loads(text))
            except UnicodeDecodeError as error:
                yield f"{where}: not UTF-8 text ({error.reason}); line skipped"
            except json.JSONDecodeError as error:
                yield f"{where}: not JSON ({error.msg}, column {error.colno}); line skipped"
            except InvalidListing as error:
                yield f"{where}: {error}; line skipped"


def link_command(paths: list[Path]) -> int:
    missing = [path for path in paths if not path.is_file()]
    if missing:
        logger.error("no such file: %s", ", ".join(map(str, missing)))
        return 2
    listings: list[Listing] = []
    skipped = 0
    for path in paths:
        for found in read_listings(path):
            if isinstance(found, str):
                logger.warning("%s", found)
                skipped += 1
            else:
                listings.append(found)
    for listing, made in zip(listings, link_all(listings), strict=True):
        line = {
            "vendor": listing.vendor,
            "link": listing.link,
            "ornament": made.ornament.key,
            "condition": listing.condition,
            "method": made.method,
            "score": round(made.score, 1),
        }
        sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
    if skipped:
        logger.warning("%d line(s) skipped, %d item(s) linked", skipped, len(listings))
    return 1 if skipped else 0


def relink_command() -> int:
    settings = load_for_command()
    try:
        engine = get_engine(settings)
        check_schema(engine)
        done = relink(engine)
    except (SchemaMismatch, SQLAlchemyError) as error:
        logger.error("relink failed: %s", one_line(error))
        return 1
    logger.info(
        "relinked: %d product(s) changed (%d linked for the first time, %d moved to another "
        "ornament or to none); %d ornament(s) created or changed, %d deleted",
        done.products,
        done.linked,
        done.relinked,
        done.ornaments_written,
        done.ornaments_deleted,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m christmas_spiders.catalog")
    commands = parser.add_subparsers(dest="command", required=True)
    link = commands.add_parser("link", help="link crawled items (JSON lines) to ornaments")
    link.add_argument("files", type=Path, nargs="+", metavar="ITEMS.jsonl")
    commands.add_parser("relink", help="re-link every stored product to its ornament")
    args = parser.parse_args(argv)
    if args.command == "relink":
        return relink_command()
    # stderr: stdout carries the JSON lines.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
    return link_command(args.files)


if __name__ == "__main__":
    sys.exit(main())
