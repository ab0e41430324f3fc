"""What a render can fail with; see the package docstring for which are retried."""

from __future__ import annotations


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


class BrowserDied(Exception):
    """The driver stopped answering during a render (internal: the browser is restarted)."""
