"""Shop-independent generated ornaments: what Hallmark made, not what a shop charges.

An ornament is identified by (seed, year, kind, slot). The first slots of a year go to the
series running that year, the rest to titles drawn without repetition from names.py. All three
shops derive their generated listings from the same ornaments, so a slot listed by two shops
is the same ornament (same name, SKU, series) at two prices, as on the real shops.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from . import names
from .fixtures import reserved_series
from .models import MINIATURE


@dataclass(frozen=True)
class Ornament:
    year: int
    kind: str
    title: str  # without the year
    name_in_series_form: bool  # "{year} {Series} {N}th in Series"
    sku: str
    series: str | None
    series_number: int | None
    artist: str | None
    market_price: Decimal  # a typical secondary-market / retail price
    retail_price: Decimal  # Hallmark's retail price (price-prefixed SKUs)

    @property
    def name(self) -> str:
        if self.series and self.name_in_series_form:
            return f"{self.year} {self.series} {names.ordinal(self.series_number or 0)} in Series"
        return f"{self.year} {self.title}"


def rng(*parts: object) -> random.Random:
    """A generator seeded from the parts; stable across runs and Python versions."""
    return random.Random(":".join(str(part) for part in parts))


def affine_permutation(size: int, generator: random.Random) -> tuple[int, int]:
    """(a, b) such that i ↦ (a*i + b) mod size is a permutation of range(size)."""
    if size <= 1:
        return 1, 0
    while True:
        a = generator.randrange(1, size)
        if math.gcd(a, size) == 1:
            return a, generator.randrange(size)


@lru_cache(maxsize=4096)
def series_slots(seed: int, year: int, kind: str) -> tuple[names.Series, ...]:
    """The series that take the first slots of (year, kind), in a seeded order."""
    taken = reserved_series()
    running = [
        series
        for series in names.SERIES
        if series.active(year)
        and series.miniature == (kind == MINIATURE)
        and (year, series.name) not in taken
    ]
    rng(seed, "series", year, kind).shuffle(running)
    return tuple(running)


@lru_cache(maxsize=2)
def _titles(kind: str) -> tuple[tuple[str, str], ...]:
    return tuple(names.miniature_titles() if kind == MINIATURE else names.regular_titles())


@lru_cache(maxsize=4096)
def _title_permutation(seed: int, year: int, kind: str) -> tuple[int, int]:
    return affine_permutation(len(_titles(kind)), rng(seed, "titles", year, kind))


def _market_price(year: int, generator: random.Random) -> Decimal:
    if year < 1980:
        low, high = 25, 95
    elif year < 1990:
        low, high = 18, 65
    elif year < 2000:
        low, high = 12, 45
    elif year < 2015:
        low, high = 12, 38
    else:
        low, high = 15, 40
    return Decimal(generator.randint(low, high)) + Decimal("0.95")


def ornament(seed: int, year: int, kind: str, slot: int) -> Ornament:
    """The ornament in slot `slot` of (year, kind)."""
    generator = rng(seed, "ornament", year, kind, slot)
    running = series_slots(seed, year, kind)
    if slot < len(running):
        series = running[slot]
        title, prefix = series.name, "QXM" if kind == MINIATURE else "QX"
        series_name, number = series.name, series.number(year)
    else:
        titles = _titles(kind)
        a, b = _title_permutation(seed, year, kind)
        position = slot - len(running)
        title, prefix = titles[(a * position + b) % len(titles)]
        if position >= len(titles):
            title = f"{title} Repaint {position // len(titles)}"
        series_name, number = None, None
    retail = Decimal(generator.choice((14, 15, 17, 18, 19, 21, 24, 27, 29, 34, 37))) + Decimal(
        "0.99"
    )
    return Ornament(
        year=year,
        kind=kind,
        title=title,
        name_in_series_form=series_name is not None and generator.random() < 0.5,
        sku=f"{prefix}{generator.randint(1000, 9999)}",
        series=series_name,
        series_number=number,
        artist=generator.choice(names.ARTISTS) if generator.random() < 0.75 else None,
        market_price=_market_price(year, generator),
        retail_price=retail,
    )
