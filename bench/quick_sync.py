"""Figure 10 — quick sync (issue #16): what a listing-first sync costs and how fresh it keeps
prices, against the full syncs it replaces.

    python -m bench.quick_sync [--quick]

Per shop, on the replica of 20,000 products (`--quick`: 60) and a scratch database:

1. a full sync (politeness off, as figure 1), measured: the baseline;
2. 1 % of the products change on the listings through the replica's control API — a third
   price, a third sale, a third stock (hallmarkornaments.com shows no stock on its grid: price
   and sale there) — and the audit worker starts, delivering price changes to a local signed
   webhook receiver (webapi.auditor.receiver);
3. a quick sync with the default settings, measured: requests per product seen on the listings,
   and every changed product checked against the replica's truth in the database; then the
   time from its start to each price change's delivery by the audit worker;
4. a second quick sync with nothing changed: the cost of every further hour.

Freshness is simulated on the clock, measured for the rest: a price change made at a random
moment of the week waits for the shop's next quick sync under the default schedule (the
scheduler's own trigger: hourly, ornament-shop.com every 6 hours, the shops 20 minutes apart),
then takes what the measured run took from its start to that change's delivery. Cost per day:
the shop's quick syncs of a day with nothing changed (step 4) plus the pages of the day's
changes (1 % of the catalog a day), against one daily full sync (the old default schedule). The
same at 1 h and 6 h for every shop, in the details. The quick syncs run with the default
schedule's refresh rule (weekly full syncs: only overdue pages are re-read, quick.rules).
"""

from __future__ import annotations

import json
import logging
import random
import statistics
import threading
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from bench.constants import HO, SHORT, UNTHROTTLED, VENDORS
from bench.crawls import Crawl, read_run, replica_control, scrapy_crawl
from bench.report import Row, log, markdown, percentile
from bench.services import query
from bench.session import Session, standalone
from christmas_spiders import config
from christmas_spiders.config.schedule import (
    DAY,
    HOUR,
    JobKind,
    Schedule,
    format_duration,
    runs_per_day,
)
from christmas_spiders.scheduling import triggers
from christmas_spiders.storage.products import ITEM_COLUMNS
from tests.replica.catalog import generate
from webapi.auditor.receiver import WebhookReceiver
from webapi.auditor.worker import Worker

FIGURE = "10"
SECRET = "bench"
CHANGED_SHARE = 0.01  # of the catalog, changed on the listings before the quick sync
DAILY_CHANGES = 0.01  # of the catalog a day, for the cost of a day of quick syncs
REQUESTS_GOAL = 0.05  # requests per product of a quick sync
P95_GOAL_MINUTES = 65.0
COST_GOAL = 0.1  # a day of quick syncs against one daily full sync
SAMPLES = 50  # simulated change moments per delivered change
WEEK = timedelta(days=7)
INTERVALS = (HOUR, 6 * HOUR)  # quick-sync intervals compared in the details


@dataclass
class ShopResult:
    vendor: str
    full: Crawl
    quick: Crawl
    idle: Crawl  # the second quick sync, nothing changed
    changed: int
    correct: int
    price_changes: int
    measured: list[float] = field(default_factory=list)  # sync start → delivery, seconds


def _ordinary(vendor: str, size: int) -> list[Any]:
    shop = generate(1, size)[vendor]
    return [
        product
        for product in shop.products()
        if product.expect == "item"
        and product.status == "ok"
        and not product.edge_cases
        and not product.quirks
        and product.price is not None
        and product.regular_price is None
        and product.listed_path == product.path
    ]


def _change(origin: str, vendor: str, size: int) -> dict[str, str]:
    """1 % of the products changed through the control API; their ids → the change made."""
    candidates = _ordinary(vendor, size)
    count = max(3, round(size * CHANGED_SHARE))
    picked = random.Random(f"{vendor}-{size}").sample(candidates, count)
    kinds = ("price", "sale") if vendor == HO else ("price", "sale", "stock")
    made = {}
    for number, product in enumerate(picked):
        kind = kinds[number % len(kinds)]
        body: dict[str, Any] = {}
        if kind == "price":
            body = {"price": str(product.price + Decimal("1.00"))}
        elif kind == "sale":
            body = {
                "price": str(product.price - Decimal("1.00")),
                "regular_price": str(product.price),
            }
        else:
            flipped = "available" if product.availability != "available" else "unavailable"
            body = {"availability": flipped}
        replica_control(origin, f"products/{product.vendor_product_id}", body)
        made[product.vendor_product_id] = kind
    return made


