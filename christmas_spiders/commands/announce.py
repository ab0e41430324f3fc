"""`scrapy announce`: open a crawl run for the standing workers (docs/scale-out.md).

    scrapy announce <vendor> [-a year=…|url=…|product_id=…] [-a base_url=…]

Checks the arguments as `scrapy crawl` does, creates the `crawl_runs` row, opens and announces
the run in Redis, and prints its id. Workers join it (`scrapy worker`, or by hand with
`scrapy crawl <vendor> -a run_id=<id>`). Needs REDIS_URL.
"""

from __future__ import annotations

import argparse

from scrapy.commands import ScrapyCommand
from scrapy.exceptions import UsageError
from scrapy.spiderloader import get_spider_loader
from scrapy.utils.conf import arglist_to_dict
from sqlalchemy.exc import SQLAlchemyError

from christmas_spiders.addon import project_config
from christmas_spiders.arguments import ArgumentError
from christmas_spiders.distributed.announce import announce_run
from christmas_spiders.distributed.connection import RedisUnavailable
from christmas_spiders.errors import one_line


class Command(ScrapyCommand):
    requires_project = True
    requires_crawler_process = False

    def syntax(self) -> str:
        return "<vendor> [-a NAME=VALUE ...]"

    def short_desc(self) -> str:
        return "Open a crawl run for the standing workers to crawl (needs REDIS_URL)"

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        parser.add_argument(
            "-a",
            dest="spargs",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="spider argument, as for scrapy crawl (may be repeated)",
        )

    def process_options(self, args: list[str], opts: argparse.Namespace) -> None:
        super().process_options(args, opts)
        try:
            opts.spargs = arglist_to_dict(opts.spargs)
        except ValueError:
            raise UsageError("invalid -a value, use -a NAME=VALUE", print_help=False) from None

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        if len(args) != 1:
            raise UsageError("give exactly one spider name")
        assert self.settings is not None
        config = project_config(self.settings)
        if "run_id" in opts.spargs:
            raise UsageError("announce opens a new run; run_id is not an option here")
        try:
            spider_class = get_spider_loader(self.settings).load(args[0])
        except KeyError:
            raise UsageError(f"unknown spider {args[0]!r}", print_help=False) from None
        try:
            checked = spider_class.check_arguments(opts.spargs, config)
            run_id = announce_run(config, spider_class.name, checked["arguments"])
        except (ArgumentError, RedisUnavailable) as error:
            raise UsageError(str(error), print_help=False) from None
        except SQLAlchemyError as error:
            raise UsageError(
                f"the database is unavailable: {one_line(error)}", print_help=False
            ) from None
        print(run_id)
