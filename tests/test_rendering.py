"""The Selenium middleware against real headless Chromium and real HTTP on 127.0.0.1.

Crawls run as ``scrapy crawl`` child processes of the probe spider (``tests/spiders/
render_probe.py``) against a threaded ``http.server`` that serves ``tests/files/rendering/``
plus a few routes of its own (a redirect, a 404, slow pages, pages that kill the browser, and
``/tick``, where the probe knocks from its event loop). No check depends on how fast anything
runs: pages grow by the browser's looks at them (``grid.js``), and slow pages are held until
something has happened (knocks, another page), with generous deadlines. Each
crawl passes a unique environment marker down to chromedriver and Chromium, so the tests can
find, count and kill exactly that crawl's browser processes. One crawl exercises most behaviours
(module fixture ``main_crawl``); the tests read its report one behaviour at a time.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
import sqlalchemy as sa
from scrapy.exceptions import NotConfigured
from scrapy.settings import Settings
from scrapy.utils.test import get_crawler
from sqlalchemy.engine import Engine, make_url

from christmas_spiders.rendering import (
    BadRenderRequest,
    RenderConfig,
    RenderSettingsError,
    RenderSpec,
    SeleniumMiddleware,
)
from christmas_spiders.storage.schema import crawl_runs

from .conftest import ADMIN_URL, PROJECT_ROOT
from .crawl import scrapy_crawl
from .spiders.render_probe import RenderProbeSpider

PAGES = PROJECT_ROOT / "tests" / "files" / "rendering"
MARKER = "CHRISTMAS_RENDER_TEST_MARKER"
GRID = {"wait_for": ".product-item"}
COUNTED = {"wait_for": ".product-item", "count_from": ".product-count"}
SLOW_SECONDS = 0.4  # at least; see _ShopServer.slow_page
KNOCKS_WHILE_HELD = 3  # knocks on /tick from the crawl's event loop while a slow page is held
HOLD_SECONDS = 20.0  # at most, for what a held page waits for (only reached when a test fails)
CRAWL_SETTINGS = {
    "SPIDER_MODULES": "tests.spiders",
    "DOWNLOADER_MIDDLEWARES": json.dumps({"christmas_spiders.rendering.SeleniumMiddleware": 950}),
    "AUTOTHROTTLE_ENABLED": "False",
    "ROBOTSTXT_OBEY": "False",
    "RETRY_TIMES": "1",
}
MAIN_PLAN = [
    {"name": "plain", "path": "/grid.html?plain"},
    {"name": "grid", "path": "/grid.html", "render": GRID},
    {"name": "counted", "path": "/batches.html?counted", "render": COUNTED},
    {"name": "settled", "path": "/settles.html", "render": GRID},
    {"name": "empty", "path": "/empty.html", "render": COUNTED},
    {"name": "missing", "path": "/missing.html", "render": GRID},
    {"name": "moved", "path": "/moved.html", "render": GRID},
    {"name": "never", "path": "/never.html", "render": {**COUNTED, "timeout": 0.5}},
    {"name": "driver_killed", "path": "/kill/chromedriver.html", "render": COUNTED},
    {"name": "browser_killed", "path": "/kill/browser.html", "render": COUNTED},
    *({"name": f"slow{n}", "path": f"/slow/{n}.html", "render": COUNTED} for n in range(3)),
]


@dataclass(frozen=True)
class _Process:
    pid: int
    role: str  # chromedriver, browser (Chromium's main process) or helper (--type=…)


def _marked_processes(marker: str) -> list[_Process]:
    """Live (not zombie) chromedriver and Chromium processes started by the crawl with marker."""
    found = []
    for process in psutil.process_iter(["name"]):
        if not (process.info["name"] or "").startswith("chrom"):
            continue
        try:
            if process.status() == psutil.STATUS_ZOMBIE or process.environ().get(MARKER) != marker:
                continue
            # By the program run, not the name: Debian's /usr/bin/chromium is a shell script
            # whose shells are named chromium too (and exe() is cached across the exec).
            command = process.cmdline()
            # A child with its parent's command line is a fork that has not started its own
            # program yet (chromedriver launching Chromium, Chromium a helper): not one more.
            parent = process.parent()
            if parent is not None and parent.cmdline() == command:
                continue
            program = os.path.basename(command[0]) if command else ""
            helper = any(arg.startswith("--type=") for arg in command)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue  # gone meanwhile, or not ours
        if program == "chromedriver":
            role = "chromedriver"
        else:  # chromium, its crashpad handler, or the wrapper script's shell
            role = "browser" if program == "chromium" and not helper else "helper"
        found.append(_Process(process.pid, role))
    return found


class _Handler(http.server.SimpleHTTPRequestHandler):
    server: _ShopServer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, directory=str(PAGES), **kwargs)

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/tick":
            self.server.knock()
            self.send_response(204)
            self.end_headers()
            return
        self.server.seen.append((self.path, self.headers.get("User-Agent", "")))
        if path == "/moved.html":
            self.send_response(301)
            self.send_header("Location", "/grid.html?from=moved")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/missing.html":
            self._send_page("missing.html", status=404)
        elif path.startswith("/slow/"):
            with self.server.slow_page(paired="paired" in self.path):
                self._send_page("grid.html")
        elif path.startswith("/kill/"):
            self.server.kill_once(path.removeprefix("/kill/").removesuffix(".html"))
            self._send_page("grid.html")
        else:
            super().do_GET()

    def _send_page(self, name: str, status: int = 200) -> None:
        body = (PAGES / name).read_bytes()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read ``server.seen`` instead."""

    def handle(self) -> None:
        with suppress(BrokenPipeError, ConnectionResetError):  # a killed browser reads nothing
            super().handle()


