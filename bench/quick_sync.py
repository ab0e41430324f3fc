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
scheduler's own trigger: hourly, the shops 20 minutes apart), then takes what the measured run
took from its start to that change's delivery. Cost per day: 24 quick syncs with nothing changed
(step 4) plus the pages of the day's changes (1 % of the catalog a day), against one daily full
sync (the old default schedule).
"""

from __future__ import annotations

import json
import logging
import random
import statistics
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from bench.common import (
    HO,
    SHORT,
    UNTHROTTLED,
    VENDORS,
    Crawl,
    Row,
    Session,
    log,
    markdown,
    percentile,
    replica_control,
    scrapy_crawl,
    standalone,
)
from christmas_spiders import config
from christmas_spiders.config.schedule import DAY, JobKind, Schedule, runs_per_day
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
COST_GOAL = 0.1  # a day of hourly quick syncs against one daily full sync
SAMPLES = 50  # simulated change moments per delivered change
WEEK = timedelta(days=7)


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


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(
        make_url(url).set(drivername="postgresql+psycopg2"), poolclass=sa.pool.NullPool
    )


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
    engine = _engine(url)
    with engine.connect() as connection:
        rows = {
            row.vendor_product_id: row
            for row in connection.execute(
                sa.text(
                    "SELECT * FROM products "
                    "WHERE vendor = :vendor AND vendor_product_id = ANY(:ids)"
                ),
                {"vendor": vendor, "ids": list(changed)},
            )
        }
    engine.dispose()
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


def _price_changes(url: str, run_id: int) -> dict[str, str]:
    """product id (ours) → vendor_product_id, of the run's price changes."""
    engine = _engine(url)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT p.id, p.vendor_product_id FROM product_changes c JOIN products p "
                "ON p.id = c.product_id WHERE c.crawl_run_id = :run AND c.field = 'price'"
            ),
            {"run": run_id},
        ).all()
    engine.dispose()
    return {str(row.id): row.vendor_product_id for row in rows}


def _shop(session: Session, vendor: str) -> ShopResult:
    size = session.size
    origin = session.replica().base_urls[vendor]
    replica_control(origin, "reset", {})
    url = session.services.scratch_database()
    label = f"{SHORT[vendor]} {size:,}"
    log(f"quick sync, {label}: the full sync it starts from")
    full = scrapy_crawl(
        vendor, url, session.work, origin=origin, settings=UNTHROTTLED, label="full"
    )
    full.stored_products = session.services.count_products(url, vendor)
    changed = _change(origin, vendor, size)
    log(f"  {len(changed)} products changed on the listings; the quick sync")
    with _Auditor(url) as auditor:
        quick = scrapy_crawl(
            vendor,
            url,
            session.work,
            origin=origin,
            arguments={"mode": "quick"},
            settings=UNTHROTTLED,
            label="quick",
        )
        started = datetime.fromisoformat(str(_run_started(url, quick.run_id))).timestamp()
        prices = _price_changes(url, quick.run_id)
        if not auditor.receiver.wait_for(lambda r: r.events_delivered >= len(prices), 120):
            raise RuntimeError("the audit worker did not deliver every price change")
        arrivals = auditor.arrivals()
    measured = [arrivals[product_id] - started for product_id in prices if product_id in arrivals]
    correct = _correct(origin, url, vendor, changed)
    log(f"  {correct} of {len(changed)} correct; the quick sync with nothing changed")
    idle = scrapy_crawl(
        vendor,
        url,
        session.work,
        origin=origin,
        arguments={"mode": "quick"},
        settings=UNTHROTTLED,
        label="quick-idle",
    )
    session.services.drop(url)
    return ShopResult(vendor, full, quick, idle, len(changed), correct, len(prices), measured)


def _run_started(url: str, run_id: int | None) -> Any:
    engine = _engine(url)
    with engine.connect() as connection:
        started = connection.execute(
            sa.text("SELECT started_at FROM crawl_runs WHERE id = :id"), {"id": run_id}
        ).scalar_one()
    engine.dispose()
    return started


def _waits(vendor: str, count: int, rng: random.Random) -> list[float]:
    """Seconds from `count` random moments of a week to the shop's next quick sync under the
    default schedule (the scheduler's own trigger)."""
    schedule = Schedule()
    trigger = triggers.spread_trigger(
        schedule.quick, schedule.timezone, triggers.vendor_fraction(vendor)
    )
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


