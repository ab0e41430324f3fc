"""Command line: serve the three replica shops from one process.

    python -m tests.replica --seed 1 --size small --hooh-port 0 --os-port 0 --ho-port 0

Prints one JSON line {vendor: origin} on stdout once every shop listens, then serves until
SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from types import FrameType

from .catalog import generate, parse_size
from .models import HO, HOOH, OS
from .server import ServerOptions, serve
from .state import Throttle

log = logging.getLogger("tests.replica")


def _size(value: str) -> int:
    try:
        size = parse_size(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return size


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.replica",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seed", type=int, default=1, help="catalog seed (default 1)")
    parser.add_argument(
        "--size",
        type=_size,
        default="small",
        help="small (60 per shop), large (20000 per shop) or a number",
    )
    parser.add_argument("--host", default="127.0.0.1", help="a loopback address")
    parser.add_argument("--hooh-port", type=int, default=0, help="0 = any free port")
    parser.add_argument("--os-port", type=int, default=0, help="0 = any free port")
    parser.add_argument("--ho-port", type=int, default=0, help="0 = any free port")
    parser.add_argument(
        "--latency-ms", type=int, default=0, help="delay added to every shop response"
    )
    parser.add_argument(
        "--jsonld",
        action="store_true",
        help="OS product pages also carry the JSON-LD Product block",
    )
    parser.add_argument(
        "--throttle-every",
        type=int,
        default=None,
        metavar="N",
        help="answer every Nth request of a shop with --throttle-status",
    )
    parser.add_argument(
        "--throttle-burst",
        type=int,
        default=0,
        metavar="N",
        help="answer the first N requests of a shop with --throttle-status",
    )
    parser.add_argument("--throttle-status", type=int, choices=(429, 503), default=429)
    parser.add_argument(
        "--retry-after",
        type=int,
        default=1,
        metavar="SECONDS",
        help="Retry-After of throttled answers (default 1)",
    )
    parser.add_argument("--access-log", action="store_true", help="log every request to stderr")
    parser.add_argument(
        "--watch-stdin",
        action="store_true",
        help="also stop when stdin reaches end of file (the parent went away)",
    )
    args = parser.parse_args(argv)
    if args.throttle_every is not None and args.throttle_every < 1:
        parser.error("--throttle-every must be at least 1")
    if args.throttle_burst < 0 or args.retry_after < 0:
        parser.error("--throttle-burst and --retry-after must not be negative")
    return args


def _stop_at_eof(stop: threading.Event) -> None:
    """Stop when stdin closes, so a replica never outlives a parent that was killed."""
    while sys.stdin.buffer.read1(4096):
        pass
    stop.set()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        options = ServerOptions(
            host=args.host,
            ports={HOOH: args.hooh_port, OS: args.os_port, HO: args.ho_port},
            latency_ms=args.latency_ms,
            jsonld=args.jsonld,
            throttle=Throttle(
                every=args.throttle_every,
                burst=args.throttle_burst,
                status=args.throttle_status,
                retry_after=args.retry_after,
            ),
            access_log=args.access_log,
        )
        catalog = generate(args.seed, args.size)
    except ValueError as error:
        log.error("replica: %s", error)
        return 2

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if args.watch_stdin:
        threading.Thread(target=_stop_at_eof, args=(stop,), name="stdin-watch", daemon=True).start()

    def ready(origins: dict[str, str]) -> None:
        sys.stdout.write(json.dumps(origins) + "\n")
        sys.stdout.flush()

    serve(catalog, options, ready, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
