"""Links as the database keeps them: products read as listings, and the result of a linking
written back (ornaments, each product's link, `relinked` history rows).

A product's form (table `listing_forms`) is its listing as the rules read it (year, item
number, name words, series number, kind flags, condition), or the `problem` that keeps it from
being linked. Store-time linking (catalog.store) reads the forms of a product's neighbours
instead of parsing their names again; a stored product is linked again only when the upsert
marks it `link_pending` (what its listing is read from changed). The `relink` command
(catalog.relink) parses every product afresh.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.engine import Connection

from christmas_spiders.catalog import rules
from christmas_spiders.catalog.linker import (
    InvalidListing,
    Link,
    Listing,
    Ornament,
    link_all,
    listing_from_item,
)
from christmas_spiders.domain import RELINKED
from christmas_spiders.storage.schema import listing_forms, ornaments, product_changes, products

# The product columns a listing is read from (vendor-sites.md §C2 names).
INPUT_COLUMNS = (
    "vendor",
    "vendor_product_id",
    "link",
    "name",
    "sku",
    "release_year",
    "series",
    "series_number",
)
# pg_advisory_xact_lock(YEAR_LOCK, year): one linking at a time per ornament year ("orn" in ASCII).
YEAR_LOCK = 0x6F726E


def lock_years(connection: Connection, years: Iterable[int]) -> None:
    """Take the transaction's lock on each ornament year, in order (no deadlock between two
    linkings): whoever links a year sees what the one before it committed."""
    for year in sorted(set(years)):
        connection.execute(sa.select(sa.func.pg_advisory_xact_lock(YEAR_LOCK, year)))


@dataclass
class Member:
    """One product taking part in a linking: its listing (None when the rules cannot read it)
    and its link as stored."""

    product_id: int
    name: str
    sku: str | None
    listing: Listing | None
    problem: str | None = None  # why `listing` is None
    ornament_id: int | None = None  # as stored, like the rest
    link: tuple[Any, ...] | None = None  # (ornament_id, condition, link_method, link_score)
    form: dict[str, Any] | None = None
    fresh: bool = True  # read through the rules now (else from its stored form)

    @classmethod
    def of(cls, row: Any, listing: Listing | None, problem: str | None, fresh: bool) -> Member:
        link = (row.ornament_id, row.condition, row.link_method, row.link_score)
        return cls(
            row.id, row.name, row.sku, listing, problem, row.ornament_id, link, row.form, fresh
        )


# The columns a linking reads, from SOURCE.
MEMBER_COLUMNS = (products.c.id, *(products.c[name] for name in INPUT_COLUMNS))
STATE_COLUMNS = (
    products.c.ornament_id,
    products.c.condition,
    products.c.link_method,
    products.c.link_score,
    listing_forms.c.form,
)
SOURCE = products.outerjoin(listing_forms)
# What a linking reads of each product (narrowed with .where(), read with `parsed` or `stored`).
MEMBERS = sa.select(*MEMBER_COLUMNS, *STATE_COLUMNS).select_from(SOURCE)


def parsed(row: Any) -> Member:
    """A product row read afresh through the rules."""
    item = {name: getattr(row, name) for name in INPUT_COLUMNS}
    try:
        listing: Listing | None = listing_from_item(item)
        problem = None
    except InvalidListing as error:
        listing, problem = None, str(error)
    return Member.of(row, listing, problem, fresh=True)


def stored(row: Any) -> Member:
    """A linked product row as its form says the rules read it (read afresh when there is no
    such form: a link written by hand, or by an older version)."""
    form = row.form
    if not isinstance(form, dict) or not form.keys() >= _FORM_KEYS:
        return parsed(row)
    listing = Listing(
        ref=form["ref"],
        vendor=row.vendor,
        link=row.link,
        year=form["year"],
        item_number=form["item_number"],
        name=rules.NameForm(tuple(form["words"]), tuple(form["bare"])),
        series=form["series"],
        series_number=form["series_number"],
        flags=frozenset(form["flags"]),
        condition=form["condition"],
    )
    return Member.of(row, listing, None, fresh=False)


def link_by_year(members: Iterable[Member]) -> dict[int, Link]:
    """product id → its link: `link_all` over each year's listings, in product id order."""
    by_year: defaultdict[int, list[Member]] = defaultdict(list)
    for member in members:
        if member.listing is not None:
            by_year[member.listing.year].append(member)
    links: dict[int, Link] = {}
    for year_members in by_year.values():
        year_members.sort(key=lambda member: member.product_id)
        made = link_all([member.listing for member in year_members if member.listing])
        links.update(zip((member.product_id for member in year_members), made, strict=True))
    return links


_FORM_KEYS = {
    "ref",
    "year",
    "item_number",
    "words",
    "bare",
    "series",
    "series_number",
    "flags",
    "condition",
}


