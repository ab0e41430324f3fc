"""Series as collectors work through them (issue #15): each number of a series with its
ornaments and the cheapest offer in stock, and the numbers no shop has.

* A **series** is the ornaments whose `series` is its name, in any case (the linker gives each
  ornament one series name: the first, alphabetically, of its listings' names).
* The numbers that count run from 1 to the highest number known of the series: Hallmark
  numbers a series from its first ornament on, so a number up to the highest that no ornament
  has is one **no shop lists** (`missing`), and a number whose ornaments have no offer in stock
  is one **no shop has in stock** (`not_in_stock`). Numbers past the highest known cannot be
  told from numbers not made yet, so they do not count.
* A number held by several ornaments (a miniature beside the full-size one, a limited edition
  beside the regular one) lists each; its cheapest offer is the cheapest of theirs. Ornaments of
  the series without a number are listed apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from christmas_spiders.storage.schema import ornaments, products
from webapi import ornament_queries
from webapi.ornament_queries import Best

_o = ornaments.c
_p = products.c


def series_list(connection: Connection) -> list[Row]:
    """Every series, by name: its ornaments, years, highest number, and how many of its numbers
    an ornament has and an offer in stock has."""
    stocked = (
        sa.select(_p.ornament_id)
        .where(ornament_queries.IN_STOCK_NOW, _p.ornament_id.is_not(None))
        .distinct()
        .subquery()
    )
    key = sa.func.lower(_o.series)
    number = _o.series_number
    query = (
        sa.select(
            sa.func.min(_o.series).label("name"),
            sa.func.count().label("ornaments"),
            sa.func.min(_o.year).label("first_year"),
            sa.func.max(_o.year).label("last_year"),
            sa.func.max(number).label("last_number"),
            sa.func.count(number.distinct()).label("numbers_known"),
            sa.func.count(number.distinct())
            .filter(stocked.c.ornament_id.is_not(None))
            .label("numbers_in_stock"),
        )
        .select_from(ornaments.outerjoin(stocked, stocked.c.ornament_id == _o.id))
        .where(_o.series.is_not(None))
        .group_by(key)
        .order_by(key)
    )
    return connection.execute(query).all()


def series_ornaments(connection: Connection, name: str) -> list[Row]:
    """The ornaments of one series (its name in any case), by number, year and id."""
    query = (
        sa.select(ornaments)
        .where(sa.func.lower(_o.series) == name.lower())
        .order_by(_o.series_number.asc().nulls_last(), _o.year, _o.id)
    )
    return connection.execute(query).all()


@dataclass(frozen=True)
class Member:
    """An ornament of a series with its listed offers and its best ones."""

    ornament: Row
    offers: Sequence[Row]
    best: Best


@dataclass(frozen=True)
class Number:
    number: int
    members: list[Member]  # empty: no shop lists this number
    best: Best  # the cheapest in stock (and boxed) among its ornaments' offers


@dataclass(frozen=True)
class Completion:
    """A series worked through: numbers 1 to `last_number`, each with what is for sale."""

    name: str
    numbers: list[Number]
    unnumbered: list[Member]
    first_number: int = 1

    @property
    def last_number(self) -> int | None:
        return self.numbers[-1].number if self.numbers else None

    @property
    def missing(self) -> list[int]:
        return [number.number for number in self.numbers if not number.members]

    @property
    def not_in_stock(self) -> list[int]:
        return [n.number for n in self.numbers if n.members and n.best.cheapest is None]

    @property
    def in_stock(self) -> int:
        return sum(number.best.cheapest is not None for number in self.numbers)

    @property
    def in_stock_boxed(self) -> int:
        return sum(number.best.cheapest_boxed is not None for number in self.numbers)

    @property
    def cheapest_total(self) -> Decimal:
        return sum((n.best.cheapest.price for n in self.numbers if n.best.cheapest), Decimal(0))

    @property
    def cheapest_boxed_total(self) -> Decimal:
        boxed = (n.best.cheapest_boxed.price for n in self.numbers if n.best.cheapest_boxed)
        return sum(boxed, Decimal(0))


def completion(
    name: str, members: Sequence[Row], offers: Mapping[int, Sequence[Row]]
) -> Completion:
    """Series completion (module doc) from its ornaments and their listed offers. Pure."""
    by_number: dict[int, list[Member]] = {}
    unnumbered = []
    for ornament in members:
        found = offers.get(ornament.id, [])
        member = Member(ornament, found, ornament_queries.best(found))
        if ornament.series_number is None:
            unnumbered.append(member)
        else:
            by_number.setdefault(ornament.series_number, []).append(member)
    numbers = []
    for number in range(1, max(by_number, default=0) + 1):
        held = by_number.get(number, [])
        every_offer = [offer for member in held for offer in member.offers]
        numbers.append(Number(number, held, ornament_queries.best(every_offer)))
    return Completion(name, numbers, unnumbered)


def read_completion(connection: Connection, name: str) -> Completion | None:
    """The completion of the series `name` (any case); None when no ornament has that series."""
    members = series_ornaments(connection, name)
    if not members:
        return None
    offers = ornament_queries.listed_offers(connection, [member.id for member in members])
    return completion(_name_of(members), members, offers)


def _name_of(members: Sequence[Any]) -> str:
    """The series' name as its ornaments write it (the first alphabetically, as series_list)."""
    return min(member.series for member in members)
