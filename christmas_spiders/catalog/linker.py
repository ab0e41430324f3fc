"""Linking listings to ornaments: which listings of the three shops are one Keepsake design.

The rules (rules.py reads the parts of each listing):

* **Same ornament by item number**: listings at any shop of the same year and the same
  Hallmark item number (SKU without price code or condition suffix). Item numbers are unique
  within a year, not across years. Two different item numbers are never one ornament.
* **Condition is a property of the offer**: a boxed and an unboxed listing of one item number
  (or one name) are two offers of one ornament, each with its `condition`.
* **Same ornament by name**: a listing (with or without an item number) joins an ornament of
  the same year whose item number does not differ from its own, with the same kind flags
  (miniature, Magic or light and sound, signed, limited, club), a series number that does not
  contradict (an unknown number contradicts none), and one of the ornament's names equal to
  the listing's comparable name — word for word in any order, or with the spaces run
  together ("Snow Man" / "Snowman") — or different by one typo: a single word of at least
  six letters that lacks or adds one letter inside it, or swaps two neighbours ("Yuletide
  Centeral", "Ligthouse"), next to at least one equal word. A letter added at either end is
  another word ("Kitten" / "Kittens", "Ride" / "Rider", "Baker" / "Bakery"), and so is any
  added or swapped word ("Snowman" / "Snowman Photo Holder", "Nephew" / "Niece").
* **When in doubt, do not link**: a wrong link shows a wrong "cheapest" price, a missed one
  only a shorter list. Candidates are ranked by score (100 for an item number or an exact
  name, else rapidfuzz's ratio of the sorted words), then by an equal stated series number,
  then by ornament key (a stable id, so the result never depends on order); when the best
  two tie, or two ornaments are both only typo-near, the listing is not linked.

API: `listing_from_item(item)` reads a §C2 item; `ornament_key(listing)` is the listing's own
key, pure; `link(listing, candidates)` picks one existing ornament among candidates (the
database linker links each batch against the ornaments already stored); `link_all(listings)`
links a whole set offline, in an order fixed by the keys, so its result does not depend on
the order listings arrive in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA, Indel, Levenshtein

from christmas_spiders.catalog import rules
from christmas_spiders.normalize import series_from_name

ITEM_NUMBER, NAME = rules.ITEM_NUMBER, rules.NAME
EXACT = 100.0
FUZZY_CUTOFF = 85.0  # rapidfuzz ratio of the sorted words below which no typo rule is tried
TYPO_MIN_LETTERS = 6


class InvalidListing(ValueError):
    """An item that cannot be linked: the message says which field is wrong."""


@dataclass(frozen=True)
class Listing:
    """One shop listing, read through the rules."""

    ref: str  # a stable id of the listing: its link, else vendor:vendor_product_id
    vendor: str
    link: str | None
    year: int
    item_number: str | None
    name: rules.NameForm
    series: str | None
    series_number: int | None
    flags: frozenset[str]
    condition: str


@dataclass(frozen=True)
class Ornament:
    """One Keepsake design of one year, as its listings describe it."""

    key: str  # stable id: "1994:QX5216", or the key of the listing group that founded it
    year: int
    item_number: str | None
    flags: frozenset[str]
    series: str | None
    series_numbers: frozenset[int] = frozenset()  # more than one only if listings disagree
    aliases: frozenset[rules.NameForm] = field(default_factory=frozenset)

    @property
    def name(self) -> str:
        """The canonical comparable name: the first of its names' sorted words."""
        return min((alias.sorted_text for alias in self.aliases), default="")

    @property
    def series_number(self) -> int | None:
        return min(self.series_numbers, default=None)

    @classmethod
    def founded(cls, key: str, listings: Sequence[Listing]) -> Ornament:
        first = listings[0]
        start = cls(key, first.year, first.item_number, first.flags, first.series)
        return start.joined(listings)

    def joined(self, listings: Iterable[Listing]) -> Ornament:
        """This ornament with `listings` linked to it: their names, numbers and flags added."""
        listings = list(listings)
        series = sorted({self.series, *(listing.series for listing in listings)} - {None})
        numbers = {listing.series_number for listing in listings} - {None}
        return replace(
            self,
            item_number=self.item_number
            or min((item.item_number for item in listings if item.item_number), default=None),
            flags=self.flags.union(*(listing.flags for listing in listings)),
            series=series[0] if series else None,
            series_numbers=self.series_numbers | numbers,
            aliases=self.aliases | {listing.name for listing in listings if listing.name.words},
        )