def _form(listing: Listing) -> dict[str, Any]:
    return {
        "ref": listing.ref,
        "year": listing.year,
        "item_number": listing.item_number,
        "words": list(listing.name.words),
        "bare": list(listing.name.bare),
        "series": listing.series,
        "series_number": listing.series_number,
        "flags": sorted(listing.flags),
        "condition": listing.condition,
    }


@dataclass
class Written:
    """What a write changed."""

    products: int = 0  # products whose link, condition, method, score or form changed
    linked: int = 0  # products linked for the first time
    relinked: int = 0  # products moved from one ornament to another (or to none)
    ornaments_written: int = 0  # ornaments created or changed
    ornaments_deleted: int = 0  # ornaments no product is linked to any more
    relinked_ids: list[int] = field(default_factory=list)  # product ids

    def __iadd__(self, other: Written) -> Written:
        self.products += other.products
        self.linked += other.linked
        self.relinked += other.relinked
        self.ornaments_written += other.ornaments_written
        self.ornaments_deleted += other.ornaments_deleted
        self.relinked_ids += other.relinked_ids
        return self


def _display_name(members: Sequence[Member]) -> str:
    """The name people see: the commonest shop name of its boxed offers with an item number,
    then the shortest, then the first in alphabetical order (never the order of arrival)."""
    counts = Counter(member.name for member in members)

    def rank(member: Member) -> tuple[bool, bool, int, int, str]:
        listing = member.listing
        assert listing is not None
        return (
            listing.condition != rules.BOXED,
            listing.item_number is None,
            -counts[member.name],
            len(member.name),
            member.name,
        )

    return min(members, key=rank).name


def _ornament_row(ornament: Ornament, members: Sequence[Member]) -> dict[str, Any]:
    searchers = {
        member.listing.name
        for member in members
        if member.listing is not None and member.listing.item_number is None
    }
    aliases = sorted(ornament.aliases, key=lambda alias: (alias.words, alias.bare))
    return {
        "key": ornament.key,
        "year": ornament.year,
        "item_number": ornament.item_number,
        "name": _display_name(members),
        "comparable_name": ornament.name,
        "series": ornament.series,
        "series_number": ornament.series_number,
        "series_numbers": sorted(ornament.series_numbers),
        "flags": sorted(ornament.flags),
        "aliases": [
            {"words": list(alias.words), "bare": list(alias.bare), "searcher": alias in searchers}
            for alias in aliases
        ],
    }


_ORNAMENT_FIELDS = (
    "year",
    "item_number",
    "name",
    "comparable_name",
    "series",
    "series_number",
    "series_numbers",
    "flags",
    "aliases",
)


def _recordset(table: sa.Table, names: Sequence[str], **types: Any) -> Any:
    """jsonb_to_recordset(:rows) with `names` typed as in `table` (or as `types` says)."""
    return (
        sa.func.jsonb_to_recordset(sa.cast(sa.bindparam("rows", type_=sa.Text), JSONB))
        .table_valued(*(sa.column(name, types.get(name) or table.c[name].type) for name in names))
        .render_derived(name="r", with_types=True)
    )


def _ornament_upsert() -> sa.Executable:
    """Create missing ornaments, update changed ones. ON CONFLICT: a concurrent linking of the
    same year cannot get in between (lock_years), but a key never makes two rows either way."""
    names = ("key", *_ORNAMENT_FIELDS)
    source = _recordset(ornaments, names)
    statement = insert(ornaments).from_select(names, sa.select(*(source.c[n] for n in names)))
    new = statement.excluded
    changed = sa.tuple_(*(ornaments.c[n] for n in _ORNAMENT_FIELDS)).is_distinct_from(
        sa.tuple_(*(new[n] for n in _ORNAMENT_FIELDS))
    )
    return statement.on_conflict_do_update(
        index_elements=[ornaments.c.key],
        set_={**{n: new[n] for n in _ORNAMENT_FIELDS}, "updated_at": sa.func.now()},
        where=changed,
    ).returning(ornaments.c.id)


_LINK_COLUMNS = ("ornament_id", "condition", "link_method", "link_score")


def _product_update() -> sa.Executable:
    """Set each product's link where it differs, and clear `link_pending`."""
    source = _recordset(products, ("id", *_LINK_COLUMNS))
    differs = sa.tuple_(*(products.c[n] for n in _LINK_COLUMNS)).is_distinct_from(
        sa.tuple_(*(source.c[n] for n in _LINK_COLUMNS))
    )
    return (
        sa.update(products)
        .where(products.c.id == source.c.id)
        .where(differs | products.c.link_pending)
        .values(**{n: source.c[n] for n in _LINK_COLUMNS}, link_pending=False)
        .returning(products.c.id)
    )


def _form_upsert() -> sa.Executable:
    """Each product's listing form, written where it differs."""
    source = _recordset(listing_forms, ("product_id", "form"))
    statement = insert(listing_forms).from_select(
        ("product_id", "form"), sa.select(source.c.product_id, source.c.form)
    )
    return statement.on_conflict_do_update(
        index_elements=[listing_forms.c.product_id],
        set_={"form": statement.excluded.form},
        where=listing_forms.c.form.is_distinct_from(statement.excluded.form),
    )