class _ShopServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.pages_in_flight = threading.Condition()
        self.reset("")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def reset(self, marker: str) -> None:
        self.marker = marker
        self.seen: list[tuple[str, str]] = []
        self.killed: list[str] = []
        self.slow_now = self.slow_max = self.slow_arrivals = 0
        self.knocks = 0
        self.knocks_while_held: list[int] = []  # one entry per slow (unpaired) page

    def knock(self) -> None:
        with self.pages_in_flight:
            self.knocks += 1
            self.pages_in_flight.notify_all()

    @contextmanager
    def slow_page(self, paired: bool) -> Iterator[None]:
        """Count slow pages in flight. A slow page is held SLOW_SECONDS, then until the crawl's
        event loop has knocked on /tick KNOCKS_WHILE_HELD times since it arrived: a render that
        blocked the loop would stop the knocks (the probe has at most one in flight). A paired
        page that arrives first of its pair (1st, 3rd…) is held until the next one arrives, so
        parallel browsers show up as two pages in flight however their launches are staggered.
        Nothing is held longer than HOLD_SECONDS."""
        with self.pages_in_flight:
            self.slow_now += 1
            self.slow_max = max(self.slow_max, self.slow_now)
            self.slow_arrivals += 1
            mine, knocks = self.slow_arrivals, self.knocks
            self.pages_in_flight.notify_all()
            if paired and mine % 2 == 1:
                self.pages_in_flight.wait_for(lambda: self.slow_arrivals > mine, HOLD_SECONDS)
        if not paired:
            time.sleep(SLOW_SECONDS)
            with self.pages_in_flight:
                self.pages_in_flight.wait_for(
                    lambda: self.knocks - knocks >= KNOCKS_WHILE_HELD, HOLD_SECONDS
                )
                self.knocks_while_held.append(self.knocks - knocks)
        try:
            yield
        finally:
            with self.pages_in_flight:
                self.slow_now -= 1

    def kill_once(self, role: str) -> None:
        """SIGKILL this crawl's chromedriver or Chromium main process, the first time only."""
        with self.lock:
            if role in self.killed:
                return
            self.killed.append(role)
        for process in _marked_processes(self.marker):
            if process.role == role:
                os.kill(process.pid, signal.SIGKILL)
        time.sleep(0.2)  # the page is served after its browser's death has been noticed


