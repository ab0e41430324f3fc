"""The audit worker's commands.

python -m webapi.auditor                run the worker until SIGTERM / Ctrl-C (same as `run`)
python -m webapi.auditor status         each subscriber's cursor, backlog, pause and last error
python -m webapi.auditor resume NAME    resume a paused subscriber now
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from christmas_spiders import config
from christmas_spiders.storage import SchemaMismatch, get_engine
from webapi.auditor import state

logger = logging.getLogger("webapi.auditor")


def _run(settings: config.Config) -> int:
    from webapi.auditor.worker import Worker

    try:
        worker = Worker(settings)
    except config.ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2

    def stop(signum: int, _frame: object) -> None:
        logger.info("audit worker: %s received, stopping", signal.Signals(signum).name)
        worker.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        worker.run()
    except SchemaMismatch as error:
        logger.error("%s", error)
        return 1
    return 0


def _status(settings: config.Config) -> int:
    engine = get_engine(settings)
    with engine.connect() as connection:
        rows = state.statuses(connection)
    configured = {subscriber.name for subscriber in settings.subscribers}
    columns = ("subscriber", "cursor", "ids behind", "failures", "paused since", "last delivery")
    print(f"| {' | '.join(columns)} | last error |")
    print("| --- " * (len(columns) + 1) + "|")
    for row in rows:
        name = row["name"] if row["name"] in configured else f"{row['name']} (not configured)"
        print(
            f"| {name} | {row['last_change_id']} | {row['behind']} | {row['failures']} "
            f"| {row['paused_at'] or ''} | {row['last_delivered_at'] or ''} "
            f"| {row['last_error'] or ''} |"
        )
    return 0


def _resume(settings: config.Config, name: str) -> int:
    with get_engine(settings).begin() as connection:
        found = state.resume(connection, name)
    if not found:
        logger.error("no subscriber named %r has delivery state", name)
        return 1
    logger.info("subscriber %s resumed; the running worker picks it up within seconds", name)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m webapi.auditor", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("run", help="run the audit worker (the default)")
    commands.add_parser("status", help="show each subscriber's delivery state")
    resume = commands.add_parser("resume", help="resume a paused subscriber")
    resume.add_argument("name")
    args = parser.parse_args(argv)

    settings = config.load_for_command()
    if args.command == "status":
        return _status(settings)
    if args.command == "resume":
        return _resume(settings, args.name)
    return _run(settings)


if __name__ == "__main__":
    sys.exit(main())
