"""Storage commands.

python -m christmas_spiders.storage upgrade        create or upgrade the schema (idempotent)
python -m christmas_spiders.storage check          exit 1 unless the schema is current
python -m christmas_spiders.storage replay FILE    load a dead-letter file into products
python -m christmas_spiders.storage sweep          close crawl runs whose processes are gone
python -m christmas_spiders.storage refresh-market refresh the market views (storage.market)
"""

from __future__ import annotations

import argparse
import logging
import sys
from itertools import islice
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from christmas_spiders import config
from christmas_spiders.errors import one_line
from christmas_spiders.normalize import parse_price
from christmas_spiders.storage import deadletter, market, runs
from christmas_spiders.storage.database import SchemaMismatch, check_schema, get_engine, upgrade
from christmas_spiders.storage.products import UpsertResult, upsert_products

logger = logging.getLogger("christmas_spiders.storage")


def _replay(path: Path, settings: config.Config) -> UpsertResult:
    engine = get_engine(settings)
    upgrade(engine, settings)
    total = UpsertResult()
    records = deadletter.read(path)
    while batch := list(islice(records, settings.store_batch_size)):
        items = [
            {
                **item,
                "price": parse_price(item["price"]),
                "regular_price": parse_price(item["regular_price"]),
            }
            for item in batch
        ]
        with engine.begin() as connection:
            total += upsert_products(connection, items)
    return total


def _sweep(settings: config.Config) -> int:
    engine = get_engine(settings)
    try:
        check_schema(engine)
        with engine.begin() as connection:
            swept = runs.sweep_abandoned(connection, unjoined_after=settings.redis_run_ttl_seconds)
    except (SchemaMismatch, SQLAlchemyError) as error:
        logger.error("%s", one_line(error))
        return 1
    logger.info(
        "%d abandoned crawl run(s) closed%s",
        len(swept),
        (": " + ", ".join(map(str, swept))) if swept else "",
    )
    return 0


def _refresh_market(settings: config.Config) -> int:
    engine = get_engine(settings)
    try:
        check_schema(engine)
        with engine.begin() as connection:
            market.refresh_market(connection)  # logs what it took
    except (SchemaMismatch, SQLAlchemyError) as error:
        logger.error("%s", one_line(error))
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m christmas_spiders.storage")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("upgrade", help="create or upgrade the schema and history trigger")
    commands.add_parser("check", help="exit 1 unless the schema is at this code's version")
    replay = commands.add_parser("replay", help="load a dead-letter file")
    replay.add_argument("file", type=Path)
    commands.add_parser("sweep", help="close crawl runs whose processes are gone (abandoned)")
    commands.add_parser("refresh-market", help="refresh the market views (price gaps, rarity)")
    args = parser.parse_args(argv)

    settings = config.load_for_command()

    if args.command == "upgrade":
        upgrade(get_engine(settings), settings)
    elif args.command == "check":
        try:
            check_schema(get_engine(settings))
        except SchemaMismatch as error:
            logger.error("%s", error)
            return 1
        logger.info("schema is current")
    elif args.command == "sweep":
        return _sweep(settings)
    elif args.command == "refresh-market":
        return _refresh_market(settings)
    else:
        if not args.file.is_file():
            logger.error("no such file: %s", args.file)
            return 2
        try:
            result = _replay(args.file, settings)
        except ValueError as error:
            logger.error("%s", error)
            return 2
        logger.info(
            "replayed %s: %d created, %d updated, %d unchanged",
            args.file,
            result.created,
            result.updated,
            result.unchanged,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
