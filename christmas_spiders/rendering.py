"""The Selenium downloader middleware: renders opted-in requests in headless Chromium.

Only requests that carry ``request.meta["render"]`` go to a browser; every other request passes
through untouched to Scrapy's own downloader (contract §C4: only HO's year grids need one). The
meta value is a plain JSON dict, so it survives a scrapy-redis queue::

    {"wait_for": ".product-item", "count_from": ".product-count", "timeout": 20}

``wait_for``   CSS selector; wait until at least one such element exists. Without it the page
               is returned as soon as it has loaded.
``count_from`` CSS selector of an element whose text holds the expected number of ``wait_for``
               elements (the last integer in its text, "Total number of products: 1,204" →
               1204); wait until that many exist. 0 means done at once (an empty grid is valid).
               When the element is absent or holds no number, or without ``count_from``, wait
               until at least one element exists and their number has not changed for
               ``SELENIUM_SETTLE_TIME``.
``timeout``    seconds to wait for the elements on this page (default ``SELENIUM_WAIT_TIMEOUT``).

A page whose main document answers with a status outside 2xx is returned at once, without
waiting (a 404 stays a 404, a 503 is retried by the RetryMiddleware).

The response is an ``HtmlResponse`` holding the DOM the browser built (UTF-8), the final URL after
redirects, the real status and headers of the main document (from Chromium's performance log),
``flags=["rendered"]`` and ``meta["render_seconds"]``; ``response.meta`` is the request's meta.

Failures reach the spider's errback (after Scrapy's retries where retrying makes sense):
``RenderTimeout`` (a ``TimeoutError``, hence retried by the default ``RETRY_EXCEPTIONS``) when the
page did not load within ``SELENIUM_PAGE_TIMEOUT`` or its elements did not appear within the wait
timeout; ``RenderNetworkError`` (a ``ConnectionError``, retried) when the browser could not load
the page at all; ``BrowserCrashed`` (not retried) when the browser died more than
``SELENIUM_MAX_RESTARTS`` times on one request; ``BadRenderRequest`` (not retried) for a malformed
``meta["render"]`` or a non-GET request; ``BrowserUnavailable`` when Chromium failed to start
``SELENIUM_MAX_RESTARTS`` + 1 times in a row, which also closes the spider with reason
``browser_unavailable`` (the crawl run then fails).

Browser work runs in a thread pool of ``SELENIUM_MAX_BROWSERS`` threads, one browser each,
bounded by a semaphore, so the reactor never waits. Browsers start on the first render (spiders
that never render never start one) and are quit at spider close and engine stop, together with
every process they started and their folder: each browser gets its own ``TMPDIR``,
``<temp dir>/xmas-XXXXXXXX``, holding its profile and whatever Chromium or chromedriver leave
behind when killed. Renders bypass the download slots: ``DOWNLOAD_DELAY``, AutoThrottle and
``CONCURRENT_REQUESTS_PER_DOMAIN`` do not apply to them; ``SELENIUM_MAX_BROWSERS`` is their only
bound.

Settings (read once, in ``from_crawler``; a bad value stops the crawl at start with one sentence):

``SELENIUM_ENABLED``       default True; False switches the middleware off (``NotConfigured``).
``SELENIUM_BROWSER_PATH``  Chromium executable, default ``/usr/bin/chromium``.
``SELENIUM_DRIVER_PATH``   chromedriver executable, default ``/usr/bin/chromedriver``.
``SELENIUM_MAX_BROWSERS``  browsers (and concurrent renders), default 1; at most
                           ``CONCURRENT_REQUESTS``.
``SELENIUM_PAGE_TIMEOUT``  seconds for a page to load, default 30.
``SELENIUM_WAIT_TIMEOUT``  seconds for the awaited elements once loaded, default 15.
``SELENIUM_SETTLE_TIME``   seconds the element count must stay unchanged, default 0.5; shorter
                           than ``SELENIUM_WAIT_TIMEOUT``.
``SELENIUM_MAX_RESTARTS``  browser restarts allowed per request before it fails, default 2.
``USER_AGENT``             passed to the browser.

Stats: ``selenium/renders`` (successful renders, read by the crawl-run recorder),
``selenium/render_failures`` (renders that raised, timeouts included), ``selenium/timeouts``,
``selenium/restarts`` (launches after a crash or a failed launch) and
``selenium/render_seconds`` (time spent in the browser by every render, waiting for a free
browser excluded).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import psutil
import urllib3.exceptions
from scrapy import Request, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import Headers, HtmlResponse
from scrapy.settings import BaseSettings
from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

logger = logging.getLogger(__name__)

DEFAULT_BROWSER_PATH = "/usr/bin/chromium"
DEFAULT_DRIVER_PATH = "/usr/bin/chromedriver"
DEFAULT_MAX_BROWSERS = 1
DEFAULT_PAGE_TIMEOUT = 30.0
DEFAULT_WAIT_TIMEOUT = 15.0
DEFAULT_SETTLE_TIME = 0.5
DEFAULT_MAX_RESTARTS = 2

RENDER_META_KEY = "render"
RENDERED_FLAG = "rendered"
CLOSE_REASON = "browser_unavailable"
BROWSER_FOLDER_PREFIX = "xmas-"  # + 8 random characters; kept short, see _check_temp_dir
# Chromium's singleton socket lives in $TMPDIR/org.chromium.Chromium.XXXXXX/SingletonSocket, and a
# Unix socket path holds at most 107 bytes; our per-browser TMPDIR is <temp dir>/xmas-XXXXXXXX.
_SOCKET_PATH_MAX = 107
_SOCKET_PATH_TAIL = len(
    f"/{BROWSER_FOLDER_PREFIX}12345678/org.chromium.Chromium.123456/SingletonSocket"
)
POLL_SECONDS = 0.1
PROCESS_EXIT_SECONDS = 5.0
# Headless Chromium as root in a container, with nothing running that a crawl does not need.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-extensions",
    # Each grid is a same-site navigation of one tab: with the back-forward cache the renderer
    # kept every earlier grid alive (HO 20,000 products: 852 → 537 MB, bench figure 8).
    "--disable-features=BackForwardCache",
)
CHROMIUM_PREFS = {"profile.managed_default_content_settings.images": 2}  # no images
# Headers that describe the bytes on the wire, not the DOM we return.
_WIRE_HEADERS = ("content-encoding", "content-length", "transfer-encoding")
_SPEC_KEYS = ("wait_for", "count_from", "timeout")
_INTEGER = re.compile(r"\d[\d,]*")
# One round trip per poll: how many awaited elements, and the text that says how many to expect.
_COUNT_SCRIPT = """
const [waitFor, countFrom] = arguments;
const counter = countFrom ? document.querySelector(countFrom) : null;
return [document.querySelectorAll(waitFor).length, counter ? counter.textContent : null];
"""
# What a failing or dead chromedriver raises through Selenium (urllib3 errors: it is gone).
_DRIVER_ERRORS = (WebDriverException, urllib3.exceptions.HTTPError)


class RenderSettingsError(ValueError):
    """A bad SELENIUM_* setting, phrased as one sentence that names it."""


class RenderError(Exception):
    """A render that produced no page; the request fails (see the subclasses for retries)."""


class BadRenderRequest(RenderError, ValueError):
    """``meta["render"]`` is malformed or the request cannot be rendered; not retried."""


class RenderTimeout(RenderError, TimeoutError):
    """The page did not load, or its elements did not appear, in time; retried by Scrapy."""


class RenderNetworkError(RenderError, ConnectionError):
    """The browser could not load the page at all (refused, DNS…); retried by Scrapy."""


class BrowserCrashed(RenderError):
    """The browser died more than SELENIUM_MAX_RESTARTS times on one request; not retried."""


class BrowserUnavailable(RenderError):
    """Chromium cannot be started; the spider is closed."""


class _BrowserDied(Exception):
    """Internal: the driver stopped answering during a render."""


@dataclass(frozen=True)
class RenderConfig:
    """The middleware's settings, checked once at start."""

    browser_path: str = DEFAULT_BROWSER_PATH
    driver_path: str = DEFAULT_DRIVER_PATH
    max_browsers: int = DEFAULT_MAX_BROWSERS
    page_timeout: float = DEFAULT_PAGE_TIMEOUT
    wait_timeout: float = DEFAULT_WAIT_TIMEOUT
    settle_time: float = DEFAULT_SETTLE_TIME
    max_restarts: int = DEFAULT_MAX_RESTARTS
    user_agent: str | None = None
    temp_dir: str = field(default_factory=tempfile.gettempdir)  # browsers' folders go here

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> RenderConfig:
        config = cls(
            browser_path=_executable(settings, "SELENIUM_BROWSER_PATH", DEFAULT_BROWSER_PATH),
            driver_path=_executable(settings, "SELENIUM_DRIVER_PATH", DEFAULT_DRIVER_PATH),
            max_browsers=_count(settings, "SELENIUM_MAX_BROWSERS", DEFAULT_MAX_BROWSERS, 1),
            page_timeout=_seconds(settings, "SELENIUM_PAGE_TIMEOUT", DEFAULT_PAGE_TIMEOUT),
            wait_timeout=_seconds(settings, "SELENIUM_WAIT_TIMEOUT", DEFAULT_WAIT_TIMEOUT),
            settle_time=_seconds(settings, "SELENIUM_SETTLE_TIME", DEFAULT_SETTLE_TIME),
            max_restarts=_count(settings, "SELENIUM_MAX_RESTARTS", DEFAULT_MAX_RESTARTS, 0),
            user_agent=settings.get("USER_AGENT") or None,
            temp_dir=_check_temp_dir(tempfile.gettempdir()),
        )
        if config.settle_time >= config.wait_timeout:
            raise RenderSettingsError(
                f"SELENIUM_SETTLE_TIME ({config.settle_time:g} s) must be shorter than "
                f"SELENIUM_WAIT_TIMEOUT ({config.wait_timeout:g} s), or no render could settle."
            )
        concurrent = settings.getint("CONCURRENT_REQUESTS")
        if config.max_browsers > concurrent:
            raise RenderSettingsError(
                f"SELENIUM_MAX_BROWSERS ({config.max_browsers}) must not exceed "
                f"CONCURRENT_REQUESTS ({concurrent}), or some browsers could never be used."
            )
        return config


