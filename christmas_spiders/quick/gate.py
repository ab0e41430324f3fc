"""A downloader middleware that holds a quick sync's requests until its stored products are
loaded (``QuickSync.ensure_loaded``): the listings are compared with them, and they are read
only once the crawl's run is open (the run recorder migrates the database and opens it as the
spider opens; requests flow after that). A full sync passes straight through.
"""

from __future__ import annotations

from scrapy import Request
from scrapy.crawler import Crawler


class SnapshotGate:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SnapshotGate:
        return cls(crawler)

    async def process_request(self, request: Request) -> None:
        quick = getattr(self.crawler.spider, "quick", None)
        if quick is not None:
            await quick.ensure_loaded()
