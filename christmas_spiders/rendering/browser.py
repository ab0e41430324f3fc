"""One headless Chromium with its own chromedriver, and how a page is read from it: the main
document's status and headers from Chromium's performance log, the awaited elements counted in
one script round trip per poll."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any

import psutil
import urllib3.exceptions
from scrapy.http import Headers
from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

from christmas_spiders.errors import one_line
from christmas_spiders.rendering.errors import (
    BrowserDied,
    BrowserUnavailable,
    RenderError,
    RenderNetworkError,
    RenderTimeout,
)
from christmas_spiders.rendering.processes import (
    PROCESS_EXIT_SECONDS,
    kill,
    process_tree,
    remove_folder,
    running,
    wait_gone,
)
from christmas_spiders.rendering.settings import BROWSER_FOLDER_PREFIX, RenderConfig, RenderSpec

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.1
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
_INTEGER = re.compile(r"\d[\d,]*")
# One round trip per poll: how many awaited elements, and the text that says how many to expect.
_COUNT_SCRIPT = """
const [waitFor, countFrom] = arguments;
const counter = countFrom ? document.querySelector(countFrom) : null;
return [document.querySelectorAll(waitFor).length, counter ? counter.textContent : null];
"""
# What a failing or dead chromedriver raises through Selenium (urllib3 errors: it is gone).
_DRIVER_ERRORS = (WebDriverException, urllib3.exceptions.HTTPError)


@dataclass(frozen=True)
class Page:
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


class Browser:
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
            remove_folder(folder)
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

    def render(self, url: str, spec: RenderSpec) -> Page:
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
            return Page(
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
            raise BrowserDied(_first_line(error)) from error

    def _alive(self, driver: WebDriver) -> bool:
        if not all(running(process) for process in self._vital):
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
        tree = process_tree(self._processes)
        try:
            if graceful:
                driver.quit()  # Selenium ends the session, then stops chromedriver
            else:
                kill(tree)
                if driver.service.process is not None:  # our child: wait until it is dead
                    driver.service.process.wait(PROCESS_EXIT_SECONDS)
                wait_gone(tree)
                driver.service.stop()  # nothing left to shut down, only files to close
                driver.command_executor.close()
        except (OSError, subprocess.TimeoutExpired) as error:  # what is left is killed below
            logger.warning("%s: chromedriver did not stop cleanly: %s", self.name, error)
        finally:
            leftovers = [process for process in tree if running(process)]
            if leftovers:
                logger.debug("%s: killing %d leftover process(es)", self.name, len(leftovers))
                kill(leftovers)
            stuck = wait_gone(leftovers)
            if stuck:
                logger.warning("%s: processes %s did not exit", self.name, [p.pid for p in stuck])
            self._vital, self._processes = [], []
            if self._folder:
                remove_folder(self._folder)
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
    """The error as one line, without the "Message:" Selenium puts in front of every message."""
    return one_line(error).removeprefix("Message:").strip() or type(error).__name__