class _BrowserWatch:
    """Samples the marked processes while a crawl runs: how many chromedrivers and browsers."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.max_drivers = self.max_browsers = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> _BrowserWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            roles = [process.role for process in _marked_processes(self.marker)]
            drivers, browsers = roles.count("chromedriver"), roles.count("browser")
            self.max_drivers = max(self.max_drivers, drivers)
            self.max_browsers = max(self.max_browsers, browsers)


@dataclass
class Crawl:
    returncode: int
    output: str
    report: dict[str, Any]
    seen: list[tuple[str, str]]
    slow_max: int
    max_drivers: int
    max_browsers: int
    knocks_while_held: list[int]
    leftovers: list[_Process] = field(default_factory=list)
    temp_files: list[str] = field(default_factory=list)  # what the crawl left in its TMPDIR

    def page(self, name: str) -> dict[str, Any]:
        return self.report["pages"][name]

    def stat(self, key: str) -> Any:
        return self.report["stats"].get(key, 0)


def _crawl(
    server: _ShopServer,
    database_url: str,
    folder: Path,
    plan: list[dict[str, Any]],
    **settings: str,
) -> Crawl:
    marker = uuid.uuid4().hex
    server.reset(marker)
    folder.mkdir(parents=True, exist_ok=True)
    plan_file, report_file = folder / "plan.json", folder / "report.json"
    plan_file.write_text(json.dumps(plan), encoding="utf-8")
    # The crawl's own TMPDIR, where browsers put their folders; short, as Chromium's sockets
    # need (pytest's tmp_path can be too long).
    temp_dir = Path(tempfile.mkdtemp(prefix="render-"))
    env = {
        "DATABASE_URL": database_url,
        "CHRISTMAS_DATA_DIR": str(folder / "data"),
        "TMPDIR": str(temp_dir),
        MARKER: marker,
    }
    with _BrowserWatch(marker) as watch:
        result = scrapy_crawl(
            RenderProbeSpider.name,
            env=env,
            arguments={
                "base_url": server.base_url,
                "plan": str(plan_file),
                "out": str(report_file),
            },
            settings={**CRAWL_SETTINGS, **settings},
            timeout=90,
        )
    output = result.stdout + result.stderr
    assert report_file.exists(), output[-3000:]
    temp_files = sorted(path.name for path in temp_dir.iterdir())
    shutil.rmtree(temp_dir)
    return Crawl(
        returncode=result.returncode,
        output=output,
        report=json.loads(report_file.read_text(encoding="utf-8")),
        seen=list(server.seen),
        slow_max=server.slow_max,
        max_drivers=watch.max_drivers,
        max_browsers=watch.max_browsers,
        knocks_while_held=list(server.knocks_while_held),
        leftovers=_marked_processes(marker),
        temp_files=temp_files,
    )


@pytest.fixture(scope="module")
def shop_server() -> Iterator[_ShopServer]:
    server = _ShopServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture(scope="module")
def crawl_database(admin_engine: Engine, template_database: str) -> Iterator[str]:
    """A fresh, migrated database shared by this module's crawls (each one is its own run)."""
    name = f"xmas_render_{uuid.uuid4().hex[:12]}"
    with admin_engine.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
    yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    with admin_engine.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def main_crawl(
    shop_server: _ShopServer, crawl_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Crawl:
    """One crawl (one browser) of every page of MAIN_PLAN."""
    crawl = _crawl(shop_server, crawl_database, tmp_path_factory.mktemp("main"), MAIN_PLAN)
    assert crawl.returncode == 0, crawl.output[-3000:]
    return crawl


# --- settings and meta, checked without a browser ---------------------------------------------


def test_defaults_come_from_the_documented_settings() -> None:
    config = RenderConfig.from_settings(Settings({"USER_AGENT": "project_christmas/0.1"}))
    assert config == RenderConfig(user_agent="project_christmas/0.1")
    assert (config.browser_path, config.driver_path) == (
        "/usr/bin/chromium",
        "/usr/bin/chromedriver",
    )
    assert (config.max_browsers, config.max_restarts) == (1, 2)


def test_switched_off_middleware_is_not_configured() -> None:
    crawler = get_crawler(RenderProbeSpider, {"SELENIUM_ENABLED": False})
    with pytest.raises(NotConfigured):
        SeleniumMiddleware.from_crawler(crawler)


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"SELENIUM_MAX_BROWSERS": "0"}, "SELENIUM_MAX_BROWSERS must be at least 1"),
        ({"SELENIUM_MAX_BROWSERS": "two"}, "SELENIUM_MAX_BROWSERS must be a whole number"),
        ({"SELENIUM_MAX_RESTARTS": -1}, "SELENIUM_MAX_RESTARTS must be at least 0"),
        ({"SELENIUM_PAGE_TIMEOUT": "-5"}, "SELENIUM_PAGE_TIMEOUT must be a number of seconds"),
        ({"SELENIUM_WAIT_TIMEOUT": True}, "SELENIUM_WAIT_TIMEOUT must be a number of seconds"),
        ({"SELENIUM_BROWSER_PATH": "/nowhere/chromium"}, "SELENIUM_BROWSER_PATH must be the path"),
        ({"SELENIUM_DRIVER_PATH": str(PAGES)}, "SELENIUM_DRIVER_PATH must be the path"),
        ({"SELENIUM_SETTLE_TIME": 2, "SELENIUM_WAIT_TIMEOUT": 2}, "SELENIUM_SETTLE_TIME (2 s)"),
        ({"SELENIUM_MAX_BROWSERS": 5, "CONCURRENT_REQUESTS": 4}, "SELENIUM_MAX_BROWSERS (5)"),
    ],
)
def test_bad_settings_stop_the_crawl_at_start(settings: dict[str, Any], named: str) -> None:
    crawler = get_crawler(RenderProbeSpider, settings)
    with pytest.raises(RenderSettingsError) as raised:
        SeleniumMiddleware.from_crawler(crawler)
    message = str(raised.value)
    assert message.startswith(named)
    assert message.count(". ") == 0 and message.endswith(".")  # one sentence


