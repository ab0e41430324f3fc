"""Crawl health commands (docs/health.md).

python -m christmas_spiders.health accept RUN_ID   the shop really changed: make a suspect run
                                                   the vendor's healthy baseline, apply the
                                                   values it kept from vanishing
"""

from __future__ import annotations

import argparse
import logging
import sys

from sqlalchemy.exc import SQLAlchemyError

from christmas_spiders import config, logs
from christmas_spiders.errors import one_line
from christmas_spiders.health.accept import NotAcceptable, accept
from christmas_spiders.storage.database import SchemaMismatch, check_schema, get_engine

logger = logging.getLogger("christmas_spiders.health")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m christmas_spiders.health")
    commands = parser.add_subparsers(dest="command", required=True)
    accepting = commands.add_parser("accept", help="accept a suspect run: the shop really changed")
    accepting.add_argument("run_id", type=int)
    args = parser.parse_args(argv)
    try:
        settings = config.load()
    except config.ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    engine = get_engine(settings)
    try:
        check_schema(engine)
        with engine.begin() as connection:
            accepted = accept(connection, args.run_id)
    except NotAcceptable as error:
        logger.error("%s", error)
        return 2
    except (SchemaMismatch, SQLAlchemyError) as error:
        logger.error("%s", one_line(error))
        return 1
    applied = ", ".join(f"{count} {field}" for field, count in accepted.applied.items())
    logger.info(
        "crawl run %d of %s accepted: it is the vendor's healthy baseline now; "
        "kept values applied: %s",
        accepted.run_id,
        accepted.vendor,
        applied or "none",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
