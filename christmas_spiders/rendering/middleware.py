"""The Selenium downloader middleware: a bounded pool of browsers behind an asyncio semaphore,
renders in worker threads, counted in the crawl stats (see the package docstring)."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from scrapy import Request, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import HtmlResponse

from christmas_spiders.rendering.browser import Browser, Page
from christmas_spiders.rendering.errors import (
    BadRenderRequest,
    BrowserCrashed,
    BrowserDied,
    BrowserUnavailable,
    RenderError,
    RenderTimeout,
)
from christmas_spiders.rendering.settings import RenderConfig, RenderSpec

logger = logging.getLogger(__name__)

RENDER_META_KEY = "render"
RENDERED_FLAG = "rendered"
CLOSE_REASON = "browser_unavailable"


class SeleniumMiddleware:
    """Renders requests that carry ``meta["render"]``; see the module docstring."""

    def __init__(self, crawler: Crawler, config: RenderConfig) -> None:
        assert crawler.stats is not None
        self.crawler = crawler
        self.stats = crawler.stats
        self.config = config
        self._semaphore = asyncio.Semaphore(config.max_browsers)
        self._executor = ThreadPoolExecutor(config.max_browsers, thread_name_prefix="selenium")
        self._browsers: list[Browser] = []  # every browser slot, busy or idle
        self._idle: list[Browser] = []
        self._closing = False  # no new renders
        self._shut_down = False  # browsers quit
        self._render_seconds = 0.0
        self._close_task: asyncio.Task[None] | None = None  # held, or it may be collected
        crawler.signals.connect(self.close_browsers, signal=signals.spider_closed)
        crawler.signals.connect(self.close_browsers, signal=signals.engine_stopped)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SeleniumMiddleware:
        if not crawler.settings.getbool("SELENIUM_ENABLED", True):
            raise NotConfigured("SELENIUM_ENABLED is off")
        return cls(crawler, RenderConfig.from_settings(crawler.settings))

    async def process_request(self, request: Request) -> HtmlResponse | None:
        if request.meta.get(RENDER_META_KEY) is None:
            return None
        spec = RenderSpec.from_meta(request.meta[RENDER_META_KEY])
        if request.method != "GET":
            raise BadRenderRequest(f"only GET requests can be rendered, not {request}.")
        await self._semaphore.acquire()
        try:
            if self._closing:
                raise RenderError(f"not rendering {request.url}: the browsers are shut down.")
            browser = self._idle.pop() if self._idle else self._new_browser()
            started, restarts = time.monotonic(), browser.restarts
            future = asyncio.get_running_loop().run_in_executor(
                self._executor, self._render, browser, request.url, spec
            )
        except BaseException:
            self._semaphore.release()
            raise
        # The browser and its semaphore slot come back when the thread is done, not before, even
        # if this coroutine is cancelled meanwhile.
        future.add_done_callback(partial(self._release, browser, started, restarts))
        try:
            page = await asyncio.shield(future)
        except Exception as error:
            self.stats.inc_value("selenium/render_failures")
            if isinstance(error, RenderTimeout):
                self.stats.inc_value("selenium/timeouts")
                logger.info("render timed out: %s", error)
            raise
        self.stats.inc_value("selenium/renders")
        request.meta["render_seconds"] = round(time.monotonic() - started, 3)
        logger.debug(
            "rendered %s → %s (%d) in %.2f s",
            request.url,
            page.url,
            page.status,
            request.meta["render_seconds"],
        )
        return HtmlResponse(
            url=page.url,
            status=page.status,
            headers=page.headers,
            body=page.body,
            encoding="utf-8",
            request=request,
            flags=[RENDERED_FLAG],
        )

    def _new_browser(self) -> Browser:
        browser = Browser(self.config, number=len(self._browsers) + 1)
        self._browsers.append(browser)
        return browser

    def _release(
        self, browser: Browser, started: float, restarts: int, future: asyncio.Future[Page]
    ) -> None:
        """The render thread is done: count, give the browser back, free the slot."""
        self._render_seconds += time.monotonic() - started
        self.stats.set_value("selenium/render_seconds", round(self._render_seconds, 3))
        self.stats.inc_value("selenium/restarts", browser.restarts - restarts)
        error = None if future.cancelled() else future.exception()
        if isinstance(error, BrowserUnavailable):
            self._give_up(error)  # before the slot is freed, so no waiting render relaunches
        if not self._closing:
            self._idle.append(browser)
        self._semaphore.release()

    def _render(self, browser: Browser, url: str, spec: RenderSpec) -> Page:
        """Worker thread: render, restarting a browser that dies, at most max_restarts times."""
        attempts = self.config.max_restarts + 1
        for attempt in range(1, attempts + 1):
            try:
                browser.start()
                return browser.render(url, spec)
            except (BrowserDied, BrowserUnavailable) as error:
                browser.discard()
                if self._closing:
                    raise RenderError(f"not rendering {url}: the browsers are shut down.") from None
                if attempt == attempts:
                    if isinstance(error, BrowserUnavailable):
                        raise
                    raise BrowserCrashed(
                        f"the browser died {attempts} times rendering {url} "
                        f"(SELENIUM_MAX_RESTARTS={self.config.max_restarts}); last error: {error}"
                    ) from error
                logger.warning(
                    "%s died rendering %s (%s); restarting it (attempt %d of %d)",
                    browser.name,
                    url,
                    error,
                    attempt + 1,
                    attempts,
                )
        raise AssertionError("unreachable")

    def _give_up(self, error: BrowserUnavailable) -> None:
        if self._closing:
            return
        self._closing = True
        logger.error("%s; closing the spider.", error)
        engine = self.crawler.engine
        if engine is not None:  # not awaited: the engine waits for this request to finish
            self._close_task = asyncio.get_running_loop().create_task(
                engine.close_spider_async(reason=CLOSE_REASON)
            )
            self._close_task.add_done_callback(_log_task_error)

    async def close_browsers(self) -> None:
        """Quit every browser (spider_closed and engine_stopped; the second call does nothing)."""
        self._closing = True
        if self._shut_down:
            return
        self._shut_down = True
        started = [browser for browser in self._browsers if browser.started]
        # A browser still busy (the engine stopped mid-render) is killed, not asked to quit.
        await asyncio.gather(
            *(asyncio.to_thread(b.quit, graceful=b in self._idle) for b in self._browsers)
        )
        self._idle.clear()
        self._executor.shutdown(wait=False)
        if started:
            logger.info("closed %d browser(s)", len(started))


def _log_task_error(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("could not close the spider: %s", task.exception())
