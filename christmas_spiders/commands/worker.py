"""`scrapy worker`: the standing crawler process (docs/scale-out.md).

    scrapy worker [--vendor V ...] [--max-crawls N] [-s NAME=VALUE ...]

Waits for crawl runs announced in Redis and joins each one in a child
`scrapy crawl <vendor> -a run_id=<id>`; stops cleanly on SIGTERM. `-s` options are passed on to
the children. Needs REDIS_URL.
"""

from __future__ import annotations

import argparse

from scrapy.commands import ScrapyCommand
from scrapy.exceptions import UsageError

from christmas_spiders.addon import project_config
from christmas_spiders.distributed.connection import RedisUnavailable
from christmas_spiders.distributed.worker import StandingWorker
from christmas_spiders.vendors import VENDORS


class Command(ScrapyCommand):
    requires_project = True
    requires_crawler_process = False

    def syntax(self) -> str:
        return "[options]"

    def short_desc(self) -> str:
        return "Join crawl runs announced in Redis, as a standing worker (needs REDIS_URL)"

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        parser.add_argument(
            "--vendor",
            action="append",
            choices=sorted(VENDORS),
            help="only join runs of this shop (may be repeated; default: every shop)",
        )
        parser.add_argument(
            "--max-crawls",
            type=int,
            default=None,
            help="crawls worked at once (default: worker_max_crawls)",
        )

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        if args:
            raise UsageError("the worker takes no arguments")
        assert self.settings is not None
        if opts.max_crawls is not None and opts.max_crawls < 1:
            raise UsageError("--max-crawls must be at least 1", print_help=False)
        options = [item for pair in opts.set for item in ("-s", pair)]
        try:
            worker = StandingWorker(
                project_config(self.settings),
                vendors=opts.vendor,
                max_crawls=opts.max_crawls,
                crawl_options=options,
            )
        except RedisUnavailable as error:
            raise UsageError(f"cannot start the worker: {error}", print_help=False) from None
        worker.install_signal_handlers()
        self.exitcode = worker.run()
