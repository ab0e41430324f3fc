"""A quick sync at work: one ``QuickSync`` per spider run with ``-a mode=quick``.

* Before the crawl's first request (``gate.SnapshotGate`` waits for it) it loads the vendor's
  stored products once, in a thread, and the run's refresh plan (``storage.freshness``).
* For every listing page the spider hands it (``listed``), it parses the tiles
  (``parsers.tiles``), compares each with its stored product (``rules.decide``) and returns
  requests for the product pages to read, each carrying why and what its tile showed. The
  products found unchanged are marked synced in batches (never back in time, no history row),
  and counted for the run's health as read with their stored fields.
* A product page read after its tile (``page_read``) is stored as the page shows it, as always;
  where page and tile disagree, the page wins and the disagreement is counted.

Counters (Scrapy stats, kept in ``crawl_runs.stats``): ``quick/seen`` (products on the
listings), ``quick/unchanged``, ``quick/fetch/<reason>``, ``quick/page_wins[/<field>]``,
``quick/marked_synced`` and the refresh plan ``quick/refresh``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import scrapy
from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.http import Response
from scrapy.statscollectors import StatsCollector
from sqlalchemy.exc import SQLAlchemyError

from christmas_spiders.config import Config
from christmas_spiders.config.schedule import runs_per_day
from christmas_spiders.crawl_errors import FAILS_RUN
from christmas_spiders.errors import one_line
from christmas_spiders.health.counting import listing_confirmed
from christmas_spiders.parsers.tiles import PARSERS, Tile
from christmas_spiders.quick import rules
from christmas_spiders.storage import freshness, get_engine, runs
from christmas_spiders.storage.embedded import EmbeddedServerError
from christmas_spiders.storage.freshness import REFRESH_STAT

logger = logging.getLogger(__name__)


class ListingSpider(Protocol):
    """What a quick sync needs of its spider (spiders._vendor.VendorSpider, which creates it)."""

    name: str
    target: Any

    def product_request(self, url: str, year: int) -> scrapy.Request: ...


HEALTH_FIELDS = ("name", "sku", "availability_text", "image_url", "series")


def link_path(url: str) -> str:
    """A link without its origin: stored links and listed ones match across replica ports."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


class Catalog:
    """The stored products of the vendor, by the shop's product id and by link path."""

    def __init__(self, stored: Iterable[rules.Stored]) -> None:
        self.products = list(stored)
        self.by_id = {s.vendor_product_id: s for s in self.products if s.vendor_product_id}
        self.by_path = {s.path: s for s in self.products}

    def find(self, tile: Tile | None, url: str) -> rules.Stored | None:
        if tile is not None and tile.vendor_product_id in self.by_id:
            return self.by_id[tile.vendor_product_id]
        return self.by_path.get(link_path(url))


def _stored(row: Any) -> rules.Stored:
    fields = {name: getattr(row, name) for name in HEALTH_FIELDS}
    fields.update(price=row.price, availability=row.availability, release_year=row.release_year)
    return rules.Stored(
        id=row.id,
        vendor_product_id=row.vendor_product_id,
        path=link_path(row.link),
        release_year=row.release_year,
        price=row.price,
        regular_price=row.regular_price,
        availability=row.availability,
        page_read_at=row.page_read_at,
        delisted=row.delisted_at is not None,
        fields=fields,
    )