def test_too_long_temp_dir_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", "/tmp/" + "x" * 60)
    with pytest.raises(RenderSettingsError, match="set TMPDIR to a folder of at most 48"):
        RenderConfig.from_settings(Settings())


@pytest.mark.parametrize(
    "meta",
    [
        True,
        ".product-item",
        {"wait-for": ".product-item"},
        {"wait_for": ""},
        {"count_from": ".product-count"},
        {"wait_for": ".product-item", "timeout": 0},
        {"wait_for": ".product-item", "timeout": "5"},
    ],
)
def test_malformed_render_meta_is_rejected(meta: Any) -> None:
    with pytest.raises(BadRenderRequest, match=r"meta\['render'\]"):
        RenderSpec.from_meta(meta)


def test_render_meta_is_plain_json() -> None:
    meta = {"wait_for": ".product-item", "count_from": ".product-count", "timeout": 20}
    assert RenderSpec.from_meta(json.loads(json.dumps(meta))) == RenderSpec(**meta)


# --- one crawl, one browser ---------------------------------------------------------------------


def test_request_without_render_meta_is_fetched_plainly(main_crawl: Crawl) -> None:
    plain = main_crawl.page("plain")
    assert plain["status"] == 200
    assert plain["items"] == 0  # the grid is empty until a script fills it
    assert "rendered" not in plain["flags"]
    assert plain["render_seconds"] is None


def test_rendered_page_holds_the_grid_its_script_built(main_crawl: Crawl) -> None:
    grid = main_crawl.page("grid")
    assert grid["status"] == 200
    assert grid["flags"] == ["rendered"]
    assert grid["names"] == [f"Ornament {n}" for n in range(1, 6)]
    assert grid["render_seconds"] > 0.3  # the script's delay


