"""Shop-independent generated ornaments: what Hallmark made, not what a shop charges.

An ornament is identified by (seed, year, kind, slot). The first slots of a year go to the
series running that year, the rest to titles drawn without repetition from names.py. All three
shops derive their generated listings from the same ornaments, so a slot listed by two shops
is the same ornament (same SKU, series; each shop names it in its own style, products.py) at
two prices, as on the real shops. `Ornament.truth` names it: the test truth of linking.

As Hallmark's, item numbers are unique within a year: a slot whose drawn number an earlier slot
of its year and kind, or a hand-written product of its year, already has takes the next free
one. A title a hand-written product or a series of the year already has (in any word order:
"Rocking Horse Miniature" beside the "Miniature Rocking Horse" series) is another design
("… II"), and a miniature of a series whose name lacks the word says "Miniature", as a shop
would.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from . import names
from .fixtures import FIXTURES, reserved_series
from .models import MINIATURE

_FIRST_NUMBER, _LAST_NUMBER = 1000, 9999  # the 4 digits of a generated item number


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
    slot: int = 0

    @property
    def truth(self) -> str:
        """The ornament's identity, equal for every shop's listing of it."""
        return f"{self.year}/{self.kind}/{self.slot}"

    @property
    def name(self) -> str:
        if self.series and self.name_in_series_form:
            name = f"{self.year} {self.series} {names.ordinal(self.series_number or 0)} in Series"
            unsaid = self.kind == MINIATURE and "Miniature" not in self.series
            return name + (" Miniature" if unsaid else "")
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


def _words(text: str) -> tuple[str, ...]:
    """The words of a name in alphabetical order, lower case: equal names in any order."""
    return tuple(sorted(word.lower() for word in names.ascii_words(text)))


@lru_cache(maxsize=1)
def _fixture_names() -> dict[int, frozenset[tuple[str, ...]]]:
    """The words of each hand-written product's name without its year, by that year."""
    found: dict[int, set[tuple[str, ...]]] = {}
    for specs in FIXTURES.values():
        for spec in specs:
            found.setdefault(int(spec.name[:4]), set()).add(_words(spec.name[4:]))
    return {year: frozenset(words) for year, words in found.items()}


def fixture_item_number(sku: str | None) -> str | None:
    """A hand-written SKU without the shop's price code and box suffix ('3799QXI7109' →
    'QXI7109', ' qx1571NB' → 'QX1571'), as the replica writes them."""
    text = (sku or "").strip().upper().lstrip("0123456789")
    return (text.removesuffix("NB") or None) if text else None


@lru_cache(maxsize=1)
def _fixture_numbers() -> dict[int, frozenset[str]]:
    """Item numbers the hand-written products of each year have (by their name's year)."""
    found: dict[int, set[str]] = {}
    for specs in FIXTURES.values():
        for spec in specs:
            number = fixture_item_number(spec.sku)
            if number:
                found.setdefault(int(spec.name[:4]), set()).add(number)
    return {year: frozenset(numbers) for year, numbers in found.items()}


def _slot_title(seed: int, year: int, kind: str, slot: int) -> tuple[str, str, names.Series | None]:
    """(title, SKU prefix, series) of a slot."""
    running = series_slots(seed, year, kind)
    if slot < len(running):
        series = running[slot]
        title = series.name
        if kind == MINIATURE and "Miniature" not in title:
            title = f"{title} Miniature"
        return title, "QXM" if kind == MINIATURE else "QX", series
    titles = _titles(kind)
    a, b = _title_permutation(seed, year, kind)
    position = slot - len(running)
    title, prefix = titles[(a * position + b) % len(titles)]
    if position >= len(titles):
        title = f"{title} Repaint {position // len(titles)}"
    taken = _fixture_names().get(year, frozenset()) | {_words(s.name) for s in running}
    if _words(title) in taken:
        title = f"{title} II"
    return title, prefix, None


def _draws(
    seed: int, year: int, kind: str, slot: int, in_series: bool
) -> tuple[random.Random, Decimal, bool, int]:
    """The slot's generator after its first draws: retail price, series form (a series slot
    only), item number."""
    generator = rng(seed, "ornament", year, kind, slot)
    retail = Decimal(generator.choice((14, 15, 17, 18, 19, 21, 24, 27, 29, 34, 37))) + Decimal(
        "0.99"
    )
    series_form = in_series and generator.random() < 0.5
    return generator, retail, series_form, generator.randint(_FIRST_NUMBER, _LAST_NUMBER)


_item_numbers: dict[tuple[int, int, str], list[str]] = {}
_item_numbers_lock = threading.Lock()


def item_number(seed: int, year: int, kind: str, slot: int) -> str:
    """The slot's item number: its drawn one, or the next free one in its year (module doc)."""
    with _item_numbers_lock:
        taken = _item_numbers.setdefault((seed, year, kind), [])
        reserved = _fixture_numbers().get(year, frozenset())
        while len(taken) <= slot:
            _, prefix, series = _slot_title(seed, year, kind, len(taken))
            number = _draws(seed, year, kind, len(taken), series is not None)[3]
            used = set(taken) | reserved
            while f"{prefix}{number}" in used:
                number = _FIRST_NUMBER + (number + 1 - _FIRST_NUMBER) % (
                    _LAST_NUMBER + 1 - _FIRST_NUMBER
                )
            taken.append(f"{prefix}{number}")
        return taken[slot]


def ornament(seed: int, year: int, kind: str, slot: int) -> Ornament:
    """The ornament in slot `slot` of (year, kind)."""
    title, _, series = _slot_title(seed, year, kind, slot)
    generator, retail, series_form, _ = _draws(seed, year, kind, slot, series is not None)
    return Ornament(
        year=year,
        kind=kind,
        title=title,
        name_in_series_form=series_form,
        sku=item_number(seed, year, kind, slot),
        series=series.name if series else None,
        series_number=series.number(year) if series else None,
        artist=generator.choice(names.ARTISTS) if generator.random() < 0.75 else None,
        market_price=_market_price(year, generator),
        retail_price=retail,
        slot=slot,
    )