class QuickSync:
    def __init__(self, crawler: Crawler, spider: ListingSpider) -> None:
        self.crawler = crawler
        self.spider = spider
        self.config: Config = crawler.settings["CHRISTMAS_CONFIG"]
        self.catalog = Catalog(())
        self.refresh = rules.Refresh()
        self.seen: set[object] = set()  # products decided on (by stored id, else URL)
        self.pending: list[int] = []  # unchanged products not yet marked synced
        self._loaded: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._flushes: set[asyncio.Task[None]] = set()
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @property
    def stats(self) -> StatsCollector:
        return self.crawler.stats  # set once the crawl starts, after the spider is made

    # -- before the first request ----------------------------------------------------------------

    async def ensure_loaded(self) -> None:
        """Load the stored products and the refresh plan, once (later callers wait for it)."""
        if self._loaded is None:
            self._loaded = asyncio.get_running_loop().create_task(self._load())
        await asyncio.shield(self._loaded)

    async def _load(self) -> None:
        try:
            await asyncio.to_thread(self._read)
        except (SQLAlchemyError, EmbeddedServerError) as error:
            # Without the stored products nothing can be compared: every listed page is read,
            # as a full sync would, and the run fails (nothing wrong is marked synced).
            logger.error(
                "quick sync: could not read the stored products (%s); reading every page",
                one_line(error),
                extra=FAILS_RUN,
            )
            return
        plan = self.refresh
        for key, value in plan.as_json().items():
            self.stats.set_value(f"{REFRESH_STAT}/{key}", value)
        logger.info(
            "quick sync of %s: %d stored products; refresh rule %s: re-reading %d pages read at "
            "or before %s (quota %d = %d listed / (%g days x %g syncs a day), %d older than %g "
            "days)",
            self.spider.name,
            len(self.catalog.products),
            plan.rule,
            plan.taken,
            plan.before.isoformat(timespec="seconds") if plan.before else "never",
            plan.quota,
            plan.listed,
            plan.refresh_days,
            plan.syncs_per_day,
            plan.overdue,
            plan.refresh_days,
        )

    def _read(self) -> None:
        years = self.spider.target.years
        run_id = getattr(self.spider, "crawl_run_id", None)
        schedule, days = self.config.schedule, self.config.quick_refresh_days
        vendor = self.spider.name
        # -a refresh=spread|overdue, else what the schedule's full syncs of the shop allow.
        rule = self.spider.target.refresh or rules.refresh_rule(schedule, vendor, days)
        with get_engine(self.config).begin() as connection:
            rows = freshness.stored_products(connection, vendor, years)
            catalog = Catalog(_stored(row) for row in rows)
            now = runs.started_at(connection, run_id) if run_id else datetime.now(UTC)

            def plan() -> dict[str, Any]:
                return rules.plan_refresh(
                    catalog.products,
                    now,
                    days,
                    runs_per_day(schedule.quick_for(vendor), schedule.timezone),
                    rule,
                ).as_json()

            recorded = freshness.refresh_plan(connection, run_id, plan) if run_id else plan()
        self.catalog, self.refresh = catalog, rules.Refresh.from_json(recorded)

    # -- listing pages -----------------------------------------------------------------------------

    def listed(self, response: Response, year: int | None, urls: Iterable[str]) -> Iterator[Any]:
        """Requests for the product pages among `urls` (a listing's, in its order) to read."""
        tiles = {
            tile.url: tile for tile in PARSERS[self.spider.name](response.selector, response.url)
        }
        confirmed = []
        for url in urls:
            tile = tiles.get(url)
            stored = self.catalog.find(tile, url)
            key = stored.id if stored is not None else url
            if key in self.seen:
                continue
            self.seen.add(key)
            self.stats.inc_value("quick/seen")
            reason, changed = rules.decide(tile, stored, year, self.refresh)
            if reason == rules.UNCHANGED:
                assert stored is not None
                self.stats.inc_value("quick/unchanged")
                self.pending.append(stored.id)
                confirmed.append(dict(stored.fields))
                continue
            self.stats.inc_value(f"quick/fetch/{reason}")
            if reason == rules.UNREADABLE:
                why = tile.unreadable if tile is not None else "no tile found for the link"
                logger.info("%s: tile not readable (%s); reading the page", url, why)
            elif changed:
                logger.debug("%s: the tile shows a new %s", url, ", ".join(changed))
            request = self.spider.product_request(url, year)
            meta = {"reason": reason, "tile": None}
            if tile is not None and not tile.unreadable:
                meta["tile"] = rules.shown(tile)
            yield request.replace(meta={**request.meta, "quick": meta})
        if confirmed:
            self.crawler.signals.send_catch_log(listing_confirmed, products=confirmed)
        if len(self.pending) >= self.config.store_batch_size:
            task = asyncio.get_running_loop().create_task(self.flush())
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)

    def page_read(self, response: Response, fields: dict[str, Any]) -> None:
        """A product page read after its tile: count what the tile showed otherwise."""
        shown = (response.meta.get("quick") or {}).get("tile")
        if not shown:
            return
        disagree = rules.page_disagrees(shown, fields)
        if not disagree:
            return
        self.stats.inc_value("quick/page_wins")
        for name in disagree:
            self.stats.inc_value(f"quick/page_wins/{name}")
        logger.info(
            "%s: the page shows another %s than its tile (tile %s); storing the page's",
            response.url,
            ", ".join(disagree),
            ", ".join(f"{name} {shown.get(name)}" for name in disagree),
        )

    # -- marking unchanged products synced -------------------------------------------------------

    async def flush(self) -> None:
        """Mark the unchanged products seen so far synced (a distributed worker calls it before
        it releases the listings it read; see distributed.leases)."""
        async with self._lock:
            ids, self.pending = self.pending, []
            if ids:
                await asyncio.to_thread(self._mark, ids)

    def _mark(self, ids: list[int]) -> None:
        try:
            with get_engine(self.config).begin() as connection:
                marked = freshness.mark_synced(connection, ids)
        except (SQLAlchemyError, EmbeddedServerError) as error:
            # They stay as stored; the run fails, so nothing is delisted for looking unseen.
            logger.error(
                "quick sync: could not mark %d unchanged products synced: %s",
                len(ids),
                one_line(error),
                extra=FAILS_RUN,
            )
            return
        self.stats.inc_value("quick/marked_synced", marked)

    async def spider_closed(self, spider: scrapy.Spider, reason: str) -> None:
        # Before the run is recorded (at engine_stopped), which delists what looks unseen.
        await asyncio.gather(*self._flushes)
        await asyncio.shield(self.flush())