def _executable(settings: BaseSettings, name: str, default: str) -> str:
    value = settings.get(name, default)
    if not isinstance(value, str | Path) or not str(value).strip():
        raise RenderSettingsError(f"{name} must be the path of an executable, not {value!r}.")
    path = str(value).strip()
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise RenderSettingsError(f"{name} must be the path of an executable, not {path!r}.")
    return path


def _check_temp_dir(path: str) -> str:
    room = _SOCKET_PATH_MAX - _SOCKET_PATH_TAIL
    if len(path) > room:
        raise RenderSettingsError(
            f"the temporary folder {path} ({len(path)} characters) is too long a path for "
            f"Chromium's sockets; set TMPDIR to a folder of at most {room} characters."
        )
    return path


def _count(settings: BaseSettings, name: str, default: int, minimum: int) -> int:
    value = settings.get(name, default)
    try:
        if isinstance(value, bool | float):
            raise ValueError(value)
        number = int(value)
    except (TypeError, ValueError):
        raise RenderSettingsError(f"{name} must be a whole number, not {value!r}.") from None
    if number < minimum:
        raise RenderSettingsError(f"{name} must be at least {minimum}, not {value!r}.")
    return number


def _seconds(settings: BaseSettings, name: str, default: float) -> float:
    value = settings.get(name, default)
    try:
        if isinstance(value, bool):
            raise ValueError(value)
        number = float(value)
    except (TypeError, ValueError):
        raise RenderSettingsError(f"{name} must be a number of seconds, not {value!r}.") from None
    if not 0 < number < float("inf"):
        raise RenderSettingsError(f"{name} must be a number of seconds above 0, not {value!r}.")
    return number


