"""`python -m demo screenshots` (`make screenshots`): the web view's pictures, from the demo.

The demo (`python -m demo`: two syncs of the replica shops a day apart) runs into a temporary
data folder, on an embedded PostgreSQL of its own; the app then serves that database on a free
port, and headless Chromium (Debian's, started with the rendering middleware's flags) takes the
search, ornament, changes and runs pages and the market's (price gaps, rarest, year index) at
desktop (1200 px) and phone (390 px) width:
`docs/screenshots/<page>-<width>.png`, each the top of its page down to the screen's
`max_height` (a PNG of a few hundred KB). The ornament is the one the demo names at its end:
of day 2's price drops, the ornament the most shops sell. README's picture is
`ornament-desktop.png`.

`tests/test_web_e2e.py` takes the same pictures (`shoot`) of its own crawls.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from flask import Flask
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from werkzeug.serving import make_server

from christmas_spiders import config
from christmas_spiders.rendering import CHROMIUM_FLAGS, DEFAULT_BROWSER_PATH, DEFAULT_DRIVER_PATH
from christmas_spiders.storage import embedded, get_engine

PROJECT_ROOT = Path(__file__).resolve().parents[1]
OUT = PROJECT_ROOT / "docs" / "screenshots"


@dataclass(frozen=True)
class Screen:
    name: str
    width: int
    height: int
    scale: int  # device pixels per CSS pixel
    mobile: bool
    max_height: int  # CSS pixels of a page's top in a picture


DESKTOP = Screen("desktop", 1200, 900, 1, mobile=False, max_height=1300)
PHONE = Screen("phone", 390, 844, 2, mobile=True, max_height=1600)  # an iPhone 12 to 15's
SCREENS = (DESKTOP, PHONE)

# Of day 2's price drops, the ornament the most shops sell (story.py names the same one).
_EXAMPLE = sa.text(
    "SELECT p.ornament_id FROM product_changes c JOIN products p ON p.id = c.product_id"
    " JOIN (SELECT ornament_id, count(DISTINCT vendor) AS shops FROM products"
    "       GROUP BY ornament_id) o ON o.ornament_id = p.ornament_id"
    " WHERE CASE WHEN c.field = 'price' THEN c.new_value::numeric < c.old_value::numeric END"
    " ORDER BY o.shops DESC, p.sku IS NULL, c.id LIMIT 1"
)


def start_browser() -> WebDriver:
    """Headless Chromium as the rendering middleware starts it, its console log kept (quit
    it when done; its profile is a temporary folder of its own)."""
    options = webdriver.ChromeOptions()
    options.binary_location = DEFAULT_BROWSER_PATH
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument("--hide-scrollbars")  # the same pictures with or without them
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(DEFAULT_DRIVER_PATH))


def use_screen(driver: WebDriver, screen: Screen) -> None:
    """Lay pages out as `screen` does (a phone honours the pages' viewport meta tag)."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {
            "width": screen.width,
            "height": screen.height,
            "deviceScaleFactor": screen.scale,
            "mobile": screen.mobile,
        },
    )


def save_page(driver: WebDriver, path: Path, max_height: int) -> None:
    """A PNG of the open page's top, as wide as the viewport, down to `max_height` CSS px."""
    width, height = driver.execute_script(
        "return [window.innerWidth, document.documentElement.scrollHeight]"
    )
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": min(height, max_height), "scale": 1},
        },
    )
    path.write_bytes(base64.b64decode(shot["data"]))


def shoot(driver: WebDriver, site: str, pages: Mapping[str, str], folder: Path) -> list[Path]:
    """Every page of `pages` (name → path) on every screen: `<name>-<screen>.png` in `folder`.
    The driver is left on the last screen."""
    folder.mkdir(parents=True, exist_ok=True)
    taken = []
    for screen in SCREENS:
        use_screen(driver, screen)
        for name, path in pages.items():
            driver.get(site + path)
            taken.append(folder / f"{name}-{screen.name}.png")
            save_page(driver, taken[-1], screen.max_height)
    return taken


@contextmanager
def serve(app: Flask) -> Iterator[str]:
    """`app` in a threaded HTTP server on a free port of 127.0.0.1; its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="screenshots", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


def demo_environment(data_dir: Path) -> dict[str, str]:
    """This environment with the project's own settings left out: the default configuration,
    the embedded PostgreSQL in `data_dir`."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("CHRISTMAS_", "DATABASE_", "REDIS_"))
        and name not in ("ENV", "CONFIG_PATH")
    }
    env["CONFIG_PATH"] = str(PROJECT_ROOT / "config" / "default.json")
    env["CHRISTMAS_DATA_DIR"] = str(data_dir)
    return env


def pages_of(settings: config.Config) -> dict[str, str]:
    """The pages to take: search, the demo's example ornament, changes, runs, and the market's
    price gaps, rarest ornaments and year index."""
    engine = get_engine(settings)
    try:
        with engine.connect() as connection:
            ornament = connection.execute(_EXAMPLE).scalar()
    finally:
        engine.dispose()
    if ornament is None:
        raise RuntimeError("the demo recorded no price drop of an ornament to show")
    return {
        "search": "/",
        "ornament": f"/ornaments/{ornament}",
        "changes": "/changes",
        "runs": "/runs",
        "gaps": "/market/gaps",
        "rare": "/market/rare",
        "years": "/market/years",
    }


def main(out: Path = OUT) -> int:
    from webapi import create_app  # the app only here: the demo's other commands need none

    with tempfile.TemporaryDirectory(prefix="xmas-screenshots-") as folder:
        data_dir = Path(folder) / "data"
        env = demo_environment(data_dir)
        print(f"The demo, into {data_dir}:\n", flush=True)
        demo = subprocess.run([sys.executable, "-m", "demo"], env=env, cwd=PROJECT_ROOT)
        if demo.returncode != 0:
            print("the demo failed: no screenshots taken", file=sys.stderr)
            return demo.returncode
        settings = config.load(env)
        app = create_app(settings)  # starts (joins) the embedded server of data_dir
        driver = start_browser()
        try:
            with serve(app) as site:
                taken = shoot(driver, site, pages_of(settings), Path(folder) / "shots")
        finally:
            driver.quit()
            app.extensions["christmas_db"].dispose()
            embedded.server_for(data_dir).cleanup()  # stops it: this process was its last user
        out.mkdir(parents=True, exist_ok=True)
        for path in taken:
            shutil.copyfile(path, out / path.name)
            print(f"{out / path.name}: {path.stat().st_size // 1024} KB")
    return 0