def _correct(origin: str, url: str, vendor: str, changed: dict[str, str]) -> int:
    """How many changed products the database holds exactly as the replica shows them now."""
    found = query(
        url,
        "SELECT * FROM products WHERE vendor = :vendor AND vendor_product_id = ANY(:ids)",
        vendor=vendor,
        ids=list(changed),
    )
    rows = {row.vendor_product_id: row for row in found}
    right = 0
    for key in changed:
        truth = replica_control(origin, f"catalog/{key}")["expected_item"]
        row = rows.get(key)
        if row is None or truth is None:
            continue
        stored = {c: getattr(row, c) for c in ITEM_COLUMNS}
        stored = {c: str(v) if isinstance(v, Decimal) else v for c, v in stored.items()}
        right += stored == {c: truth[c] for c in ITEM_COLUMNS}
    return right


class _Auditor:
    """The audit worker on the scratch database, delivering price changes to a receiver."""

    def __init__(self, url: str) -> None:
        self.receiver = WebhookReceiver(SECRET)
        self.url = url

    def __enter__(self) -> _Auditor:
        self.receiver.__enter__()
        subscriber = {
            "name": "bench-quick",
            "webhook": {"url": self.receiver.url(), "secret": SECRET},
            "kinds": ["changed"],
            "fields": ["price"],
        }
        settings = config.load(
            {
                "CONFIG_PATH": str(config.CONFIG_DIR / "default.json"),
                "DATABASE_URL": self.url,
                "LOG_LEVEL": "WARNING",
                "CHRISTMAS_AUDITOR_POLL_SECONDS": "1",
                "CHRISTMAS_SUBSCRIBERS": json.dumps([subscriber]),
            }
        )
        self.worker = Worker(settings)
        self.thread = threading.Thread(target=self.worker.run, name="bench-auditor")
        self.thread.start()
        if not self.worker.ready.wait(60):
            raise RuntimeError("the audit worker did not start")
        return self

    def arrivals(self) -> dict[str, float]:
        """product_id (ours) → when its price change arrived (time.time())."""
        found = {}
        for request in self.receiver.delivered():
            for event in request.payload["events"]:
                found.setdefault(str(event["product_id"]), request.at)
        return found

    def __exit__(self, *exc_info: object) -> None:
        self.worker.stop()
        self.thread.join(60)
        self.receiver.__exit__(*exc_info)


def _price_changes(url: str, run_id: int | None) -> list[str]:
    """Our product ids of the run's price changes."""
    found = query(
        url,
        "SELECT product_id FROM product_changes WHERE crawl_run_id = :run AND field = 'price'",
        run=run_id,
    )
    return [str(row.product_id) for row in found]


def _crawl(session: Session, vendor: str, url: str, label: str, **arguments: str) -> Crawl:
    """`scrapy crawl vendor` on the replica with politeness off, measured."""
    return scrapy_crawl(
        vendor,
        url,
        session.work,
        origin=session.replica().base_urls[vendor],
        arguments=arguments,
        settings=UNTHROTTLED,
        label=label,
    )


def _shop(session: Session, vendor: str) -> ShopResult:
    size = session.size
    origin = session.replica().base_urls[vendor]
    replica_control(origin, "reset", {})
    url = session.services.scratch_database()
    log(f"quick sync, {SHORT[vendor]} {size:,}: the full sync it starts from")
    full = _crawl(session, vendor, url, "full")
    full.stored_products = session.services.count_products(url, vendor)
    changed = _change(origin, vendor, size)
    log(f"  {len(changed)} products changed on the listings; the quick sync")
    with _Auditor(url) as auditor:
        quick = _crawl(session, vendor, url, "quick", mode="quick")
        run = read_run(url, vendor, quick.run_id)
        assert run is not None, "the quick sync recorded its run"
        prices = _price_changes(url, quick.run_id)
        if not auditor.receiver.wait_for(lambda r: r.events_delivered >= len(prices), 120):
            raise RuntimeError("the audit worker did not deliver every price change")
        arrivals = auditor.arrivals()
    started = run["started_at"].timestamp()
    measured = [arrivals[product_id] - started for product_id in prices if product_id in arrivals]
    correct = _correct(origin, url, vendor, changed)
    log(f"  {correct} of {len(changed)} correct; the quick sync with nothing changed")
    idle = _crawl(session, vendor, url, "quick-idle", mode="quick")
    session.services.drop(url)
    return ShopResult(vendor, full, quick, idle, len(changed), correct, len(prices), measured)


