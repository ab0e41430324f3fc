"""Figure 3 — crawl speed near the polite limit: products stored per second with 100 ms added to
every replica response and the default politeness settings, against the ceiling those settings
allow, (concurrent requests allowed per shop) ÷ latency.

    python -m bench.crawl_speed [--quick]

A HooH catalog of 1,000 products (`--quick`: 60) is crawled with `scrapy crawl` exactly as
configured — AutoThrottle, CONCURRENT_REQUESTS_PER_DOMAIN, robots.txt, no Redis — into a fresh
database. The rate is stored products ÷ the crawl's own duration (Scrapy's
`elapsed_time_seconds`: engine start to close, interpreter start-up excluded). The ceiling is
CONCURRENT_REQUESTS_PER_DOMAIN ÷ 0.1 s. The baseline is a second crawl of the same catalog with
the AutoThrottle target we had before (2, what Scrapy's docs suggest), same run.
"""

from __future__ import annotations

from bench.constants import HOOH, SHORT
from bench.crawls import scrapy_crawl
from bench.report import Row, log, markdown
from bench.session import Session, standalone

FIGURE = "3"
LATENCY_MS = 100
GOAL = 0.8
# The baseline: our AutoThrottle target before this figure was measured. With 2, AutoThrottle's
# delay (latency ÷ 2), not the per-shop cap, bounded a healthy shop (see the notes).
BEFORE = {"AUTOTHROTTLE_TARGET_CONCURRENCY": "2"}


def politeness() -> dict[str, object]:
    from christmas_spiders import settings

    return {
        name: getattr(settings, name)
        for name in (
            "AUTOTHROTTLE_ENABLED",
            "AUTOTHROTTLE_START_DELAY",
            "AUTOTHROTTLE_TARGET_CONCURRENCY",
            "CONCURRENT_REQUESTS_PER_DOMAIN",
            "DOWNLOAD_DELAY",
            "ROBOTSTXT_OBEY",
        )
    }


def measure(session: Session) -> list[Row]:
    size = session.scaled(1000, 60)
    latency_ms = session.scaled(LATENCY_MS, 20)  # --quick: the same path, faster
    defaults = politeness()
    allowed = int(defaults["CONCURRENT_REQUESTS_PER_DOMAIN"])
    ceiling = allowed / (latency_ms / 1000)
    process = session.replica(size, latency_ms=latency_ms)
    origin = process.base_urls[HOOH]
    results = {}
    runs = [("default politeness", {}), ("AutoThrottle target before", BEFORE)]
    for name, settings in runs[:1] if session.quick else runs:
        database = session.services.scratch_database()
        log(f"{SHORT[HOOH]} crawl at {latency_ms} ms latency, {name}")
        crawl = scrapy_crawl(
            HOOH, database, session.work, origin=origin, settings=settings, label="speed"
        )
        crawl.stored_products = session.services.count_products(database, HOOH)
        session.services.drop(database)
        results[name] = crawl
        log(f"  {crawl.stored_products} products in {crawl.elapsed:.1f} s")
    session.stop_replica(size, latency_ms=latency_ms)

    rows, details = [], []
    for name, crawl in results.items():
        rate = crawl.stored_products / crawl.elapsed
        ratio = rate / ceiling
        default = name == "default politeness"
        rows.append(
            Row(
                FIGURE,
                f"{SHORT[HOOH]} speed at {latency_ms} ms latency, {name}"
                + ("" if default else f" ({', '.join(f'{k}={v}' for k, v in BEFORE.items())})")
                + ": products/s ÷ ceiling",
                f"{rate:.1f} products/s",
                f"ceiling {allowed} ÷ {latency_ms / 1000:g} s = {ceiling:.0f}/s",
                f"{ratio:.2f} (goal ≥ {GOAL:g})",
                ratio >= GOAL if default else None,
            )
        )
        details.append(
            [
                name,
                f"{crawl.stored_products:,}",
                f"{crawl.requests:,}",
                f"{crawl.elapsed:.1f} s",
                f"{crawl.requests / crawl.elapsed:.1f}",
                f"{rate:.1f}",
                f"{ratio:.2f}",
                f"{crawl.cpu_seconds:.1f}",
            ]
        )
    session.detail(
        FIGURE,
        f"Crawl speed, {SHORT[HOOH]} {size:,} products, {latency_ms} ms added to every response",
        markdown(
            [
                "settings",
                "stored",
                "requests",
                "crawl duration",
                "requests/s",
                "products/s",
                "÷ ceiling",
                "CPU-s",
            ],
            details,
        )
        + "\n\nDefault politeness: "
        + ", ".join(f"{key}={value}" for key, value in defaults.items())
        + ".",
    )
    return rows


if __name__ == "__main__":
    standalone(measure, __doc__.splitlines()[0])
