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

from christmas_spiders.rendering.browser import CHROMIUM_FLAGS
from christmas_spiders.rendering.errors import (
    BadRenderRequest,
    BrowserCrashed,
    BrowserUnavailable,
    RenderError,
    RenderNetworkError,
    RenderSettingsError,
    RenderTimeout,
)
from christmas_spiders.rendering.middleware import RENDER_META_KEY, SeleniumMiddleware
from christmas_spiders.rendering.settings import (
    DEFAULT_BROWSER_PATH,
    DEFAULT_DRIVER_PATH,
    RenderConfig,
    RenderSpec,
)

__all__ = [
    "CHROMIUM_FLAGS",
    "DEFAULT_BROWSER_PATH",
    "DEFAULT_DRIVER_PATH",
    "RENDER_META_KEY",
    "BadRenderRequest",
    "BrowserCrashed",
    "BrowserUnavailable",
    "RenderConfig",
    "RenderError",
    "RenderNetworkError",
    "RenderSettingsError",
    "RenderSpec",
    "RenderTimeout",
    "SeleniumMiddleware",
]
