"""Ornament linking (issue #15): how right the linker is, and how long 60,000 listings take.

    python -m bench.ornament_linking [--quick]

* Pairwise precision / recall / F1 of `christmas_spiders.catalog.linker.link_all` on the
  hand-labelled set (tests/files/ornaments/labelled.jsonl) against the issue's goal
  (F1 ≥ 0.99 with precision ≥ 0.995; tests/test_catalog.py asserts it).
* Time to read and link the replica's generated catalogs, 20,000 listings a shop (`--quick`:
  500): the three shops list the same generated ornaments (tests/replica/ornaments.py), so the
  true ornament of each listing is known. Once as generated (nearly every listing has a SKU,
  so this is mostly item-number linking) and once with the SKU removed from every third
  listing (chosen by a hash of its link), so that those join by name. The replica draws SKUs
  at random, and some ornaments of one year share one; by the issue's rule those are one
  ornament, so the truth merges them (their number is printed). Fixture products are left out.
  What the linker misses there is by design: the replica names its miniature series without
  "Miniature" ("2019 Antique Tractors", item number QXM…), and a listing that does not say
  miniature never joins a miniature. Its few wrong links come from the replica generating a
  non-series "Rocking Horse Miniature" beside the "Miniature Rocking Horse" series in one
  year, and a listing without series number may join a numbered ornament of its name.

Figures only, no goal on time: the machine and its load decide those numbers.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import json
import time
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

from bench.common import Row, log, rows_table
from christmas_spiders.catalog import rules
from christmas_spiders.catalog.linker import link_all, listing_from_item
from christmas_spiders.catalog.measure import PairScores, pairwise_scores
from tests.replica.catalog import generate
from tests.replica.models import EXPECT_ITEM

FIGURE = "9"
LABELLED = Path(__file__).resolve().parent.parent / "tests/files/ornaments/labelled.jsonl"
GOAL_F1, GOAL_PRECISION = 0.99, 0.995
FULL_PER_SHOP, QUICK_PER_SHOP = 20_000, 500
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


def replica_listings(per_shop: int) -> tuple[list[dict[str, Any]], list[Hashable], int]:
    """The generated listings of every shop as §C2 items, their true ornaments, and how many
    replica ornaments share a year and item number with another (merged in the truth)."""
    items: list[dict[str, Any]] = []
    slots: list[tuple[int, str, int]] = []
    for shop in generate(seed=1, size=per_shop):
        starts = [block.start for block in shop.layout.fill_blocks]
        for product in shop.products():
            if product.expect != EXPECT_ITEM or product.index in shop.layout.fixtures_at:
                continue
            block = shop.layout.fill_blocks[bisect.bisect_right(starts, product.index) - 1]
            expected = product.expected(ORIGIN)
            assert expected is not None
            items.append(expected.as_json())
            slots.append((block.year, block.kind, block.slot_start + product.index - block.start))
    # By the rule, one year and one item number is one ornament: merge the slots that share.
    parent: dict[Hashable, Hashable] = {}

    def root(key: Hashable) -> Hashable:
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    for found, slot in zip(items, slots, strict=True):
        number = rules.item_number(found["sku"])
        if number is not None:
            parent[root(slot)] = root((found["release_year"], number))
    truth = [root(slot) for slot in slots]
    shared = len(set(slots)) - len(set(truth))
    return items, truth, shared


def _without_some_skus(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def dropped(found: dict[str, Any]) -> bool:
        return int(hashlib.sha256(found["link"].encode()).hexdigest(), 16) % 3 == 0

    return [{**found, "sku": None} if dropped(found) else found for found in items]


def measure_rows(quick: bool, detail: Callable[[str, str], None] | None = None) -> list[Row]:
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
    items, truth, shared = replica_listings(per_shop)
    lines = []
    for label, batch in (
        ("as generated", items),
        ("every third SKU removed", _without_some_skus(items)),
    ):
        log(f"ornament linking: linking {len(batch):,} listings, {label}")
        keys, reading, linking = linked(batch)
        seconds = reading + linking
        scores = pairwise_scores(keys, truth)
        with_sku = sum(1 for found in batch if found["sku"])
        rows.append(
            Row(
                FIGURE,
                f"ornament linking: read and link {len(batch):,} replica listings, {label}",
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
        "| replica listings | listings | with SKU | ornaments found | true ornaments "
        "| s to read + link | "
        "pairwise |\n| --- | --- | --- | --- | --- | --- | --- |\n" + "\n".join(lines) + "\n\n"
        f"{shared} replica ornaments share a year and an item number with another (the replica "
        "draws SKUs at random); by the rule they are one ornament, and the truth counts them so."
    )
    if detail is not None:
        detail("ornament linking on the replica", text)
    else:
        print(text + "\n")
    return rows


def measure(session: Any) -> list[Row]:
    """The hook `python -m bench` calls (bench/__main__.py figure_functions)."""
    return measure_rows(session.quick, lambda title, text: session.detail(FIGURE, title, text))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500 listings a shop")
    args = parser.parse_args(argv)
    rows = measure_rows(args.quick)
    print(rows_table(rows))


if __name__ == "__main__":
    main()