def _waits(vendor: str, kind: JobKind, count: int, rng: random.Random) -> list[float]:
    """Seconds from `count` random moments of a week to the shop's next quick sync when its
    quick syncs are `kind` (the scheduler's own trigger, with the shop's offset)."""
    trigger = triggers.spread_trigger(kind, "UTC", triggers.vendor_fraction(vendor))
    origin = datetime(2026, 11, 30, tzinfo=UTC)
    waits = []
    for _ in range(count):
        moment = origin + timedelta(seconds=rng.uniform(0, WEEK.total_seconds()))
        fire = trigger.get_next_fire_time(None, moment)
        waits.append((fire - moment).total_seconds())
    return waits


def _old_waits(vendor: str, count: int, rng: random.Random, years: list[int]) -> list[float]:
    """The same under the old default: every year of the shop fully synced daily."""
    kind = JobKind(cron="0 0 * * *", spread=DAY)
    origin = datetime(2026, 11, 30, tzinfo=UTC)
    waits = []
    for _ in range(count):
        year = rng.choice(years)
        trigger = triggers.spread_trigger(kind, "UTC", triggers.sync_fraction(vendor, year))
        moment = origin + timedelta(seconds=rng.uniform(0, WEEK.total_seconds()))
        waits.append((trigger.get_next_fire_time(None, moment) - moment).total_seconds())
    return waits


def _fetched(crawl: Crawl) -> str:
    reasons = ("new", "changed", "stale", "unreadable")
    return ", ".join(f"{reason} {crawl.stat(f'quick/fetch/{reason}')}" for reason in reasons)


@dataclass
class _Day:
    """A day of a shop's quick syncs at one schedule: cost and freshness."""

    syncs: float  # quick syncs a day
    requests: float  # their requests, with the pages of the day's changes
    ratio: float  # of one daily full sync
    minutes: list[float]  # price change → delivery, simulated waits + measured

    @property
    def p50(self) -> float:
        return statistics.median(self.minutes)

    @property
    def p95(self) -> float:
        return percentile(self.minutes, 0.95)

    def text(self) -> str:
        return f"{self.ratio:.2f}×, {self.p50:.0f} / {self.p95:.0f} min"


def _day(result: ShopResult, kind: JobKind) -> _Day:
    syncs = runs_per_day(kind)
    rng = random.Random(f"{result.vendor}-{kind}")  # the same kind, the same samples
    changes = round(result.full.stored_products * DAILY_CHANGES)
    requests = syncs * result.idle.requests + changes
    minutes = [
        (wait + measured) / 60
        for measured in result.measured
        for wait in _waits(result.vendor, kind, SAMPLES, rng)
    ]
    return _Day(syncs, requests, requests / max(result.full.requests, 1), minutes)


