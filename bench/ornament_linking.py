"""Ornament linking (issue #15): how right the linker is, and what linking costs.

    python -m bench.ornament_linking [--quick]

* Pairwise precision / recall / F1 of `christmas_spiders.catalog.linker.link_all` on the
  hand-labelled set (tests/files/ornaments/labelled.jsonl) against the issue's goal
  (F1 ≥ 0.99 with precision ≥ 0.995; tests/test_catalog.py asserts it).
* The offline linker on the replica's generated catalogs, 20,000 listings a shop (`--quick`:
  500): the three shops list the same ornaments, each in its own naming style, and the
  replica knows the true ornament of every listing (`Product.ornament`). Once as generated
  and once with the SKU removed from every third listing (chosen by a hash of its link), so
  that those join by name.
* Linking in the database, on the real PostgreSQL: the same 60,000 listings stored shop after
  shop in batches of 500 (the store pipeline's batch) into two fresh databases side by side,
  one with linking (`upsert_products` as the store pipeline calls it) and one without
  (`link=False`), batch by batch in alternating order, so load on the machine hits both
  alike. First from scratch (every listing is new: read through the rules and linked), then,
  after a VACUUM ANALYZE of both (linking rewrites each new product once, and autovacuum
  clears that before the next day's sync), three unchanged full re-syncs (what a daily full
  sync is: nothing to link). The goal is on
  the re-sync: linking adds under 10 % to a full sync's store time, taken as the median of
  the batches' ratios (the totals are shown too; a burst of load from other processes during
  a few batches moves them). The stored ornaments are scored against the replica's truth.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bench.report import Row, log
from bench.session import Session, standalone
from christmas_spiders.catalog.linker import link_all, listing_from_item
from christmas_spiders.catalog.measure import PairScores, pairwise_scores
from christmas_spiders.config import Config
from christmas_spiders.storage import database
from christmas_spiders.storage.products import upsert_products, vendor_key
from christmas_spiders.storage.schema import ornaments, products
from tests.replica.catalog import generate
from tests.replica.models import EXPECT_ITEM

FIGURE = "9"
LABELLED = Path(__file__).resolve().parent.parent / "tests/files/ornaments/labelled.jsonl"
GOAL_F1, GOAL_PRECISION = 0.99, 0.995
GOAL_RESYNC = 10.0  # percent linking may add to a full re-sync's store time
FULL_PER_SHOP, QUICK_PER_SHOP = 20_000, 500
BATCH = 500  # the store pipeline's default store_batch_size
RESYNCS = 3
ORIGIN = "http://127.0.0.1:8000"


def _scores_text(scores: PairScores) -> str:
    return f"P {scores.precision:.4f} / R {scores.recall:.4f} / F1 {scores.f1:.4f}"


def linked(items: list[dict[str, Any]]) -> tuple[list[str], float, float]:
    """Each item's ornament key, and the seconds taken to read the items and to link them."""
    started = time.perf_counter()
    listings = [listing_from_item(found) for found in items]
    read = time.perf_counter()
    keys = [made.ornament.key for made in link_all(listings)]
    return keys, read - started, time.perf_counter() - read


def replica_listings(per_shop: int) -> tuple[list[dict[str, Any]], list[Hashable], set[str]]:
    """Every listing of the three shops as §C2 items, shop after shop, its true ornament, and
    the links of the hand-written ones (edge cases, some named alike on purpose)."""
    items: list[dict[str, Any]] = []
    truth: list[Hashable] = []
    written: set[str] = set()
    for shop in generate(seed=1, size=per_shop):
        for product in shop.products():
            expected = product.expected(ORIGIN)
            if product.expect == EXPECT_ITEM and expected is not None:
                items.append(expected.as_json())
                truth.append(product.ornament)
                if product.index in shop.layout.fixtures_at:
                    written.add(expected.link)
    return items, truth, written


