"""Linking at store time: the products of a batch join their ornaments in the batch's
transaction (storage.products.upsert_products calls `link_products`).

The stored links are always those `linker.link_all` gives for every stored listing together,
whatever the order and the batches the listings came in. Per ornament year:

1. Only products whose name, SKU, year or series changed (or that are new) are read through
   the rules again (the upsert marks them `link_pending`); an unchanged re-sync links nothing.
2. The year is locked (records.lock_years), so two crawls linking one year follow each other
   and the second sees the first's ornaments.
3. The batch's listings can only change the links of their **neighbourhood**: the stored
   ornaments whose names are near theirs, found from the year's ornaments in one query, and
   so on from those ornaments' names until nothing new is near. "Near" is what the linker
   could ever compare: an equal name in any of its readings, or rapidfuzz's ratio of the
   sorted words at least linker.FUZZY_CUTOFF. Only a listing without item number looks for
   an ornament by name, so a name is searched among all the year's names when a listing
   without item number has it, and else among those only.
4. `link_all` links the neighbourhood's listings (the batch's read afresh, the others from
   their stored forms) exactly as it links the whole year: a neighbourhood's result never
   depends on listings outside it. records.write stores the result, records a `relinked`
   row for a product that moves, and deletes an ornament left without listings.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa
from rapidfuzz import fuzz, process
from sqlalchemy.engine import Connection

from christmas_spiders.catalog import rules
from christmas_spiders.catalog.linker import FUZZY_CUTOFF, ornament_key
from christmas_spiders.catalog.records import (
    MEMBERS,
    Member,
    Written,
    link_by_year,
    lock_years,
    parsed,
    stored,
    write,
)
from christmas_spiders.storage.schema import ornaments, products


def _readings(name: rules.NameForm) -> tuple[str, ...]:
    """The texts the linker looks a name up by (OrnamentIndex: words, bare, squashed)."""
    return ("w:" + name.sorted_text, "b:" + name.bare_text, "s:" + name.squashed)


@dataclass
class _Names:
    """Names to search: exact readings and the sorted words for rapidfuzz, with their owners."""

    exact: defaultdict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    texts: list[str] = field(default_factory=list)
    owners: list[int] = field(default_factory=list)

    def add(self, name: rules.NameForm, owner: int) -> None:
        for reading in _readings(name):
            self.exact[reading].add(owner)
        self.texts.append(name.sorted_text)
        self.owners.append(owner)

    def near(self, name: rules.NameForm) -> set[int]:
        found: set[int] = set()
        for reading in _readings(name):
            found |= self.exact.get(reading, set())
        hits = process.extract(
            name.sorted_text, self.texts, scorer=fuzz.ratio, score_cutoff=FUZZY_CUTOFF, limit=None
        )
        found.update(self.owners[position] for _, _, position in hits)
        return found


class YearNames:
    """The stored ornaments of one year, as names: which ornaments a name is near."""

    def __init__(self) -> None:
        self.by_key: dict[str, int] = {}
        self.aliases: dict[int, list[tuple[rules.NameForm, bool]]] = {}
        self.every = _Names()  # searched for a listing without item number
        self.searched = _Names()  # names of listings without item number, searched for others

    def add(self, ornament_id: int, key: str, aliases: list[dict]) -> None:
        self.by_key[key] = ornament_id
        names = []
        for alias in aliases:
            name = rules.NameForm(tuple(alias["words"]), tuple(alias["bare"]))
            names.append((name, alias["searcher"]))
            self.every.add(name, ornament_id)
            if alias["searcher"]:
                self.searched.add(name, ornament_id)
        self.aliases[ornament_id] = names

    def near(self, name: rules.NameForm, searcher: bool) -> set[int]:
        """Ornaments whose listings the linker could compare with a listing named `name`."""
        if not name.words:
            return set()
        return (self.every if searcher else self.searched).near(name)

    def neighbourhood(
        self, names: Iterable[tuple[rules.NameForm, bool]], ornament_ids: Iterable[int]
    ) -> set[int]:
        """The ornaments reached from `names` and `ornament_ids` through near names."""
        reached = {ornament_id for ornament_id in ornament_ids if ornament_id in self.aliases}
        waiting = list(names) + [alias for found in reached for alias in self.aliases[found]]
        while waiting:
            name, searcher = waiting.pop()
            for found in self.near(name, searcher) - reached:
                reached.add(found)
                waiting.extend(self.aliases[found])
        return reached


def _year_names(connection: Connection, years: Collection[int]) -> dict[int, YearNames]:
    found: defaultdict[int, YearNames] = defaultdict(YearNames)
    query = sa.select(ornaments.c.id, ornaments.c.key, ornaments.c.year, ornaments.c.aliases)
    for row in connection.execute(query.where(ornaments.c.year.in_(sorted(years)))):
        found[row.year].add(row.id, row.key, row.aliases)
    return found


def _reached(
    connection: Connection, batch: dict[int, Member], old_years: dict[int, int]
) -> set[int]:
    """The stored ornaments whose links the batch can change: per year, those near its
    listings' names (and their own keys), and those its products leave."""
    years = {m.listing.year for m in batch.values() if m.listing} | set(old_years.values())
    names = _year_names(connection, years)
    reached: set[int] = set()
    for year in years:
        seeds = [m.listing for m in batch.values() if m.listing and m.listing.year == year]
        keys = [names[year].by_key.get(ornament_key(listing)) for listing in seeds]
        left = [batch[pid].ornament_id for pid, old in old_years.items() if old == year]
        reached |= names[year].neighbourhood(
            [(listing.name, listing.item_number is None) for listing in seeds],
            [found for found in keys + left if found is not None],
        )
    return reached


def link_products(connection: Connection, product_ids: Collection[int]) -> Written:
    """Link the stored products `product_ids` and re-link their neighbourhoods (module doc),
    inside the caller's transaction."""
    if not product_ids:
        return Written()
    query = MEMBERS.add_columns(ornaments.c.year.label("old_year")).outerjoin(ornaments)
    rows = connection.execute(query.where(products.c.id.in_(sorted(product_ids)))).all()
    batch = {row.id: parsed(row) for row in rows}
    old_years = {row.id: row.old_year for row in rows if row.old_year is not None}
    new_years = {member.listing.year for member in batch.values() if member.listing}
    lock_years(connection, new_years | set(old_years.values()))
    reached = _reached(connection, batch, old_years)
    members = dict(batch)
    if reached:
        for row in connection.execute(MEMBERS.where(products.c.ornament_id.in_(sorted(reached)))):
            if row.id not in members:
                members[row.id] = stored(row)
    return write(connection, list(members.values()), link_by_year(members.values()), reached)