def measure(session: Session) -> list[Row]:
    logging.getLogger("webapi.auditor").setLevel(logging.WARNING)
    # --quick keeps the script working on one shop (the test suite's budget is small).
    results = [_shop(session, vendor) for vendor in (VENDORS[:1] if session.quick else VENDORS)]
    rows, details = [], []
    rng = random.Random(16)
    delays, old_delays = [], []
    syncs_a_day = runs_per_day(Schedule().quick)
    for result in results:
        short, quick, full, idle = SHORT[result.vendor], result.quick, result.full, result.idle
        seen = max(quick.stat("quick/seen"), 1)
        per_product = quick.requests / seen
        rows.append(
            Row(
                FIGURE,
                f"{short} quick sync ({seen:,} products, {result.changed:,} changed on the "
                "listings): requests per product",
                f"{per_product:.4f} ({quick.requests:,} requests: pages {_fetched(quick)})",
                f"full sync {full.requests / max(full.stored_products, 1):.4f} ({full.requests:,})",
                f"goal ≤ {REQUESTS_GOAL:g}",
                per_product <= REQUESTS_GOAL,
            )
        )
        rows.append(
            Row(
                FIGURE,
                f"{short} quick sync: changed products right in the database after it",
                f"{result.correct:,} of {result.changed:,}",
                "",
                "goal 100 %",
                result.correct == result.changed,
            )
        )
        years = sorted({c.year for c in generate(1, session.size)[result.vendor].year_categories()})
        for measured in result.measured:
            delays += [wait + measured for wait in _waits(result.vendor, SAMPLES, rng)]
            old_delays += [
                wait + measured for wait in _old_waits(result.vendor, SAMPLES, rng, years)
            ]
        daily_changes = round(full.stored_products * DAILY_CHANGES)
        per_day = syncs_a_day * idle.requests + daily_changes
        ratio = per_day / max(full.requests, 1)
        rows.append(
            Row(
                FIGURE,
                f"{short} a day of hourly quick syncs vs one daily full sync: requests",
                f"{per_day:,.0f} ({syncs_a_day:g} × {idle.requests:,} + {daily_changes:,} changed "
                f"pages; of it the refresh: {syncs_a_day:g} × {idle.stat('quick/fetch/stale'):,})",
                f"{full.requests:,}",
                f"{ratio:.2f}× (goal ≤ {COST_GOAL:g}×)",
                ratio <= COST_GOAL,
            )
        )
        rows.append(
            Row(
                FIGURE,
                f"{short} quick sync vs full sync of the same catalog: wall time; CPU",
                f"{quick.wall_seconds:.0f} s; {quick.cpu_seconds:.0f} CPU-s",
                f"{full.wall_seconds:.0f} s; {full.cpu_seconds:.0f} CPU-s",
                f"{quick.wall_seconds / full.wall_seconds:.2f}×; "
                f"{quick.cpu_seconds / max(full.cpu_seconds, 0.01):.2f}×",
                None,
            )
        )
        details.append(
            [
                short,
                f"{seen:,}",
                f"{quick.requests:,}",
                _fetched(quick),
                f"{quick.stat('quick/page_wins')}",
                f"{quick.renders}",
                f"{idle.requests:,} ({_fetched(idle)})",
                f"{quick.stat('quick/refresh/quota')}",
                f"{statistics.median(result.measured):.1f} s" if result.measured else "-",
            ]
        )
    minutes = [delay / 60 for delay in delays]
    old_hours = [delay / 3600 for delay in old_delays]
    p50, p95 = statistics.median(minutes), percentile(minutes, 0.95)
    rows.append(
        Row(
            FIGURE,
            "freshness: a price change at the shop → its delivery by the audit worker, p50 / p95 "
            "(default schedule: hourly quick syncs)",
            f"{p50:.0f} / {p95:.0f} min",
            f"old daily full syncs: {statistics.median(old_hours):.1f} / "
            f"{percentile(old_hours, 0.95):.1f} h; other trackers: every 3 h to daily",
            f"goal p95 ≤ {P95_GOAL_MINUTES:g} min",
            p95 <= P95_GOAL_MINUTES,
        )
    )
    session.detail(
        FIGURE,
        "Quick sync per shop",
        markdown(
            [
                "shop",
                "seen on listings",
                "requests",
                "pages read: why",
                "page wins",
                "renders",
                "next hour, nothing changed: requests (pages)",
                "refresh quota",
                "sync start → delivery, median",
            ],
            details,
        )
        + f"\n\nFreshness: {len(delays):,} samples ({SAMPLES} simulated change moments per "
        "delivered price change): the wait for the next quick sync is simulated on the "
        "scheduler's own trigger, the rest (crawl to that product, store, deliver) is measured. "
        "Requests exclude robots.txt; renders are HO's year grids.",
    )
    return rows


if __name__ == "__main__":
    standalone(measure, __doc__.splitlines()[0])
