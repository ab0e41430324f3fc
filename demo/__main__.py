"""`python -m demo` (`make demo`), `python -m demo live` (`make demo-up`) and `python -m demo
screenshots` (`make screenshots`); see demo/."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not 1 <= seconds <= 86400:
        raise argparse.ArgumentTypeError(f"{value} must be between 1 and 86400 seconds")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("story", help="two syncs a day apart (the default; `make demo`)")
    live = commands.add_parser("live", help="the whole system, the shops moving (`make demo-up`)")
    live.add_argument(
        "--move-every",
        type=_seconds,
        default=90.0,
        metavar="SECONDS",
        help="how often the shops move (default 90)",
    )
    live.add_argument(
        "--sync-every",
        type=_seconds,
        default=180.0,
        metavar="SECONDS",
        help="how often every year is synced (default 180)",
    )
    pictures = commands.add_parser(
        "screenshots", help="the web view's pictures, from a demo in a temporary folder"
    )
    pictures.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="FOLDER",
        help="where the PNGs go (default docs/screenshots)",
    )
    options = parser.parse_args()
    if options.command == "screenshots":
        from demo import screenshots

        return screenshots.main(options.out or screenshots.OUT)
    if options.command == "live":
        from demo import live as command

        return command.main(options.move_every, options.sync_every)
    from demo import story

    return story.main()


if __name__ == "__main__":
    sys.exit(main())