def test_count_from_waits_for_the_announced_number(main_crawl: Crawl) -> None:
    assert main_crawl.page("counted")["items"] == 6  # 3 at 0.3 s, 3 more at 1.8 s


def test_without_count_from_the_render_ends_once_the_grid_settles(main_crawl: Crawl) -> None:
    # One item at each of the first three looks, three more at the 25th. Looks come at least
    # POLL_SECONDS (0.1 s) apart, so a grid unchanged for SELENIUM_SETTLE_TIME (0.5 s) ends the
    # render by the 9th look, whatever the load; one that did not wait would end before the 4th.
    settled = main_crawl.page("settled")
    assert settled["names"] == ["Ornament 1", "Ornament 2", "Ornament 3"]
    assert settled["polls"] >= 4


def test_zero_announced_returns_the_empty_grid_at_once(main_crawl: Crawl) -> None:
    empty = main_crawl.page("empty")
    assert (empty["status"], empty["items"]) == (200, 0)
    assert empty["polls"] == 1  # one look: 0 announced, 0 there


def test_404_comes_back_as_404_without_waiting(main_crawl: Crawl) -> None:
    missing = main_crawl.page("missing")
    assert (missing["status"], missing["flags"]) == (404, ["rendered"])
    assert missing["polls"] == 0  # returned on its status, never looked at


def test_redirect_gives_the_final_url(main_crawl: Crawl) -> None:
    moved = main_crawl.page("moved")
    assert moved["url"].endswith("/grid.html?from=moved")
    assert (moved["status"], moved["items"]) == (200, 5)


def test_timeout_is_counted_retried_and_fails_the_request(main_crawl: Crawl) -> None:
    assert main_crawl.page("never")["error"] == "RenderTimeout"
    assert main_crawl.stat("selenium/timeouts") == 2  # first try and RETRY_TIMES=1 retry
    assert main_crawl.stat("selenium/render_failures") == 2
    assert (
        main_crawl.stat("retry/reason_count/christmas_spiders.rendering.errors.RenderTimeout") == 1
    )
    assert main_crawl.stat("retry/count") == 1  # nothing else failed, browser deaths included


def test_killed_browser_is_restarted_and_the_render_succeeds(main_crawl: Crawl) -> None:
    assert main_crawl.stat("selenium/restarts") == 2
    for name in ("driver_killed", "browser_killed"):
        assert main_crawl.page(name)["items"] == 5, name
    assert sorted(path for path, _ in main_crawl.seen if path.startswith("/kill/")) == [
        "/kill/browser.html",
        "/kill/browser.html",
        "/kill/chromedriver.html",
        "/kill/chromedriver.html",
    ]


def test_one_browser_renders_one_page_at_a_time(main_crawl: Crawl) -> None:
    assert all(main_crawl.page(f"slow{n}")["items"] == 5 for n in range(3))
    assert main_crawl.slow_max == 1
    assert (main_crawl.max_drivers, main_crawl.max_browsers) == (1, 1)


def test_the_reactor_keeps_ticking_while_pages_render(main_crawl: Crawl) -> None:
    # The shop held each slow page until the probe had knocked KNOCKS_WHILE_HELD times from its
    # event loop. Had the render blocked the reactor, at most one knock (in flight) could come.
    assert len(main_crawl.knocks_while_held) == 3
    assert min(main_crawl.knocks_while_held) >= KNOCKS_WHILE_HELD, main_crawl.knocks_while_held


def test_renders_are_counted_for_the_crawl_run(main_crawl: Crawl, crawl_database: str) -> None:
    rendered = [p for p in main_crawl.report["pages"].values() if "rendered" in p.get("flags", [])]
    assert main_crawl.stat("selenium/renders") == len(rendered) == 11
    assert main_crawl.stat("selenium/render_seconds") >= sum(p["render_seconds"] for p in rendered)
    url = make_url(crawl_database).set(drivername="postgresql+psycopg2")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        recorded = connection.scalar(
            sa.select(crawl_runs.c.browser_renders).where(
                crawl_runs.c.id == main_crawl.report["crawl_run_id"]
            )
        )
    engine.dispose()
    assert recorded == 11


