"""Test-only Scrapy components that break on purpose (tests/test_crash_safety.py).

Each fault comes as a Scrapy add-on, enabled with ``-s 'ADDONS={"tests.faulty_components.X": 1}'``:
it adds its component to the project's EXTENSIONS or ITEM_PIPELINES instead of replacing them,
so the crawl runs with everything it normally has, plus the fault.
"""

from __future__ import annotations

from typing import Any

from scrapy import Spider, signals
from scrapy.crawler import Crawler
from scrapy.settings import BaseSettings

from christmas_spiders.crawl_heartbeat import CrawlHeartbeat
from christmas_spiders.storage import get_engine, heartbeats

INJECTED = "injected fault"  # in every message, for the tests to find


class SignalRaises:
    """An extension whose spider_opened or spider_closed handler raises."""

    signal: Any = None

    def __init__(self, crawler: Crawler) -> None:
        crawler.signals.connect(self.handler, signal=self.signal)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SignalRaises:
        return cls(crawler)

    async def handler(self, spider: Spider) -> None:
        raise RuntimeError(f"{INJECTED} in a {type(self).__name__} handler")


class OpenedRaises(SignalRaises):
    signal = signals.spider_opened


class ClosedRaises(SignalRaises):
    signal = signals.spider_closed


class _HeartbeatWriteRaises(heartbeats.Heartbeat):
    """A heartbeat whose first database write raises an error that is not the database's (those
    the heartbeat handles itself): what the embedded server's lock raised in issue #17."""

    def start(self, **details: Any) -> bool:
        raise RuntimeError(f"{INJECTED}: Unable to release an unaquired lock")


class BrokenHeartbeat(CrawlHeartbeat):
    """The crawl's heartbeat, with the write above."""

    def _start(self, spider: Spider) -> None:
        self.heartbeat = _HeartbeatWriteRaises(get_engine(self.config), "crawl", self.interval)
        self.heartbeat.start(**self._details(spider))


class OpenRaisesPipeline:
    """An item pipeline that cannot open: the crawl stops before its spider opens."""

    def open_spider(self) -> None:
        raise RuntimeError(f"{INJECTED}: the pipeline cannot open")

    def process_item(self, item: Any) -> Any:
        return item


# -- the add-ons ---------------------------------------------------------------------------------


class _Addon:
    setting = "EXTENSIONS"
    components: tuple[tuple[str, int | None], ...] = ()

    def update_settings(self, settings: BaseSettings) -> None:
        for path, priority in self.components:
            settings[self.setting][path] = priority


class SpiderOpenedFails(_Addon):
    components = ((f"{__name__}.OpenedRaises", 500),)


class SpiderClosedFails(_Addon):
    components = ((f"{__name__}.ClosedRaises", 500),)


class HeartbeatFails(_Addon):
    components = (
        ("christmas_spiders.crawl_heartbeat.CrawlHeartbeat", None),
        (f"{__name__}.BrokenHeartbeat", 110),
    )


class PipelineOpenFails(_Addon):
    setting = "ITEM_PIPELINES"
    components = ((f"{__name__}.OpenRaisesPipeline", 400),)