@dataclass(frozen=True)
class RenderSpec:
    """What one request asks of the browser: ``request.meta["render"]``, checked."""

    wait_for: str | None = None
    count_from: str | None = None
    timeout: float | None = None

    @classmethod
    def from_meta(cls, value: Any) -> RenderSpec:
        if not isinstance(value, dict):
            raise BadRenderRequest(
                f"meta['render'] must be a dict such as {{'wait_for': '.product-item'}}, "
                f"not {value!r}."
            )
        unknown = sorted(set(value) - set(_SPEC_KEYS))
        if unknown:
            raise BadRenderRequest(
                f"meta['render'] has unknown key(s) {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(_SPEC_KEYS)}."
            )
        for key in ("wait_for", "count_from"):
            selector = value.get(key)
            if selector is not None and (not isinstance(selector, str) or not selector.strip()):
                raise BadRenderRequest(f"meta['render'][{key!r}] must be a CSS selector.")
        if value.get("count_from") and not value.get("wait_for"):
            raise BadRenderRequest("meta['render'] has count_from without wait_for.")
        timeout = value.get("timeout")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
        ):
            raise BadRenderRequest(
                f"meta['render']['timeout'] must be seconds above 0, not {timeout!r}."
            )
        return cls(value.get("wait_for"), value.get("count_from"), timeout)