@dataclass(frozen=True)
class Link:
    """How a listing was linked to its ornament: method `item_number` or `name`, score 0–100."""

    ornament: Ornament
    method: str
    score: float


def _text(item: Mapping[str, Any], field_name: str, *, required: bool = False) -> str | None:
    value = item.get(field_name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidListing(f"{field_name} is missing")
        return None
    if not isinstance(value, str):
        raise InvalidListing(f"{field_name} must be a string, not {value!r}")
    return value.strip()


def _number(item: Mapping[str, Any], field_name: str) -> int | None:
    value = item.get(field_name)
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidListing(f"{field_name} must be a positive whole number, not {value!r}")
    return value


def listing_from_item(item: Mapping[str, Any]) -> Listing:
    """Read one item of vendor-sites.md §C2 (as `scrapy crawl -O items.jsonl` writes it)."""
    if not isinstance(item, Mapping):
        raise InvalidListing(f"an item must be a JSON object, not {type(item).__name__}")
    vendor = _text(item, "vendor", required=True)
    name = _text(item, "name", required=True)
    assert vendor is not None and name is not None
    sku, link = _text(item, "sku"), _text(item, "link")
    release_year = _number(item, "release_year")
    parts = rules.parse_name(name, release_year)
    year = parts.year
    if year is None:
        raise InvalidListing("release_year is missing and the name carries no year")
    if not rules.FIRST_KEEPSAKE_YEAR <= year <= rules.LAST_YEAR:
        raise InvalidListing(f"release_year {year} is not a Keepsake year")
    number = rules.item_number(sku)
    product_id = item.get("vendor_product_id")
    ref = link or (f"{vendor}:{product_id}" if product_id is not None else f"{vendor}:{name}")
    stated_series = series_from_name(name)
    return Listing(
        ref=ref,
        vendor=vendor,
        link=link,
        year=year,
        item_number=number,
        name=parts.form,
        series=_text(item, "series") or (stated_series[0] if stated_series else None),
        series_number=_number(item, "series_number") or parts.series_number,
        flags=parts.flags | rules.item_number_flags(number),
        condition=rules.offer_condition(parts.condition, sku),
    )


def ornament_key(listing: Listing) -> str:
    """The listing's own key, equal for listings that are surely one ornament.

    "1994:QX5216" with an item number; "1994:name:central yuletide|1" (sorted words, series
    number, kind flags) without. A listing without an item number or a usable name word is an
    ornament of its own ("1994:listing:<its link>").
    """
    if listing.item_number:
        return f"{listing.year}:{listing.item_number}"
    if not listing.name.words:
        return f"{listing.year}:listing:{listing.ref}"
    key = f"{listing.year}:name:{listing.name.sorted_text}|{listing.series_number or ''}"
    flags = sorted(rules.kind(listing.flags))
    return key + ("|" + "+".join(flags) if flags else "")


def _typo(one: str, other: str) -> bool:
    """A misspelling, not another word: one letter more or less inside the word, or two
    neighbours swapped; never a letter added at an end ("Kitten" / "Kittens")."""
    if not (one.isalpha() and other.isalpha()) or min(len(one), len(other)) < TYPO_MIN_LETTERS:
        return False
    short, long = sorted((one, other), key=len)
    if long.startswith(short) or long.endswith(short):
        return False
    swapped = OSA.distance(one, other) == 1 and Levenshtein.distance(one, other) == 2
    return Indel.distance(one, other) == 1 or swapped


def one_typo(one: rules.NameForm, other: rules.NameForm) -> bool:
    """True when two names differ by exactly one misspelt word (module docstring)."""
    left, right = list(one.words), list(other.words)
    for word in one.words:
        if word in right:
            right.remove(word)
            left.remove(word)
    shared = len(one.words) - len(left)
    return shared >= 1 and len(left) == len(right) == 1 and _typo(left[0], right[0])


def name_score(one: rules.NameForm, other: rules.NameForm) -> float | None:
    """100 for equal names, rapidfuzz's ratio for typo-only differences, else None."""
    if not one.words or not other.words:
        return None
    if (
        one.sorted_text == other.sorted_text
        or one.bare_text == other.bare_text
        or one.squashed == other.squashed
    ):
        return EXACT
    if one_typo(one, other):
        return fuzz.ratio(one.sorted_text, other.sorted_text)
    return None


def compatible(listing: Listing, ornament: Ornament) -> bool:
    """Year, item number, kind flags and series number do not tell them apart."""
    if listing.year != ornament.year or rules.kind(listing.flags) != rules.kind(ornament.flags):
        return False
    numbers_differ = listing.item_number and ornament.item_number not in (None, listing.item_number)
    if numbers_differ:
        return False
    return listing.series_number is None or ornament.series_numbers <= {listing.series_number}


class OrnamentIndex:
    """Ornaments looked up by item number, exact name and, through rapidfuzz, near name.

    Ornaments only grow: `put` adds an ornament or replaces it by a version with more names.
    """

    def __init__(self, ornaments: Iterable[Ornament] = ()) -> None:
        self.ornaments: dict[str, Ornament] = {}
        self._by_item: dict[tuple[int, str], str] = {}
        self._exact: defaultdict[tuple[int, str], set[str]] = defaultdict(set)
        self._near_texts: defaultdict[int, list[str]] = defaultdict(list)
        self._near_entries: defaultdict[int, list[tuple[rules.NameForm, str]]] = defaultdict(list)
        self._indexed: set[tuple[rules.NameForm, str]] = set()
        for ornament in ornaments:
            self.put(ornament)

    def put(self, ornament: Ornament) -> None:
        self.ornaments[ornament.key] = ornament
        if ornament.item_number:
            self._by_item.setdefault((ornament.year, ornament.item_number), ornament.key)
        for alias in ornament.aliases:
            if (alias, ornament.key) in self._indexed:
                continue
            self._indexed.add((alias, ornament.key))
            self._exact[ornament.year, "words:" + alias.sorted_text].add(ornament.key)
            self._exact[ornament.year, "bare:" + alias.bare_text].add(ornament.key)
            self._exact[ornament.year, "squashed:" + alias.squashed].add(ornament.key)
            self._near_texts[ornament.year].append(alias.sorted_text)
            self._near_entries[ornament.year].append((alias, ornament.key))

    def link(self, listing: Listing) -> Link | None:
        """The ornament `listing` belongs to among those indexed, or None (module docstring)."""
        if listing.item_number:
            key = self._by_item.get((listing.year, listing.item_number))
            if key is not None:
                return Link(self.ornaments[key], ITEM_NUMBER, EXACT)
        if not listing.name.words:
            return None
        exact = self._exact_matches(listing)
        if exact:
            return self._best(listing, exact, unique=False)
        return self._best(listing, self._near_matches(listing), unique=True)

    def _exact_matches(self, listing: Listing) -> dict[str, float]:
        name, year = listing.name, listing.year
        keys: set[str] = set()
        for lookup in ("words:" + name.sorted_text, "bare:" + name.bare_text):
            keys |= self._exact.get((year, lookup), set())
        keys |= self._exact.get((year, "squashed:" + name.squashed), set())
        return {key: EXACT for key in keys if compatible(listing, self.ornaments[key])}

    def _near_matches(self, listing: Listing) -> dict[str, float]:
        texts = self._near_texts.get(listing.year, [])
        found: dict[str, float] = {}
        for _, _, position in process.extract(
            listing.name.sorted_text,
            texts,
            scorer=fuzz.ratio,
            score_cutoff=FUZZY_CUTOFF,
            limit=None,
        ):
            alias, key = self._near_entries[listing.year][position]
            score = name_score(listing.name, alias)
            if score is not None and compatible(listing, self.ornaments[key]):
                found[key] = max(score, found.get(key, 0.0))
        return found

    def _best(self, listing: Listing, scores: dict[str, float], unique: bool) -> Link | None:
        """The top-ranked ornament; None when the best two tie, or when `unique` (typo-near
        matches) and there are two (module docstring)."""

        def rank(key: str) -> tuple[float, int, str]:
            stated = listing.series_number in self.ornaments[key].series_numbers
            return (-scores[key], -int(stated), key)

        ranked = sorted(scores, key=rank)
        if not ranked or (
            len(ranked) > 1 and (unique or rank(ranked[0])[:2] == rank(ranked[1])[:2])
        ):
            return None
        return Link(self.ornaments[ranked[0]], NAME, scores[ranked[0]])


def link(listing: Listing, candidates: Iterable[Ornament]) -> Link | None:
    """The ornament among `candidates` that `listing` belongs to, or None (module docstring)."""
    return OrnamentIndex(candidates).link(listing)


def _link_group(index: OrnamentIndex, members: Sequence[Listing]) -> Link | None:
    """Where a group of listings with one key belongs. Its members may still read differently
    (word order, possessives): each distinct reading is tried, and readings that point to two
    ornaments link none."""
    readings = {member.name: member for member in members}
    found = [index.link(readings[name]) for name in sorted(readings, key=_reading_order)]
    targets = {made.ornament.key for made in found if made is not None}
    if len(targets) != 1:
        return None
    return max((made for made in found if made is not None), key=lambda made: made.score)


def _reading_order(name: rules.NameForm) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return name.words, name.bare


def link_all(listings: Sequence[Listing]) -> list[Link]:
    """Link a whole set offline: one Link per listing, in the listings' order.

    Listings with an item number found their year's ornaments first; then the groups of
    listings without one, taken by key (those stating a series number first), each join the
    ornament `OrnamentIndex.link` finds or found one. The order is fixed by the keys, so
    shuffling the input changes nothing.
    """
    groups: defaultdict[str, list[int]] = defaultdict(list)
    for position, listing in enumerate(listings):
        groups[ornament_key(listing)].append(position)
    index = OrnamentIndex()
    made: dict[str, tuple[str, str, float]] = {}  # group key → (ornament key, method, score)
    numbered = sorted(key for key in groups if listings[groups[key][0]].item_number)
    for key in numbered:
        index.put(Ornament.founded(key, [listings[position] for position in groups[key]]))
        made[key] = (key, ITEM_NUMBER, EXACT)
    named = sorted(
        (key for key in groups if not listings[groups[key][0]].item_number),
        key=lambda key: (listings[groups[key][0]].series_number is None, key),
    )
    for key in named:
        members = [listings[position] for position in groups[key]]
        found = _link_group(index, members)
        if found is None:
            index.put(Ornament.founded(key, members))
            made[key] = (key, NAME, EXACT)
        else:
            index.put(found.ornament.joined(members))
            made[key] = (found.ornament.key, NAME, found.score)
    links: list[Link | None] = [None] * len(listings)
    for key, positions in groups.items():
        ornament_id, method, score = made[key]
        for position in positions:
            links[position] = Link(index.ornaments[ornament_id], method, score)
    return [found for found in links if found is not None]
