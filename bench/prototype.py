"""The 2020 prototype's way of crawling, for figure 2's baseline: every page a browser page load.

`RenderEveryPage` is a downloader middleware that marks every request (robots.txt excepted) for
the project's Selenium middleware with an empty render spec: a plain ``driver.get()`` in the one
browser (``SELENIUM_MAX_BROWSERS`` = 1, one driver), the page source read as soon as the page
has loaded. The spider, parsers and pipelines are ours, so the only difference measured is how
pages are fetched. Kept free of heavy imports: it is loaded into the measured crawler.
"""

from __future__ import annotations

import json

RENDER_KEY = "render"


class RenderEveryPage:
    def process_request(self, request, spider=None):
        if not request.url.endswith("/robots.txt") and RENDER_KEY not in request.meta:
            request.meta[RENDER_KEY] = {}  # a plain page load, as in 2020
        return None


def settings() -> dict[str, str]:
    """`-s` settings that turn a crawl into the prototype's."""
    from christmas_spiders.settings import DOWNLOADER_MIDDLEWARES

    # The project's middlewares as a single-process crawl has them (this process may have
    # REDIS_URL set, which adds the distributed budget middleware to the module's dict).
    middlewares = {
        name: order
        for name, order in DOWNLOADER_MIDDLEWARES.items()
        if not name.startswith("christmas_spiders.distributed.")
    }
    middlewares["bench.prototype.RenderEveryPage"] = 940
    return {"DOWNLOADER_MIDDLEWARES": json.dumps(middlewares), "SELENIUM_MAX_BROWSERS": "1"}