@dataclass(frozen=True)
class _Page:
    """What the browser made of a URL."""

    url: str
    status: int
    headers: Headers
    body: bytes


@dataclass(frozen=True)
class _Document:
    """The main document's answer, read from Chromium's performance log."""

    status: int | None = None
    headers: dict[str, str] | None = None
    error: str | None = None


class SeleniumMiddleware:
    """Renders requests that carry ``meta["render"]``; see the module docstring."""

    def __init__(self, crawler: Crawler, config: RenderConfig) -> None:
        assert crawler.stats is not None
        self.crawler = crawler
        self.stats = crawler.stats
        self.config = config
        self._semaphore = asyncio.Semaphore(config.max_browsers)
        self._executor = ThreadPoolExecutor(config.max_browsers, thread_name_prefix="selenium")
        self._browsers: list[_Browser] = []  # every browser slot, busy or idle
        self._idle: list[_Browser] = []
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

    def _new_browser(self) -> _Browser:
        browser = _Browser(self.config, number=len(self._browsers) + 1)
        self._browsers.append(browser)
        return browser

    def _release(
        self, browser: _Browser, started: float, restarts: int, future: asyncio.Future[_Page]
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

    def _render(self, browser: _Browser, url: str, spec: RenderSpec) -> _Page:
        """Worker thread: render, restarting a browser that dies, at most max_restarts times."""
        attempts = self.config.max_restarts + 1
        for attempt in range(1, attempts + 1):
            try:
                browser.start()
                return browser.render(url, spec)
            except (_BrowserDied, BrowserUnavailable) as error:
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


class _Browser:
    """One Chromium with its own chromedriver and fresh profile folder, relaunched in place after
    a crash. Used by one worker thread at a time; ``quit`` may come from another thread."""

    def __init__(self, config: RenderConfig, number: int) -> None:
        self.config = config
        self.name = f"browser {number}"
        self.restarts = 0
        self._lock = threading.Lock()
        self._driver: WebDriver | None = None
        self._folder: str | None = None  # profile and temporary files, removed at quit
        self._vital: list[psutil.Process] = []  # chromedriver and Chromium's main process
        # Every process at launch: roots of what to kill, since the helpers of a killed Chromium
        # are re-parented to init and no longer found as its children.
        self._processes: list[psutil.Process] = []
        self._crashed = False
        self._closed = False

    @property
    def started(self) -> bool:
        return self._driver is not None

    def start(self) -> None:
        with self._lock:
            if self._closed:
                raise RenderError(f"{self.name} is shut down.")
            if self._driver is not None:
                return
            if self._crashed:
                self.restarts += 1
            self._launch()
            self._crashed = False

    def _launch(self) -> None:
        folder = tempfile.mkdtemp(prefix=BROWSER_FOLDER_PREFIX, dir=self.config.temp_dir)
        # The children inherit our environment, with their own TMPDIR: what a killed Chromium or
        # chromedriver leaves behind (singleton sockets, scoped dirs) goes with the folder.
        service = Service(
            executable_path=self.config.driver_path, env={**os.environ, "TMPDIR": folder}
        )
        options = _chrome_options(self.config, os.path.join(folder, "profile"))
        try:
            driver = webdriver.Chrome(options=options, service=service)
            driver.set_page_load_timeout(self.config.page_timeout)
        except (*_DRIVER_ERRORS, OSError) as error:
            _remove_folder(folder)
            raise BrowserUnavailable(
                f"cannot start Chromium (SELENIUM_BROWSER_PATH={self.config.browser_path}, "
                f"SELENIUM_DRIVER_PATH={self.config.driver_path}): {_first_line(error)}"
            ) from error
        assert service.process is not None
        chromedriver = psutil.Process(service.process.pid)
        self._driver, self._folder = driver, folder
        self._vital = [chromedriver, *chromedriver.children()]
        self._processes = [chromedriver, *chromedriver.children(recursive=True)]
        logger.info(
            "%s started: Chromium %s, chromedriver pid %d",
            self.name,
            driver.capabilities.get("browserVersion", "?"),
            chromedriver.pid,
        )

    def render(self, url: str, spec: RenderSpec) -> _Page:
        driver = self._driver
        assert driver is not None
        try:
            driver.get_log("performance")  # drop what the previous page logged
            try:
                driver.get(url)
            except TimeoutException:
                raise RenderTimeout(
                    f"{url} did not load within {self.config.page_timeout:g} s "
                    "(SELENIUM_PAGE_TIMEOUT)."
                ) from None
            frame = driver.execute_cdp_cmd("Page.getFrameTree", {})["frameTree"]["frame"]["id"]
            document = _main_document(driver.get_log("performance"), frame)
            if document.status is None and document.error:
                raise RenderNetworkError(f"the browser could not load {url}: {document.error}.")
            status = document.status or 200
            if spec.wait_for and 200 <= status < 300:
                timeout = spec.timeout or self.config.wait_timeout
                _wait_for_elements(driver, url, spec, timeout, self.config.settle_time)
            return _Page(
                url=driver.current_url,
                status=status,
                headers=_response_headers(document.headers or {}),
                body=driver.page_source.encode("utf-8"),
            )
        except RenderError:
            raise
        except _DRIVER_ERRORS as error:
            if self._alive(driver):
                raise RenderError(f"the browser failed on {url}: {_first_line(error)}") from error
            raise _BrowserDied(_first_line(error)) from error

    def _alive(self, driver: WebDriver) -> bool:
        if not all(_running(process) for process in self._vital):
            return False
        try:
            driver.execute_script("return 1")
        except _DRIVER_ERRORS:
            return False
        return True

    def discard(self) -> None:
        """After a crash: kill what is left of this browser; the next start relaunches it."""
        with self._lock:
            self._crashed = True
            self._stop(graceful=False)

    def quit(self, graceful: bool = True) -> None:
        with self._lock:
            self._closed = True
            self._stop(graceful)

    def _stop(self, graceful: bool) -> None:
        driver, self._driver = self._driver, None
        if driver is None:
            return
        tree = _process_tree(self._processes)
        try:
            if graceful:
                driver.quit()  # Selenium ends the session, then stops chromedriver
            else:
                _kill(tree)
                if driver.service.process is not None:  # our child: wait until it is dead
                    driver.service.process.wait(PROCESS_EXIT_SECONDS)
                _wait_gone(tree)
                driver.service.stop()  # nothing left to shut down, only files to close
                driver.command_executor.close()
        except (OSError, subprocess.TimeoutExpired) as error:  # what is left is killed below
            logger.warning("%s: chromedriver did not stop cleanly: %s", self.name, error)
        finally:
            leftovers = [process for process in tree if _running(process)]
            if leftovers:
                logger.debug("%s: killing %d leftover process(es)", self.name, len(leftovers))
                _kill(leftovers)
            stuck = _wait_gone(leftovers)
            if stuck:
                logger.warning("%s: processes %s did not exit", self.name, [p.pid for p in stuck])
            self._vital, self._processes = [], []
            if self._folder:
                _remove_folder(self._folder)
                self._folder = None


def _chrome_options(config: RenderConfig, profile: str) -> webdriver.ChromeOptions:
    options = webdriver.ChromeOptions()
    options.binary_location = config.browser_path
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    if config.user_agent:
        options.add_argument(f"--user-agent={config.user_agent}")
    options.add_experimental_option("prefs", CHROMIUM_PREFS)
    # Network events of the page, to read the main document's status and headers.
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    options.add_experimental_option("perfLoggingPrefs", {"enableNetwork": True})
    return options


def _main_document(entries: list[dict[str, Any]], frame: str) -> _Document:
    """The status and headers of the last document loaded in the main frame, or why it failed."""
    request_id: str | None = None
    document = _Document()
    for entry in entries:
        message = json.loads(entry["message"])["message"]
        method, params = message.get("method"), message.get("params", {})
        if (
            method == "Network.requestWillBeSent"
            and params.get("type") == "Document"
            and params.get("frameId") == frame
        ):
            if params["requestId"] != request_id:  # a redirect keeps its request id
                request_id, document = params["requestId"], _Document()
        elif request_id is None or params.get("requestId") != request_id:
            continue
        elif method == "Network.responseReceived":
            response = params["response"]
            document = _Document(status=int(response["status"]), headers=response["headers"])
        elif method == "Network.loadingFailed" and document.status is None:
            document = _Document(error=params.get("errorText") or "loading failed")
    return document


def _response_headers(raw: dict[str, str]) -> Headers:
    headers = Headers()
    for name, value in raw.items():
        if name.lower() not in _WIRE_HEADERS:
            headers.setlist(name, value.split("\n"))  # CDP joins repeated headers with \n
    headers["Content-Type"] = "text/html; charset=utf-8"  # the DOM, serialised by us
    return headers


def _wait_for_elements(
    driver: WebDriver, url: str, spec: RenderSpec, timeout: float, settle: float
) -> None:
    deadline = time.monotonic() + timeout
    count, expected, changed_at = -1, None, time.monotonic()
    while True:
        found, counter_text = driver.execute_script(_COUNT_SCRIPT, spec.wait_for, spec.count_from)
        now = time.monotonic()
        if found != count:
            count, changed_at = found, now
        expected = _last_integer(counter_text)
        if expected is not None:
            if count >= expected:
                return
        elif count >= 1 and now - changed_at >= settle:
            return
        if now >= deadline:
            wanted = expected if expected is not None else "at least 1, stable"
            raise RenderTimeout(
                f"{url}: {count} {spec.wait_for!r} element(s) after {timeout:g} s, "
                f"expected {wanted}."
            )
        time.sleep(POLL_SECONDS)


def _last_integer(text: str | None) -> int | None:
    numbers = _INTEGER.findall(text or "")
    return int(numbers[-1].replace(",", "")) if numbers else None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    if text.startswith("Message:"):
        text = text.removeprefix("Message:").strip()
    return text.splitlines()[0] if text else type(error).__name__


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _process_tree(roots: list[psutil.Process]) -> list[psutil.Process]:
    found: dict[int, psutil.Process] = {}
    for root in roots:
        if not _running(root):
            continue
        found[root.pid] = root
        try:
            found.update((child.pid, child) for child in root.children(recursive=True))
        except psutil.NoSuchProcess:
            continue
    return list(found.values())


def _kill(processes: list[psutil.Process]) -> None:
    for process in processes:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            continue


def _wait_gone(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Wait until the processes are gone; a zombie counts as gone (it is only awaiting reaping,
    which its parent, or init, does)."""
    deadline = time.monotonic() + PROCESS_EXIT_SECONDS
    pending = [process for process in processes if _running(process)]
    while pending and time.monotonic() < deadline:
        time.sleep(0.05)
        pending = [process for process in pending if _running(process)]
    return pending


def _remove_folder(path: str) -> None:
    try:
        shutil.rmtree(path)
    except OSError as error:
        logger.warning("could not remove the browser folder %s: %s", path, error)
