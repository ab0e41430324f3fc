"""The requests a worker took from the shared queue, held under a lease until it is done with
them (docs/scale-out.md; the Redis side is ``shared_run``: ``take``, ``release``, ``give_back``).

A request is *done* when the engine no longer works on it — downloaded and parsed, its new
requests pushed to the shared queue, its items through the pipelines — or it failed for good,
or a downloader middleware replaced it with another request (a retry, a redirect), which went
to the shared queue. Its items may still wait in the store pipeline's buffer (and, in a quick
sync, the products a listing showed unchanged wait to be marked synced), so a lease is
released only after those have been written: a worker killed at any moment leaves every
request it took either stored or leased, and a lease it cannot renew puts the request back in
the queue. Storing a product twice is harmless (an upsert on the product's key).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator

from scrapy import Request
from scrapy.core.engine import ExecutionEngine
from scrapy.crawler import Crawler

from christmas_spiders.pipelines import StorePipeline


class LeaseBook:
    """This worker's leases: lease id → the request object the engine was given."""

    def __init__(self) -> None:
        self._held: dict[str, Request] = {}
        self._lease_of: dict[int, str] = {}  # id(request) → lease (held, so ids stay unique)

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, lease: str, request: Request) -> None:
        self._held[lease] = request
        self._lease_of[id(request)] = lease

    def lease_of(self, request: Request) -> str | None:
        return self._lease_of.get(id(request))

    def ids(self) -> list[str]:
        return list(self._held)

    def drop(self, leases: Iterable[str]) -> None:
        for lease in leases:
            request = self._held.pop(lease, None)
            if request is not None:
                del self._lease_of[id(request)]

    def finished(self, working: Iterable[Request]) -> list[str]:
        """The leases whose request is in none of `working` (the requests still at work)."""
        at_work = {id(request) for request in working}
        return [lease for lease, request in self._held.items() if id(request) not in at_work]


def in_progress(engine: ExecutionEngine) -> Iterator[Request]:
    """The requests `engine` still works on: in its downloader (waiting for the shop's budget,
    downloading, rendering) or in its scraper (waiting, or being parsed: callback, items through
    the pipelines, new requests queued). It is the bookkeeping the engine's own
    ``spider_is_idle()`` reads; a request passes from the downloader to the scraper, or to the
    scheduler as a retry, within one callback chain, so it is never out of both while at work.
    """
    yield from engine.downloader.active
    slot = engine.scraper.slot
    if slot is not None:
        yield from (request for _, request, _ in slot.queue)
        yield from slot.active


async def store_items(crawler: Crawler) -> None:
    """Return once every item scraped so far is written (or dead-lettered): the store
    pipeline's buffer flushed. Shielded: a cancelled flush would let go of the pipeline's lock
    while its thread still writes."""
    assert crawler.engine is not None
    for component in crawler.engine.scraper.itemproc.middlewares:
        if isinstance(component, StorePipeline):
            await asyncio.shield(component.flush())
    # A quick sync's listings: the products they showed unchanged are marked synced first.
    quick = getattr(crawler.spider, "quick", None)
    if quick is not None:
        await asyncio.shield(quick.flush())
