"""`scrapy crawl`, with spider arguments checked before the crawl starts, and a non-zero exit
when the crawl run failed (e.g. items had to be dead-lettered, or a part of the crawl broke:
see crawl_errors). The status is read once the crawl is over, after every component closed.
With REDIS_URL, Redis must answer before anything starts (README "Scale out")."""

from __future__ import annotations

import argparse
import asyncio
import logging

from scrapy.commands.crawl import Command as ScrapyCrawl
from scrapy.exceptions import UsageError
from sqlalchemy.exc import SQLAlchemyError

from christmas_spiders.addon import project_config
from christmas_spiders.arguments import ArgumentError
from christmas_spiders.distributed import connection
from christmas_spiders.errors import one_line
from christmas_spiders.extensions import STATUS_STAT

logger = logging.getLogger(__name__)


class Command(ScrapyCrawl):
    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        if len(args) != 1:
            raise UsageError("give exactly one spider name")
        assert self.crawler_process and self.settings
        spider_class = self.crawler_process.spider_loader.load(args[0])
        config = project_config(self.settings)  # loaded by the add-on as the process started
        redis_url = config.redis_url
        if redis_url:
            try:
                connection.check(redis_url).close()
            except connection.RedisUnavailable as error:
                raise UsageError(f"cannot start the crawl: {error}", print_help=False) from None
        check = getattr(spider_class, "check_arguments", None)
        if check:
            try:
                check(opts.spargs, config)
            except ArgumentError as error:
                raise UsageError(str(error), print_help=False) from None
            except SQLAlchemyError as error:
                raise UsageError(
                    f"cannot check the arguments, the database is unavailable: {one_line(error)}",
                    print_help=False,
                ) from None
        crawler = self._create_crawler(args[0])
        crawl = self.crawler_process.crawl(crawler, **opts.spargs)
        self.crawler_process.start()
        _log_crawl_error(crawl)
        failed = crawler.stats is not None and crawler.stats.get_value(STATUS_STAT) == "failed"
        if self.crawler_process.bootstrap_failed or failed:
            self.exitcode = 1


def _log_crawl_error(crawl: object) -> None:
    """A component that raised while the crawl opened stops it: its error, logged now (asyncio
    would only report it whenever the task happens to be garbage-collected)."""
    if isinstance(crawl, asyncio.Task) and crawl.done() and not crawl.cancelled():
        error = crawl.exception()
        if error is not None:
            logger.error("the crawl stopped: %s", one_line(error), exc_info=error)
