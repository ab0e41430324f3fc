"""The replica shops of the demo, and what "a day later" does to them.

A day at the shops is a list of `Move`s chosen (seeded, so every run tells the same story)
from a shop's live catalog and applied through the replica's control API: prices drop, some
ornaments go on sale, one gets dearer, some sell out and others come back in stock, one page
goes and a product that was gone comes back.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from christmas_spiders.vendors import VENDORS
from tests.replica.client import Replica
from tests.replica.process import ReplicaProcess

# Fixed ports, so the links stored by one demo still lead to the shops in the next one (free
# ports when these are taken).
DEMO_PORTS = {
    "hookedonhallmark_com": 8001,
    "ornament_shop_com": 8002,
    "hallmark_ornaments_com": 8003,
}
# What a day does to each shop: how many moves of each kind (a sale is a price drop with the
# old price shown beside it; "new" brings back a product whose page was gone).
DAY = {
    "price drop": 4,
    "sale": 2,
    "price rise": 1,
    "sold out": 2,
    "back in stock": 2,
    "gone": 1,
    "new": 1,
}
# The audited field each kind of move changes ("gone" and "new" are delisted and listed).
FIELD = {
    "price drop": "price",
    "sale": "price",
    "price rise": "price",
    "sold out": "availability",
    "back in stock": "availability",
    "gone": "delisted",
    "new": "listed",
}
_CENT = Decimal("0.01")


def start_replica(log_path: Any = None) -> Replica:
    """The replica (seed 1, small catalog) on the demo's ports, else on free ones."""
    try:
        process = ReplicaProcess.start(seed=1, size="small", ports=DEMO_PORTS, log_path=log_path)
    except RuntimeError:
        process = ReplicaProcess.start(seed=1, size="small", log_path=log_path)
    return Replica.attach(process)


@dataclass(frozen=True)
class Move:
    """One change at one shop: what a collector would notice, and the control-API call."""

    vendor: str
    vendor_product_id: str
    kind: str
    name: str
    before: str
    after: str
    changes: dict[str, Any] = field(compare=False)

    def __str__(self) -> str:
        return f"{self.name}: {self.before} → {self.after} ({self.kind})"

    def apply(self, replica: Replica) -> Move:
        """Make the move at the shop; a "new" product learns its name from the shop."""
        record = replica.set_product(self.vendor, self.vendor_product_id, **self.changes)
        if self.kind == "new":
            item = record["expected_item"]
            price = f"${item['price']}" if item["price"] else "no price"
            return Move(
                self.vendor,
                self.vendor_product_id,
                self.kind,
                item["name"],
                "not listed",
                f"listed at {price}, {item['availability']}",
                self.changes,
            )
        return self


def ends_95(amount: Decimal, rounding: str) -> Decimal:
    """A shop's kind of price near `amount`: whole dollars (rounded as told) less 5 cents."""
    price = amount.quantize(Decimal(1), rounding=rounding) - Decimal("0.05")
    return max(price, Decimal("0.95"))


def _money(value: Decimal) -> str:
    return f"${value.quantize(_CENT)}"


def move(record: dict[str, Any], kind: str, rng: random.Random) -> Move:
    """The move of `kind` for this catalog record (see DAY)."""
    vendor, product_id = record["vendor"], record["vendor_product_id"]
    item = record["expected_item"] or {}
    name = item.get("name", f"product {product_id}")
    price = Decimal(item["price"]) if item.get("price") else None
    if kind in ("price drop", "sale"):
        new = ends_95(price * Decimal(rng.choice(("0.7", "0.75", "0.8", "0.85"))), ROUND_FLOOR)
        changes: dict[str, Any] = {"price": str(new)}
        if kind == "sale":
            changes["regular_price"] = str(price)
        return Move(vendor, product_id, kind, name, _money(price), _money(new), changes)
    if kind == "price rise":
        new = ends_95(price * Decimal("1.12"), ROUND_CEILING)
        return Move(vendor, product_id, kind, name, _money(price), _money(new), {"price": str(new)})
    if kind in ("sold out", "back in stock"):
        before, after = ("available", "unavailable")[:: 1 if kind == "sold out" else -1]
        return Move(vendor, product_id, kind, name, before, after, {"availability": after})
    if kind == "gone":
        return Move(vendor, product_id, kind, name, "listed", "page gone", {"gone": True})
    if kind == "new":
        return Move(vendor, product_id, kind, name, "page gone", "listed", {"gone": False})
    raise ValueError(f"no such move: {kind}")


def _plain(records: Iterable[dict[str, Any]], availability: str) -> list[dict[str, Any]]:
    """Ordinary products (no edge case of the contract) in this availability, with a price."""
    return [
        record
        for record in records
        if record["expect"] == "item"
        and not record["edge_cases"]
        and record["expected_item"]["availability"] == availability
        and record["expected_item"]["price"]
    ]


def plan_day(records: list[dict[str, Any]], rng: random.Random) -> list[Move]:
    """A day at one shop (DAY's moves), on distinct products of its live catalog."""
    in_stock = rng.sample(
        _plain(records, "available"),
        sum(DAY[kind] for kind in ("price drop", "sale", "price rise", "sold out", "gone")),
    )
    kinds = [
        kind
        for kind in ("price drop", "sale", "price rise", "sold out", "gone")
        for _ in range(DAY[kind])
    ]
    moves = [move(record, kind, rng) for record, kind in zip(in_stock, kinds, strict=True)]
    restocked = rng.sample(_plain(records, "unavailable"), DAY["back in stock"])
    moves += [move(record, "back in stock", rng) for record in restocked]
    gone = [record for record in records if record["status"] in ("gone", "soft_404")]
    moves += [move(record, "new", rng) for record in gone[: DAY["new"]]]
    return moves


def a_day_later(replica: Replica, seed: int = 1) -> list[Move]:
    """Make a day happen at every shop; the moves made, shop by shop."""
    made: list[Move] = []
    for vendor in VENDORS:
        records = replica.live_catalog(vendor)["products"]
        rng = random.Random(f"{vendor}-{seed}")
        made += [planned.apply(replica) for planned in plan_day(records, rng)]
    return made


def expected_changes(moves: Iterable[Move]) -> Counter[str]:
    """The changes a sync must record for these moves, by field or kind (as a crawl's
    summary counts them)."""
    return Counter(FIELD[made.kind] for made in moves)