def _relinked_insert() -> sa.Executable:
    """`relinked` rows (the crawl run from the transaction's setting, as the history trigger
    does), each announced like the trigger's rows."""
    source = _recordset(
        product_changes, ("product_id", "old_value", "new_value"), product_id=sa.BigInteger
    )
    run_id = sa.cast(
        sa.func.nullif(sa.func.current_setting("christmas.crawl_run_id", True), ""), sa.BigInteger
    )
    inserted = (
        insert(product_changes)
        .from_select(
            ("product_id", "kind", "field", "old_value", "new_value", "crawl_run_id"),
            sa.select(
                source.c.product_id,
                sa.literal(RELINKED),
                sa.literal("ornament_id"),
                source.c.old_value,
                source.c.new_value,
                run_id,
            ),
        )
        .returning(product_changes.c.id, product_changes.c.product_id)
        .cte("inserted")
    )
    payload = sa.func.json_build_object(
        "id", inserted.c.id, "product_id", inserted.c.product_id, "kind", RELINKED
    )
    return sa.select(sa.func.pg_notify("product_changes", sa.cast(payload, sa.Text)))


_UPSERT_ORNAMENTS = _ornament_upsert()
_UPDATE_PRODUCTS = _product_update()
_UPSERT_FORMS = _form_upsert()
_INSERT_RELINKED = _relinked_insert()
_DELETE_ORPHANS = (
    sa.delete(ornaments)
    .where(ornaments.c.id.in_(sa.bindparam("ids", expanding=True)))
    .where(~sa.exists().where(products.c.ornament_id == ornaments.c.id))
)


def _as_json(rows: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    return {"rows": json.dumps(list(rows), ensure_ascii=False)}


def write(
    connection: Connection,
    members: Sequence[Member],
    links: Mapping[int, Link],
    maybe_orphans: Iterable[int] = (),
) -> Written:
    """Write the links of `members` (product id → Link; members without one are unlinked),
    record a `relinked` row for each product that leaves an ornament, and delete the ornaments
    among `maybe_orphans` (and those the members leave) that no product is linked to any more.

    The caller holds the lock of every year involved (lock_years)."""
    written = Written()
    by_key: defaultdict[str, list[Member]] = defaultdict(list)
    for member in members:
        if member.product_id in links:
            by_key[links[member.product_id].ornament.key].append(member)
    rows = [
        _ornament_row(links[group[0].product_id].ornament, group)
        for _, group in sorted(by_key.items())
    ]
    ids: dict[str, int] = {}
    if rows:
        written.ornaments_written = len(connection.execute(_UPSERT_ORNAMENTS, _as_json(rows)).all())
        found = connection.execute(
            sa.select(ornaments.c.key, ornaments.c.id).where(ornaments.c.key.in_(list(by_key)))
        )
        ids = {key: ornament_id for key, ornament_id in found}
    updates, forms, relinked = [], [], []
    for member in sorted(members, key=lambda member: member.product_id):
        made = links.get(member.product_id)
        listing = member.listing
        ornament_id = ids[made.ornament.key] if made else None
        condition = listing.condition if listing else rules.condition(member.name, member.sku)
        link = (
            ornament_id,
            condition,
            made.method if made else None,
            round(made.score, 1) if made else None,
        )
        # A product read afresh may be link_pending: its row is written even when unchanged.
        if member.fresh or link != member.link:
            updates.append({"id": member.product_id, **dict(zip(_LINK_COLUMNS, link, strict=True))})
        if member.fresh:
            form = _form(listing) if listing else {"problem": member.problem}
            if form != member.form:
                forms.append({"product_id": member.product_id, "form": form})
        if member.ornament_id is None and ornament_id is not None:
            written.linked += 1
        elif member.ornament_id is not None and member.ornament_id != ornament_id:
            relinked.append(
                {
                    "product_id": member.product_id,
                    "old_value": str(member.ornament_id),
                    "new_value": None if ornament_id is None else str(ornament_id),
                }
            )
            written.relinked_ids.append(member.product_id)
    if updates:
        written.products = len(connection.execute(_UPDATE_PRODUCTS, _as_json(updates)).all())
    if forms:
        connection.execute(_UPSERT_FORMS, _as_json(forms))
    if relinked:
        connection.execute(_INSERT_RELINKED, _as_json(relinked)).all()
        written.relinked = len(relinked)
    left = {member.ornament_id for member in members if member.ornament_id is not None}
    candidates = sorted((left | set(maybe_orphans)) - set(ids.values()))
    if candidates:
        deleted = connection.execute(_DELETE_ORPHANS, {"ids": candidates})
        written.ornaments_deleted = deleted.rowcount
    return written
