"""Figure 2 — crawl cost: CPU seconds per 1,000 stored products, our spider against the 2020
prototype's way (a Selenium page load for every listing and product page, one driver).

    python -m bench.crawl_cost [--quick]

CPU seconds are the OS's accounting of the crawler's whole process tree (bench.procmon: the
crawler, chromedriver, Chromium and every helper it starts; user + system), not wall time.

* Ours: the full syncs of figure 1 (every year, 20,000 products a shop), per shop.
* Prototype: the same spider with every request sent to the browser (bench.prototype), on a
  ~1,000-product sample of the same HO catalog — the consecutive years whose products add up
  closest to 1,000 — in the same session; a full catalog would take hours. HO is the shop that
  needs a browser at all, so it is where our crawl is dearest (its year grids are rendered)
  and the ratio the least flattering. Our spider is also run on that very sample, for a
  like-for-like figure that carries the fixed start-up cost (Python, Scrapy, the schema check,
  the browser launch) on 1,000 products instead of 20,000.
"""

from __future__ import annotations

from bench import prototype
from bench.constants import HO, SHORT, UNTHROTTLED, VENDORS
from bench.crawl_efficiency import full_sync
from bench.crawls import replica_control, scrapy_crawl
from bench.report import Row, log, markdown
from bench.session import Session, standalone
from tests.replica.catalog import ShopCatalog, generate

FIGURE = "2"
SAMPLE_VENDOR = HO
GOAL = 20.0


def sample_years(shop: ShopCatalog, target: int) -> tuple[int, int, int]:
    """(first year, last year, products): consecutive years whose products add up closest to
    `target`."""
    per_year: dict[int, int] = {}
    for category in shop.year_categories():
        per_year[category.year] = per_year.get(category.year, 0) + category.count
    years = sorted(per_year)
    best = (years[0], years[0], per_year[years[0]])
    for start in range(len(years)):
        total = 0
        for end in range(start, len(years)):
            total += per_year[years[end]]
            if abs(total - target) < abs(best[2] - target):
                best = (years[start], years[end], total)
            if total > target:
                break
    return best


def per_thousand(cpu_seconds: float, stored: int) -> float:
    return cpu_seconds / max(stored, 1) * 1000


def measure(session: Session) -> list[Row]:
    shop = generate(1, session.size)[SAMPLE_VENDOR]
    first, last, expected = sample_years(shop, session.scaled(1000, 10))
    years = f"{first}-{last}" if last != first else str(first)
    process = session.replica()
    origin = process.base_urls[SAMPLE_VENDOR]
    sample = {}
    for name, extra in (("ours", {}), ("prototype", prototype.settings())):
        replica_control(origin, "reset", {})
        database = session.services.scratch_database()
        log(f"{name} on the sample: {SHORT[SAMPLE_VENDOR]} years {years} (~{expected} products)")
        sample[name] = scrapy_crawl(
            SAMPLE_VENDOR,
            database,
            session.work,
            origin=origin,
            arguments={"year": years},
            settings={**UNTHROTTLED, **extra},
            label=f"sample-{name}",
        )
        sample[name].stored_products = session.services.count_products(database, SAMPLE_VENDOR)
        session.services.drop(database)
        log(
            f"  {sample[name].stored_products} stored, {sample[name].renders} renders, "
            f"{sample[name].cpu_seconds:.1f} CPU-s, {sample[name].wall_seconds:.0f} s"
        )
    proto = sample["prototype"]
    proto_cost = per_thousand(proto.cpu_seconds, proto.stored_products)
    same = sample["ours"]
    same_cost = per_thousand(same.cpu_seconds, same.stored_products)

    rows, details = [], []
    for vendor in VENDORS:
        crawl = full_sync(session, vendor)
        cost = per_thousand(crawl.cpu_seconds, crawl.stored_products)
        details.append(
            [
                SHORT[vendor],
                "ours, full sync",
                f"{crawl.stored_products:,}",
                f"{crawl.renders}",
                f"{crawl.cpu_seconds:.1f}",
                f"{crawl.wall_seconds:.0f} s",
                f"{cost:.2f}",
            ]
        )
        if vendor == SAMPLE_VENDOR:
            ratio = proto_cost / cost
            rows.append(
                Row(
                    FIGURE,
                    f"{SHORT[vendor]} crawl cost: CPU-s (crawler + browsers) per 1,000 stored "
                    "products",
                    f"{cost:.2f} (full sync, {crawl.stored_products:,} products)",
                    f"{proto_cost:.1f} (prototype, sample {years}: "
                    f"{proto.stored_products:,} products)",
                    f"{ratio:.1f}× (goal ≥ {GOAL:g}×)",
                    ratio >= GOAL,
                )
            )
            rows.append(
                Row(
                    FIGURE,
                    f"{SHORT[vendor]} crawl cost on the same 1,000-product sample (start-up "
                    "included)",
                    f"{same_cost:.2f} ({same.stored_products:,} products)",
                    f"{proto_cost:.1f}",
                    f"{proto_cost / same_cost:.1f}×",
                    None,
                )
            )
    for name, crawl in (("ours, sample", same), ("prototype, sample", proto)):
        details.append(
            [
                SHORT[SAMPLE_VENDOR],
                f"{name} {years}",
                f"{crawl.stored_products:,}",
                f"{crawl.renders:,}",
                f"{crawl.cpu_seconds:.1f}",
                f"{crawl.wall_seconds:.0f} s",
                f"{per_thousand(crawl.cpu_seconds, crawl.stored_products):.2f}",
            ]
        )
    session.detail(
        FIGURE,
        "Crawl cost (CPU seconds of the whole process tree, OS accounting)",
        markdown(
            ["shop", "crawl", "stored", "renders", "CPU-s", "wall", "CPU-s / 1,000 products"],
            details,
        )
        + "\n\nFull syncs run politeness off (AutoThrottle off, 16 requests at a time); the "
        "prototype loads every page in one browser, one at a time (as it did).",
    )
    return rows


if __name__ == "__main__":
    standalone(measure, __doc__.splitlines()[0])