def _without_some_skus(items: list[dict[str, Any]], keep: set[str]) -> list[dict[str, Any]]:
    """Every third generated listing without its SKU. The hand-written ones keep theirs: two of
    their designs share a name ("Mickey's Holiday Parade", QXD6049 and QXD6052), which only
    the item number tells apart."""

    def dropped(found: dict[str, Any]) -> bool:
        third = int(hashlib.sha256(found["link"].encode()).hexdigest(), 16) % 3 == 0
        return third and found["link"] not in keep

    return [{**found, "sku": None} if dropped(found) else found for found in items]


# --- linking in the database ----------------------------------------------------------------


def _store_side_by_side(
    items: list[dict[str, Any]], linking: Engine, baseline: Engine
) -> list[tuple[float, float]]:
    """Seconds each batch of `items` took to store with linking and without, side by side."""
    spent = []
    for number, start in enumerate(range(0, len(items), BATCH)):
        batch = items[start : start + BATCH]
        seconds = {}
        for link in (True, False) if number % 2 == 0 else (False, True):
            began = time.perf_counter()
            with (linking if link else baseline).begin() as connection:
                upsert_products(connection, batch, link=link)
            seconds[link] = time.perf_counter() - began
        spent.append((seconds[True], seconds[False]))
    return spent


def _totals(spent: list[tuple[float, float]]) -> tuple[float, float]:
    return sum(pair[0] for pair in spent), sum(pair[1] for pair in spent)


def _typical_percent(spent: list[tuple[float, float]]) -> float:
    """What linking typically adds to a batch: the median of the batches' ratios, which a
    burst of load on the machine during a few batches does not move (the totals it does)."""
    return (statistics.median(with_ / without for with_, without in spent) - 1) * 100


def _stored_scores(engine: Engine, items: list[dict[str, Any]], truth: list[Hashable]):
    query = sa.select(products.c.vendor, products.c.vendor_key, products.c.ornament_id)
    with engine.connect() as connection:
        stored = {(vendor, key): found for vendor, key, found in connection.execute(query)}
        count = connection.execute(sa.select(sa.func.count()).select_from(ornaments)).scalar()
    identities = [(found["vendor"], vendor_key(found)) for found in items]
    predicted = [stored[identity] or f"alone {identity}" for identity in identities]
    return pairwise_scores(predicted, truth), count


def _percent(with_linking: float, without: float) -> float:
    return (with_linking / without - 1) * 100


