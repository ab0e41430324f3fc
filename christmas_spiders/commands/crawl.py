"""`scrapy crawl`, exiting non-zero when the crawl run failed (e.g. items were dead-lettered)."""

from __future__ import annotations

import argparse

from scrapy.commands.crawl import Command as ScrapyCrawl
from scrapy.exceptions import UsageError

from christmas_spiders.extensions import STATUS_STAT


class Command(ScrapyCrawl):
    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        if len(args) != 1:
            raise UsageError("give exactly one spider name")
        assert self.crawler_process
        crawler = self._create_crawler(args[0])
        self.crawler_process.crawl(crawler, **opts.spargs)
        self.crawler_process.start()
        failed = crawler.stats is not None and crawler.stats.get_value(STATUS_STAT) == "failed"
        if self.crawler_process.bootstrap_failed or failed:
            self.exitcode = 1
