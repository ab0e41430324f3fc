"""Render the hand-labelled listings (listings.txt) as §C2 items in labelled.jsonl.

    .venv/bin/python -m tests.files.ornaments.render

listings.txt holds what was labelled by hand: shop, category year, SKU, name, the series number
the page states, and the true ornament. This fills in the rest of each item the way the shop
would show it (product id, link in the shop's URL style, a price, availability), the same way
on every run, and adds the `truth` field.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from christmas_spiders.normalize import series_from_name

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "listings.txt"
TARGET = HERE / "labelled.jsonl"
SHOPS = {
    "H": ("hookedonhallmark_com", "https://www.hookedonhallmark.com", 24011, 7),
    "S": ("ornament_shop_com", "https://www.ornament-shop.com", 1187, 3),
    "F": ("hallmark_ornaments_com", "https://www.hallmarkornaments.com", 25615, 5),
}
_LINE = re.compile(
    r"^(?P<shop>[HSF]) (?P<year>\d{4}) (?P<sku>\S+) \| (?P<name>[^|]+?)(?: \| (?P<n>\d+))?$"
)


def _slug_words(name: str) -> list[str]:
    ascii_name = name.encode("ascii", "ignore").decode("ascii").replace("'", "")
    return [word for word in re.split(r"[^A-Za-z0-9]+", ascii_name) if word]


def _digest(*parts: str) -> int:
    return int(hashlib.sha256("|".join(parts).encode()).hexdigest()[:8], 16)


def item(shop: str, number: int, year: int, sku: str | None, name: str, stated: int | None) -> dict:
    vendor, origin, first_id, step = SHOPS[shop]
    product_id = first_id + number * step
    slug = "-".join(_slug_words(name))
    if shop == "H":
        link = f"{origin}/{slug}{'-' + sku if sku else ''}_p_{product_id}.html"
    elif shop == "F":
        link = f"{origin}/{slug}_p_{product_id}.html"
    else:
        link = f"{origin}/{slug.lower()}-{product_id}/"
    roll = _digest(vendor, name, sku or "")
    from_name = series_from_name(name)
    available = roll % 3 != 0
    return {
        "vendor": vendor,
        "vendor_product_id": str(product_id),
        "sku": sku,
        "name": name,
        "price": f"{12 + roll % 48}.95",
        "regular_price": None,
        "currency": "USD",
        "availability": "available" if available else "unavailable",
        "availability_text": "In Stock" if available else "Out of Stock",
        "release_year": year,
        "brand": "Hallmark",
        "link": link,
        "image_url": f"{origin}/assets/images/{sku or slug}.jpg",
        "series": from_name[0] if from_name else None,
        "series_number": stated or (from_name[1] if from_name else None),
        "artist": None,
    }


def read(source: Path = SOURCE) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    counters = dict.fromkeys(SHOPS, 0)
    truth = None
    for number, raw in enumerate(source.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("== "):
            truth = line[3:].strip()
            continue
        match = _LINE.match(line)
        if match is None or truth is None:
            raise ValueError(f"{source}:{number}: not a listing line: {raw!r}")
        shop = match["shop"]
        counters[shop] += 1
        sku = None if match["sku"] == "-" else match["sku"]
        stated = int(match["n"]) if match["n"] else None
        found = item(shop, counters[shop], int(match["year"]), sku, match["name"], stated)
        items.append({**found, "truth": truth})
    return items


def main() -> None:
    items = read()
    with TARGET.open("w", encoding="utf-8") as out:
        for found in items:
            out.write(json.dumps(found, ensure_ascii=False) + "\n")
    print(f"{len(items)} listings of {len({i['truth'] for i in items})} ornaments → {TARGET}")


if __name__ == "__main__":
    main()