def database_rows(session: Session, items: list[dict[str, Any]], truth: list[Hashable]):
    """Rows and detail lines of the store-time linking side by side (module doc)."""
    urls = [session.services.scratch_database() for _ in range(2)]
    linking, baseline = (
        sa.create_engine(database.database_url(Config(database_url=url))) for url in urls
    )
    try:
        batches = -(-len(items) // BATCH)
        log(f"ornament linking: storing {len(items):,} listings from scratch, with and without")
        first_batches = _store_side_by_side(items, linking, baseline)
        first = _totals(first_batches)
        scores, count = _stored_scores(linking, items, truth)
        for engine in (linking, baseline):  # as autovacuum would before the next sync
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(sa.text("VACUUM ANALYZE products"))
        resyncs = []
        for number in range(1, RESYNCS + 1):
            log(f"ornament linking: unchanged full re-sync {number} of {RESYNCS}")
            resyncs.append(_store_side_by_side(items, linking, baseline))
    finally:
        linking.dispose()
        baseline.dispose()
        for url in urls:
            session.services.drop(url)
    resync_percent = _typical_percent([pair for spent in resyncs for pair in spent])
    resync_totals = [_totals(spent) for spent in resyncs]
    per_batch_ms = (first[0] - first[1]) / batches * 1000
    rows = [
        Row(
            FIGURE,
            f"ornament linking: store {len(items):,} replica listings from scratch, batches of "
            f"{BATCH}, with linking vs without",
            f"{first[0]:.1f} s ({per_batch_ms:.0f} ms of linking a batch)",
            f"{first[1]:.1f} s",
            f"+{_percent(*first):.0f} % (every listing read and linked once)",
            None,
        ),
        Row(
            FIGURE,
            f"ornament linking: {RESYNCS} unchanged full re-syncs of the {len(items):,}, store "
            "time with linking vs without",
            " / ".join(f"{seconds[0]:.1f} s" for seconds in resync_totals),
            " / ".join(f"{seconds[1]:.1f} s" for seconds in resync_totals),
            f"{resync_percent:+.1f} % a batch, median (goal < {GOAL_RESYNC:.0f} %)",
            resync_percent < GOAL_RESYNC,
        ),
        Row(
            FIGURE,
            f"ornament linking: the stored ornaments against the replica's truth ({count:,} "
            "ornaments)",
            _scores_text(scores),
            "",
            "precision 1.0",
            scores.precision == 1.0,
        ),
    ]
    lines = [
        "| store, batches of 500 | with linking | without | linking adds |",
        "| --- | --- | --- | --- |",
        f"| from scratch | {first[0]:.2f} s | {first[1]:.2f} s | {_percent(*first):+.0f} % "
        f"in total, {_typical_percent(first_batches):+.0f} % a batch (median); "
        f"{per_batch_ms:.0f} ms of linking a batch |",
        *(
            f"| unchanged re-sync {number} | {_totals(spent)[0]:.2f} s | "
            f"{_totals(spent)[1]:.2f} s | {_percent(*_totals(spent)):+.1f} % in total, "
            f"{_typical_percent(spent):+.1f} % a batch (median) |"
            for number, spent in enumerate(resyncs, start=1)
        ),
    ]
    return rows, "\n".join(lines)


def measure_rows(
    quick: bool,
    detail: Callable[[str, str], None] | None = None,
    session: Session | None = None,
) -> list[Row]:
    """The figure's rows; the database rows only with a `session` (its PostgreSQL)."""
    labelled = [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines()]
    keys, _, _ = linked(labelled)
    scores = pairwise_scores(keys, [found["truth"] for found in labelled])
    met = scores.f1 >= GOAL_F1 and scores.precision >= GOAL_PRECISION
    rows = [
        Row(
            FIGURE,
            f"ornament linking: pairwise P / R / F1, hand-labelled set ({len(labelled)} listings)",
            _scores_text(scores),
            "",
            f"F1 ≥ {GOAL_F1} with P ≥ {GOAL_PRECISION}",
            met,
        )
    ]
    per_shop = QUICK_PER_SHOP if quick else FULL_PER_SHOP
    log(f"ornament linking: generating {per_shop:,} replica listings a shop")
    items, truth, written = replica_listings(per_shop)
    lines = []
    for label, batch in (
        ("as generated", items),
        ("every third generated SKU removed", _without_some_skus(items, written)),
    ):
        log(f"ornament linking: linking {len(batch):,} listings offline, {label}")
        keys, reading, linking = linked(batch)
        seconds = reading + linking
        scores = pairwise_scores(keys, truth)
        with_sku = sum(1 for found in batch if found["sku"])
        rows.append(
            Row(
                FIGURE,
                f"ornament linking: read and link {len(batch):,} replica listings offline, {label}",
                f"{seconds:.2f} s ({len(batch) / seconds:,.0f} listings/s)",
                "",
                _scores_text(scores),
                None,
            )
        )
        lines.append(
            f"| {label} | {len(batch):,} | {with_sku:,} | {len(set(keys)):,} | "
            f"{len(set(truth)):,} | {reading:.2f} + {linking:.2f} | {_scores_text(scores)} |"
        )
    text = (
        "| replica listings, offline | listings | with SKU | ornaments found | true ornaments "
        "| s to read + link | pairwise |\n| --- | --- | --- | --- | --- | --- | --- |\n"
        + "\n".join(lines)
    )
    if session is not None:
        stored_rows, stored_text = database_rows(session, items, truth)
        rows += stored_rows
        text += "\n\n" + stored_text
    if detail is not None:
        detail("ornament linking on the replica", text)
    else:
        print(text + "\n")
    return rows


def measure(session: Session) -> list[Row]:
    """The hook `python -m bench` calls (bench/__main__.py figure_functions)."""
    return measure_rows(
        session.quick, lambda title, text: session.detail(FIGURE, title, text), session
    )


def main(argv: list[str] | None = None) -> None:
    standalone(measure, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    main()