def test_browser_sends_the_crawl_user_agent(main_crawl: Crawl) -> None:
    agents = {agent for path, agent in main_crawl.seen if path.startswith("/grid.html")}
    assert len(agents) == 1  # plain and rendered requests alike
    assert agents.pop().startswith("project_christmas/")


def test_browser_downloads_no_images(main_crawl: Crawl) -> None:
    assert any(path == "/grid.js" for path, _ in main_crawl.seen)
    assert not any(path.endswith(".png") for path, _ in main_crawl.seen)


def test_no_browser_process_or_profile_is_left_after_the_crawl(main_crawl: Crawl) -> None:
    assert main_crawl.max_browsers == 1  # the watch did see the browser
    assert main_crawl.leftovers == []
    assert main_crawl.temp_files == []  # profiles, and what the killed browsers left
    cleanup_warnings = [
        line
        for line in main_crawl.output.splitlines()
        if "WARNING christmas_spiders.rendering" in line and " died rendering " not in line
    ]
    assert cleanup_warnings == []
    assert not re.search(r"\w+Warning: ", main_crawl.output)  # no Python warnings in the child


# --- crawls of their own ------------------------------------------------------------------------


def test_crawl_without_render_meta_starts_no_browser(
    shop_server: _ShopServer, crawl_database: str, tmp_path: Path
) -> None:
    plan = [{"name": f"plain{n}", "path": f"/grid.html?{n}"} for n in range(3)]
    crawl = _crawl(shop_server, crawl_database, tmp_path, plan)
    assert crawl.returncode == 0, crawl.output[-3000:]
    assert all(crawl.page(f"plain{n}")["status"] == 200 for n in range(3))
    assert crawl.stat("selenium/renders") == 0
    assert crawl.max_drivers == crawl.max_browsers == 0


def test_max_browsers_bounds_parallel_renders(
    shop_server: _ShopServer, crawl_database: str, tmp_path: Path
) -> None:
    plan = [
        {"name": f"slow{n}", "path": f"/slow/{n}.html?paired", "render": COUNTED} for n in range(4)
    ]
    crawl = _crawl(shop_server, crawl_database, tmp_path, plan, SELENIUM_MAX_BROWSERS="2")
    assert crawl.returncode == 0, crawl.output[-3000:]
    assert crawl.stat("selenium/renders") == 4
    assert crawl.slow_max == 2  # the shop saw two renders at once, never three
    # The pool holds two drivers. (Counting Chromium main processes once saw a third under heavy
    # load — a process tree caught mid-start by the sampler — so the bound is checked on the
    # drivers, one per browser, and on the renders the shop saw.)
    assert crawl.max_drivers == 2
    assert (crawl.leftovers, crawl.temp_files) == ([], [])


def test_browser_that_cannot_start_closes_the_spider(
    shop_server: _ShopServer, crawl_database: str, tmp_path: Path
) -> None:
    false = shutil.which("false")
    assert false
    plan = [{"name": "grid", "path": "/grid.html", "render": GRID}]
    crawl = _crawl(shop_server, crawl_database, tmp_path, plan, SELENIUM_BROWSER_PATH=false)
    assert crawl.returncode == 1  # the crawl run failed
    assert crawl.report["reason"] == "browser_unavailable"
    assert crawl.page("grid")["error"] == "BrowserUnavailable"
    assert crawl.stat("selenium/restarts") == 2  # SELENIUM_MAX_RESTARTS, then it gave up
    assert crawl.stat("selenium/render_failures") == 1
    assert "cannot start Chromium (SELENIUM_BROWSER_PATH=" in crawl.output
    assert (crawl.leftovers, crawl.temp_files) == ([], [])