def _rows(result: ShopResult, years: list[int], rng: random.Random) -> list[Row]:
    short, quick, full, idle = SHORT[result.vendor], result.quick, result.full, result.idle
    seen = max(quick.stat("quick/seen"), 1)
    per_product = quick.requests / seen
    kind = Schedule().quick_for(result.vendor)
    day = _day(result, kind)
    every = format_duration(kind.interval or DAY / day.syncs)
    old_hours = [
        (wait + measured) / 3600
        for measured in result.measured
        for wait in _old_waits(result.vendor, SAMPLES, rng, years)
    ]
    stale = idle.stat("quick/fetch/stale")
    return [
        Row(
            FIGURE,
            f"{short} quick sync ({seen:,} products, {result.changed:,} changed on the "
            "listings): requests per product",
            f"{per_product:.4f} ({quick.requests:,} requests: pages {_fetched(quick)})",
            f"full sync {full.requests / max(full.stored_products, 1):.4f} ({full.requests:,})",
            f"goal ≤ {REQUESTS_GOAL:g}",
            per_product <= REQUESTS_GOAL,
        ),
        Row(
            FIGURE,
            f"{short} quick sync: changed products right in the database after it",
            f"{result.correct:,} of {result.changed:,}",
            "",
            "goal 100 %",
            result.correct == result.changed,
        ),
        Row(
            FIGURE,
            f"{short} a day of quick syncs (every {every}) vs one daily full sync: requests",
            f"{day.requests:,.0f} ({day.syncs:g} × {idle.requests:,} + "
            f"{round(full.stored_products * DAILY_CHANGES):,} changed pages; refresh rule "
            f"{idle.stats.get('quick/refresh/rule', '-')}: {day.syncs:g} × {stale:,} pages)",
            f"{full.requests:,}",
            f"{day.ratio:.2f}× (goal ≤ {COST_GOAL:g}×)",
            day.ratio <= COST_GOAL,
        ),
        Row(
            FIGURE,
            f"{short} freshness: a price change at the shop → its delivery by the audit worker, "
            f"p50 / p95 (default schedule: quick syncs every {every})",
            f"{day.p50:.0f} / {day.p95:.0f} min",
            f"old daily full syncs: {statistics.median(old_hours):.1f} / "
            f"{percentile(old_hours, 0.95):.1f} h; other trackers: every 3 h to daily",
            f"goal p95 ≤ {P95_GOAL_MINUTES:g} min",
            day.p95 <= P95_GOAL_MINUTES,
        ),
        Row(
            FIGURE,
            f"{short} quick sync vs full sync of the same catalog: wall time; CPU",
            f"{quick.wall_seconds:.0f} s; {quick.cpu_seconds:.0f} CPU-s",
            f"{full.wall_seconds:.0f} s; {full.cpu_seconds:.0f} CPU-s",
            f"{quick.wall_seconds / full.wall_seconds:.2f}×; "
            f"{quick.cpu_seconds / max(full.cpu_seconds, 0.01):.2f}×",
            None,
        ),
    ]


def _detail(result: ShopResult) -> list[str]:
    quick, idle, full = result.quick, result.idle, result.full
    kind = Schedule().quick_for(result.vendor)
    at = {i: _day(result, replace(kind, cron=None, interval=i)) for i in INTERVALS}
    weekly = runs_per_day(Schedule().sync)  # the default schedule's full syncs, a day
    default = _day(result, kind)
    return [
        SHORT[result.vendor],
        f"{quick.stat('quick/seen'):,}",
        f"{quick.requests:,}",
        _fetched(quick),
        f"{quick.stat('quick/page_wins')}",
        f"{quick.renders}",
        f"{idle.requests:,} ({_fetched(idle)})",
        f"{idle.stats.get('quick/refresh/rule', '-')}, quota {idle.stat('quick/refresh/quota')}",
        *(at[interval].text() for interval in INTERVALS),
        f"{default.ratio + weekly:.2f}×",
        f"{statistics.median(result.measured):.1f} s" if result.measured else "-",
        f"{full.requests:,}",
    ]


def measure(session: Session) -> list[Row]:
    logging.getLogger("webapi.auditor").setLevel(logging.WARNING)
    # --quick keeps the script working on one shop (the test suite's budget is small).
    vendors = VENDORS[:1] if session.quick else VENDORS
    results = [_shop(session, vendor) for vendor in vendors]
    rng = random.Random(16)
    catalog = generate(1, session.size)
    rows, details = [], []
    for result in results:
        years = sorted({c.year for c in catalog[result.vendor].year_categories()})
        rows += _rows(result, years, rng)
        details.append(_detail(result))
    headers = [
        "shop",
        "seen on listings",
        "requests",
        "pages read: why",
        "page wins",
        "renders",
        "next sync, nothing changed: requests (pages)",
        "refresh",
        *(f"quick syncs every {format_duration(i)}: a day's cost, p50 / p95" for i in INTERVALS),
        "default schedule a day, weekly full syncs included",
        "sync start → delivery, median",
        "full sync requests",
    ]
    text = (
        f"\n\nFreshness: {SAMPLES} simulated change moments per delivered price change: the wait "
        "for the shop's next quick sync is simulated on the scheduler's own trigger, the rest "
        "(crawl to that product, store, deliver) is measured. A day's cost: the quick syncs of a "
        f"day with nothing changed plus {DAILY_CHANGES:.0%} of the catalog's pages, against one "
        "full sync; the default schedule's day adds its weekly full syncs (1/7 of one). "
        "Requests exclude robots.txt; renders are HO's year grids."
    )
    session.detail(FIGURE, "Quick sync per shop", markdown(headers, details) + text)
    return rows


if __name__ == "__main__":
    standalone(measure, __doc__.splitlines()[0])
