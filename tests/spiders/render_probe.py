"""A spider that fetches a planned list of pages, rendered or not, and reports what it got.

It is named after the vendor whose year grids need a browser, because crawl runs belong to
vendors. Arguments: base_url (origin of the test server), plan (path of a JSON list of
``{"name", "path", "render"?}``), out (path of the JSON report written at close: one entry per
page, with status, final URL, flags, number of ``.product-item``, item names and the browser's
looks at the page (``<body data-polls>``, see ``tests/files/rendering/grid.js``), or the error
that reached the errback; plus the close reason, the crawl run id and the crawl stats).

While it runs, the spider knocks on the server's ``/tick`` from its event loop (the reactor),
one knock at a time, so the server can tell whether the loop keeps turning during a render.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import scrapy
from scrapy.http import Response
from twisted.python.failure import Failure


class RenderProbeSpider(scrapy.Spider):
    name = "hallmark_ornaments_com"
    # Read by the crawl-run recorder at close; with no ``target``, a probe delists nothing.
    years_crawled: frozenset[int] = frozenset()
    product_gone = False

    def __init__(self, base_url: str, plan: str, out: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.base_url = base_url.rstrip("/")
        self.plan: list[dict[str, Any]] = json.loads(Path(plan).read_text(encoding="utf-8"))
        self.out = Path(out)
        self.pages: dict[str, dict[str, Any]] = {}
        self.run_arguments = {"plan": Path(plan).name}

    async def start(self) -> AsyncIterator[scrapy.Request]:
        self._ticker = asyncio.get_running_loop().create_task(self._knock())
        for page in self.plan:
            meta: dict[str, Any] = {"name": page["name"], "handle_httpstatus_list": [404]}
            if "render" in page:
                meta["render"] = page["render"]
            yield scrapy.Request(
                self.base_url + page["path"],
                meta=meta,
                callback=self.parse,
                errback=self.failed,
                dont_filter=True,
            )

    async def _knock(self) -> None:
        """GET /tick, answered before the next one: the knocks stop if anything blocks the loop."""
        server = urlsplit(self.base_url)
        while True:
            reader, writer = await asyncio.open_connection(server.hostname, server.port)
            writer.write(b"GET /tick HTTP/1.0\r\n\r\n")
            await reader.read()  # the whole answer: the server closes the connection after it
            writer.close()
            await writer.wait_closed()
            await asyncio.sleep(0.01)

    def parse(self, response: Response) -> None:
        polls = response.css("body::attr(data-polls)").get()
        self.pages[response.meta["name"]] = {
            "status": response.status,
            "url": response.url,
            "flags": response.flags,
            "items": len(response.css(".product-item")),
            "names": response.css(".product-item .name a::text").getall(),
            "render_seconds": response.meta.get("render_seconds"),
            "polls": None if polls is None else int(polls),
        }

    def failed(self, failure: Failure) -> None:
        request = failure.request  # type: ignore[attr-defined]
        self.pages[request.meta["name"]] = {
            "error": failure.type.__name__,
            "message": str(failure.value),
        }

    def closed(self, reason: str) -> None:
        self._ticker.cancel()
        assert self.crawler.stats is not None
        stats = {
            key: value.isoformat() if isinstance(value, datetime) else value
            for key, value in self.crawler.stats.get_stats().items()
        }
        report = {
            "reason": reason,
            "crawl_run_id": getattr(self, "crawl_run_id", None),
            "pages": self.pages,
            "stats": stats,
        }
        self.out.write_text(json.dumps(report, default=str, indent=1), encoding="utf-8")