def summary_lines(stats: dict[str, Any]) -> list[str]:
    """The end-of-crawl summary's quick-sync lines (none for a full sync)."""
    seen = stats.get("quick/seen")
    if seen is None:
        return []
    fetched = {reason: stats.get(f"quick/fetch/{reason}", 0) for reason in rules.FETCH_REASONS}
    requests = stats.get("downloader/request_count", 0) - stats.get("robotstxt/request_count", 0)
    per_product = f"{requests / seen:.3f}" if seen else "-"
    lines = [
        f"quick     {seen} seen on listings, {stats.get('quick/unchanged', 0)} unchanged "
        f"(marked synced: {stats.get('quick/marked_synced', 0)}); pages fetched: "
        f"{sum(fetched.values())} ("
        + ", ".join(f"{reason} {count}" for reason, count in fetched.items())
        + f"); page wins over tile: {stats.get('quick/page_wins', 0)}; "
        f"{per_product} requests per product"
    ]
    prefix = f"{REFRESH_STAT}/"
    plan = {
        key.removeprefix(prefix): value for key, value in stats.items() if key.startswith(prefix)
    }
    if "listed" not in plan:
        return lines
    days, quota, overdue = plan.get("refresh_days"), plan.get("quota", 0), plan.get("overdue", 0)
    if plan.get("rule") == rules.OVERDUE:
        lines.append(
            f"refresh   overdue rule (full syncs re-read every page): {min(quota, overdue)} "
            f"re-read of the {overdue} pages older than {days} days (at most {quota} a sync; "
            f"{plan['listed']} listed)"
        )
    else:
        lines.append(
            f"refresh   spread rule: the {quota} oldest pages of {plan['listed']} (every page "
            f"within {days} days at {plan.get('syncs_per_day')} quick syncs a day), and every "
            f"page older ({overdue})"
        )
    return lines
