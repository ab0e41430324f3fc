"""The category tree of each shop and where every product index sits in it.

`build_layout(vendor, seed, size)` decides, without generating any product, which categories a
shop has (URL, catid, year, kind, parent), how many products each holds, and which catalog
indices are hand-written fixtures or generated ornaments. Listings are runs of indices, so a
category of 500 products costs a few integers, and product i is generated only when asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import names
from .fixtures import FIXTURES
from .models import (
    HO,
    HOOH,
    MINIATURE,
    OS,
    REGULAR,
    Category,
    FillBlock,
    FixtureSpec,
    PageCase,
)
from .ornaments import rng, series_slots

SMALL_SIZE = 60
LARGE_SIZE = 20_000
FULL_YEARS_FROM = 500  # catalogs at least this big list every year 1973–2025
PAGING_MINIMUM = 30  # products in each shop's paging category: 2+ pages at 24, 3 at 12

# HooH years shown as sub-category tiles; True = with a "View All" sub-category.
HOOH_SEGMENTED = {2019: True, 2020: False, 2021: True}
HOOH_SMALL_YEARS = (1973, 1975, 1977, 1994, 1998, 2005, 2018, 2019, 2020, 2025)
HOOH_EMPTY_YEAR = 1977
OS_SMALL_YEARS = (1975, 1994, 1998, 2005, 2018, 2019, 2025)
OS_SMALL_MINIATURE_YEARS = (1994, 2019)
OS_EMPTY_YEAR = 1975
HO_SMALL_YEARS = (1973, 1974, 1975, 1994, 1995, 2019, 2023, 2024, 2025)
HO_EMPTY_YEAR = 1974
HO_INDEX_CATID = 200
HO_MINIATURE_LIST_YEAR = 1994


@dataclass
class _Plan:
    """A category before product indices are known."""

    key: str
    name: str
    path: str
    role: str
    catid: int
    year: int | None = None
    kind: str | None = None
    parent: str | None = None
    children: list[str] = field(default_factory=list)
    quirks: frozenset[str] = frozenset()


@dataclass(frozen=True)
class _FillGroup:
    """Generated ornaments of one (year, kind), split over one or two categories."""

    year: int
    kind: str
    category: str
    series_category: str | None = None  # receives the series slots when set

    @property
    def weight(self) -> float:
        """Later years have more products; miniatures are a smaller line."""
        weight = 1.0 + (self.year - names.FIRST_YEAR) / 12
        return weight * 0.3 if self.kind == MINIATURE else weight


@dataclass(frozen=True)
class ShopLayout:
    vendor: str
    seed: int
    size: int
    categories: dict[str, Category]
    index_key: str
    fixtures_at: dict[int, FixtureSpec]
    fill_blocks: tuple[FillBlock, ...]
    page_cases: tuple[PageCase, ...]


class _Planner:
    """Collects one shop's categories, fill groups and page-level cases."""

    def __init__(
        self, seed: int, vendor: str, catids: range, taken: frozenset[int] = frozenset()
    ) -> None:
        self._generator = rng(seed, vendor, "catids")
        self._catids, self._taken = catids, set(taken)
        self.plans: dict[str, _Plan] = {}
        self.groups: list[_FillGroup] = []
        self.cases: list[PageCase] = []
        self.paging: tuple[str, ...] = ()

    def catid(self) -> int:
        """A fresh category id, drawn at random: real shops' ids are not sequential."""
        while True:
            catid = self._generator.choice(self._catids)
            if catid not in self._taken:
                self._taken.add(catid)
                return catid

    def add(self, key: str, name: str, role: str, path: str, catid: int, **more: Any) -> _Plan:
        plan = _Plan(key, name, path, role, catid, **more)
        self.plans[key] = plan
        if plan.parent and plan.parent in self.plans and role in ("segment", "view_all"):
            self.plans[plan.parent].children.append(key)
        return plan

    def add_3dcart(self, key: str, name: str, role: str, slug: str, **more: Any) -> _Plan:
        """A category at the 3dcart URL /{slug}_c_{catid}.html."""
        catid = self.catid()
        return self.add(key, name, role, f"/{slug}_c_{catid}.html", catid, **more)

    def fill(self, year: int, kind: str, category: str, series_category: str | None = None) -> None:
        self.groups.append(_FillGroup(year, kind, category, series_category))

    def case(self, edge_case: str, path: str, note: str) -> None:
        self.cases.append(PageCase(edge_case, path, note))

    def path(self, key: str) -> str:
        return self.plans[key].path


_THROTTLE_NOTE = "429/503 with Retry-After via --throttle-every/--throttle-burst or the API"


def _years(full: bool, small: tuple[int, ...]) -> list[int]:
    return list(range(names.FIRST_YEAR, names.LAST_YEAR + 1)) if full else list(small)


# --- HooH -------------------------------------------------------------------------------------


def _plan_hooh(seed: int, full: bool) -> _Planner:
    shop = _Planner(seed, HOOH, range(900, 1900))
    index = shop.add(
        "index",
        "Hallmark Ornaments By Year",
        "index",
        "/keepsake-hallmark-ornaments-by-year.html",
        shop.catid(),
    )
    for year in sorted(_years(full, HOOH_SMALL_YEARS), reverse=True):
        key = f"y{year}"
        shop.add_3dcart(
            key,
            f"{year} Hallmark Ornaments",
            "year",
            f"{year}-Hallmark-Ornaments",
            year=year,
            parent="index",
        )
        if year == HOOH_EMPTY_YEAR:
            continue
        if year not in HOOH_SEGMENTED:
            shop.fill(year, REGULAR, key)
            if year >= names.FIRST_MINIATURE_YEAR:
                shop.fill(year, MINIATURE, key)
            continue
        if HOOH_SEGMENTED[year]:
            shop.add_3dcart(
                f"{key}-all",
                f"{year} Hallmark Ornaments - View All",
                "view_all",
                f"{year}-Hallmark-Ornaments-View-All",
                year=year,
                parent=key,
                quirks=frozenset({"next_self"}) if year == 2019 else frozenset(),
            )
        for suffix, name, slug, kind in (
            ("series", "Series Ornaments", "Keepsake-Series-Ornaments", REGULAR),
            ("mini", "Miniature Ornaments", "Miniature-Ornaments", MINIATURE),
            ("other", "Keepsake Ornaments", "Keepsake-Ornaments", REGULAR),
        ):
            shop.add_3dcart(
                f"{key}-{suffix}",
                f"{year} {name}",
                "segment",
                f"{year}-{slug}",
                year=year,
                kind=kind,
                parent=key,
            )
        shop.fill(year, REGULAR, f"{key}-other", series_category=f"{key}-series")
        shop.fill(year, MINIATURE, f"{key}-mini")
    shop.add_3dcart(
        "storage", "Ornament Storage Boxes", "other", "Ornament-Storage-Boxes", parent="index"
    )
    shop.paging = ("y2019",)
    view_all = shop.path("y2019-all")
    shop.case(
        "E13",
        shop.path("y2019"),
        "2019 products appear in the featured block, a segment and View All; "
        ".paging is rendered twice on every listing",
    )
    shop.case(
        "E14",
        view_all.replace(".html", "-2-3.html"),
        "the last page of 2019 View All has a Next link pointing to itself; other "
        "listings drop Next (and View All) on their last page",
    )
    shop.case(
        "E15",
        view_all.replace(".html", "-99-3.html"),
        "a page past the end answers page 1 (3dcart)",
    )
    shop.case(
        "E16", shop.path(f"y{HOOH_EMPTY_YEAR}"), f"{HOOH_EMPTY_YEAR}: empty grid, product count 0"
    )
    shop.case(
        "E17",
        shop.path("y2019"),
        "segmented year: sub-category tiles, View All first, a few featured items",
    )
    shop.case(
        "E17",
        shop.path("y2020"),
        "segmented year without a View All sub-category: recurse into sub-categories",
    )
    shop.case(
        "E18", index.path, "the year index has a tile without a year (Ornament Storage Boxes)"
    )
    shop.case(
        "E20",
        shop.path("y2018"),
        "grid images are relative thumbnail.asp?file=...&amp;maxx=... URLs",
    )
    shop.case(
        "E21",
        "/product.asp?itemid={catalogid}",
        "dynamic alias: 301 to the product's _p_ URL (also view_category.asp?cat=)",
    )
    shop.case("E22", "/Deleted-Ornament_p_1.html", "unknown product id: 404 page")
    shop.case("E26", "/__replica__/throttle", _THROTTLE_NOTE)
    return shop


# --- OS ---------------------------------------------------------------------------------------


def _plan_os(seed: int, full: bool) -> _Planner:
    shop = _Planner(seed, OS, range(20, 400))
    index = shop.add(
        "index",
        "Hallmark Ornaments By Year",
        "index",
        "/hallmark-ornaments-by-year.html",
        shop.catid(),
    )
    for year in sorted(_years(full, OS_SMALL_YEARS), reverse=True):
        path = f"/{year}-hallmark-ornaments-g1-y{year % 100:02d}.html"
        shop.add(
            f"g1-{year}",
            f"{year} Hallmark Ornaments",
            "year",
            path,
            shop.catid(),
            year=year,
            kind=REGULAR,
            parent="index",
        )
        if year != OS_EMPTY_YEAR:
            shop.fill(year, REGULAR, f"g1-{year}")
    mini_years = [
        y for y in _years(full, OS_SMALL_MINIATURE_YEARS) if y >= names.FIRST_MINIATURE_YEAR
    ]
    for year in sorted(mini_years, reverse=True):
        path = f"/{year}-Miniature-Ornaments-g2-y{year % 100:02d}.html"
        shop.add(
            f"g2-{year}",
            f"{year} Miniature Ornaments",
            "year",
            path,
            shop.catid(),
            year=year,
            kind=MINIATURE,
            parent="index",
        )
        shop.fill(year, MINIATURE, f"g2-{year}")
    for key, name, slug in (
        ("series-frosty-friends", "Frosty Friends", "Frosty-Friends"),
        ("series-star-wars", "Star Wars", "star-wars"),
    ):
        catid = shop.catid()
        shop.add(key, name, "series", f"/{slug}-s{catid}.html", catid)
    shop.add("brand", "Hallmark", "brand", "/brands/Hallmark.html", shop.catid())
    shop.paging = ("g1-2019",)
    year_2019 = shop.path("g1-2019")
    shop.case("E14", year_2019 + "?page=3", "last page: no .pagination-item--next")
    shop.case(
        "E15",
        year_2019 + "?page=99",
        "page past the end: 'There are no products listed under this category.'",
    )
    shop.case(
        "E16",
        shop.path(f"g1-{OS_EMPTY_YEAR}"),
        f"{OS_EMPTY_YEAR}: 'There are no products listed under this category.'",
    )
    shop.case(
        "E18",
        index.path,
        "Shop By Price navList-items on the year index; 1994 and 2019 have both a g1 and "
        "a g2 (miniature) list",
    )
    shop.case("E20", index.path, "&amp; inside Shop By Price hrefs and sitemap <loc>s")
    shop.case(
        "E21",
        "/products.php?productId={product_id}",
        "legacy alias: 301 to the product URL; /{slug} without slash: 301 to /{slug}/",
    )
    shop.case("E22", "/no-such-ornament/", "404 Error - Page not found, status 404")
    shop.case(
        "E25", year_2019, 'every card has empty MSRP/Was sections with style="display: none;"'
    )
    shop.case("E26", "/__replica__/throttle", _THROTTLE_NOTE)
    return shop


# --- HO ---------------------------------------------------------------------------------------


def _plan_ho(seed: int, full: bool) -> _Planner:
    shop = _Planner(seed, HO, range(250, 520), frozenset({HO_INDEX_CATID}))
    index = shop.add(
        "index",
        "Hallmark Ornaments By Year",
        "index",
        f"/Hallmark-Ornaments-By-Year_c_{HO_INDEX_CATID}.html",
        HO_INDEX_CATID,
    )
    for year in sorted(_years(full, HO_SMALL_YEARS)):
        shop.add_3dcart(f"y{year}", str(year), "year", str(year), year=year, parent="index")
        if year == HO_EMPTY_YEAR:
            continue
        shop.fill(year, REGULAR, f"y{year}")
        if year >= names.FIRST_MINIATURE_YEAR and year != HO_MINIATURE_LIST_YEAR:
            shop.fill(year, MINIATURE, f"y{year}")
    mini = HO_MINIATURE_LIST_YEAR
    shop.add_3dcart(
        f"m{mini}",
        f"{mini} Miniature Ornaments",
        "year",
        f"{mini}-Miniature-Ornaments",
        year=mini,
        kind=MINIATURE,
        parent="index",
    )
    shop.fill(mini, MINIATURE, f"m{mini}")
    shop.add_3dcart(
        "club", "Keepsake Ornament Club", "other", "Keepsake-Ornament-Club", parent="index"
    )
    shop.add_3dcart(
        "series-frosty-friends",
        "Frosty Friends Series",
        "series",
        "Frosty-Friends-Series",
        parent="index",
    )
    shop.paging = ("y2019",)
    year_2019 = shop.path("y2019")
    shop.case(
        "E13",
        shop.path("series-frosty-friends"),
        "a series category listing products that are also in their year",
    )
    shop.case("E14", year_2019.replace(".html", "-2-3.html"), "last page: no Next and no View All")
    shop.case(
        "E15",
        year_2019.replace(".html", "-99-3.html"),
        "a page past the end answers page 1 (3dcart)",
    )
    shop.case(
        "E16",
        shop.path(f"y{HO_EMPTY_YEAR}"),
        f"{HO_EMPTY_YEAR}: product count 0, the script renders an empty grid",
    )
    shop.case(
        "E18",
        index.path,
        "a.subcat links without a year (club, series) and a 1994 miniature list next to 1994",
    )
    shop.case("E20", year_2019, "grid thumbnails are relative thumbnail.asp URLs")
    shop.case(
        "E21",
        "/product.asp?itemid={catalogid}",
        "dynamic alias: 301 to the product's _p_ URL (also view_category.asp?cat=)",
    )
    shop.case("E22", "/Deleted-Ornament_p_1.html", "unknown product id: 404 page")
    shop.case("E26", "/__replica__/throttle", _THROTTLE_NOTE)
    return shop


_PLANNERS: dict[str, Callable[[int, bool], _Planner]] = {
    HOOH: _plan_hooh,
    OS: _plan_os,
    HO: _plan_ho,
}


# --- shared -----------------------------------------------------------------------------------


def _apportion(total: int, weights: list[float]) -> list[int]:
    """Split `total` proportionally to `weights` (largest remainder, ties by position)."""
    if total <= 0 or not weights:
        return [0] * len(weights)
    scale = sum(weights)
    quotas = [total * weight / scale for weight in weights]
    counts = [int(quota) for quota in quotas]
    order = sorted(range(len(weights)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _leaf_keys(plans: list[_Plan]) -> list[str]:
    """Categories that own products, in listing order (parents and aggregates excluded)."""
    return [plan.key for plan in plans if plan.role in ("year", "segment") and not plan.children]


def build_layout(vendor: str, seed: int, size: int) -> ShopLayout:
    """Lay out `size` products of `vendor`'s shop for `seed`."""
    fixtures = FIXTURES[vendor]
    planner = _PLANNERS[vendor](seed, size >= FULL_YEARS_FROM)
    plans, groups, paging_keys = list(planner.plans.values()), planner.groups, planner.paging
    plan_by_key = planner.plans
    leaves = _leaf_keys(plans)
    for spec in fixtures:
        if spec.category not in leaves:
            raise ValueError(f"fixture {spec.name!r} names an unknown category {spec.category!r}")

    paging_cats = set(paging_keys) | {
        child for key in paging_keys for child in plan_by_key[key].children
    }
    paging_groups = [
        i
        for i, group in enumerate(groups)
        if group.category in paging_cats or group.series_category in paging_cats
    ]
    if not paging_groups:
        raise ValueError(f"{vendor}: no generated products can fill {paging_keys}")
    in_paging = sum(spec.category in paging_cats for spec in fixtures)
    needed = max(0, PAGING_MINIMUM - in_paging)
    spare = size - len(fixtures) - needed
    if spare < 0:
        raise ValueError(
            f"size {size} is too small for {vendor}: it needs at least "
            f"{len(fixtures) + needed} products (its fixtures and one paged category)"
        )
    counts = _apportion(needed, [groups[i].weight for i in paging_groups])
    minimums = dict.fromkeys(range(len(groups)), 0)
    for i, count in zip(paging_groups, counts, strict=True):
        minimums[i] = count
    extra = _apportion(spare, [group.weight for group in groups])
    group_counts = [minimums[i] + extra[i] for i in range(len(groups))]

    # Split each group into (category, kind, slot_start, count) runs.
    runs: dict[str, list[tuple[int, str, int, int]]] = {key: [] for key in leaves}
    for group, count in zip(groups, group_counts, strict=True):
        if not count:
            continue
        if group.series_category:
            in_series = min(count, len(series_slots(seed, group.year, group.kind)))
            if in_series:
                runs[group.series_category].append((group.year, group.kind, 0, in_series))
            if count > in_series:
                runs[group.category].append((group.year, group.kind, in_series, count - in_series))
        else:
            runs[group.category].append((group.year, group.kind, 0, count))

    fixtures_at: dict[int, FixtureSpec] = {}
    fill_blocks: list[FillBlock] = []
    members: dict[str, list[range]] = {key: [] for key in plan_by_key}
    next_index = 0
    for key in leaves:
        own = [spec for spec in fixtures if spec.category == key]
        if own:
            members[key].append(range(next_index, next_index + len(own)))
            for spec in own:
                fixtures_at[next_index] = spec
                next_index += 1
        for year, kind, slot_start, count in runs[key]:
            fill_blocks.append(FillBlock(next_index, count, key, year, kind, slot_start))
            members[key].append(range(next_index, next_index + count))
            next_index += count
    assert next_index == size, (next_index, size)

    categories = _finish_categories(
        seed, plans, members, fixtures_at, fill_blocks, leaves, plan_by_key
    )
    return ShopLayout(
        vendor=vendor,
        seed=seed,
        size=size,
        categories=categories,
        index_key="index",
        fixtures_at=fixtures_at,
        fill_blocks=tuple(fill_blocks),
        page_cases=tuple(planner.cases),
    )


def _finish_categories(
    seed: int,
    plans: list[_Plan],
    members: dict[str, list[range]],
    fixtures_at: dict[int, FixtureSpec],
    fill_blocks: list[FillBlock],
    leaves: list[str],
    plan_by_key: dict[str, _Plan],
) -> dict[str, Category]:
    """Aggregate listings (parents, view-all, series, brand) and featured blocks."""
    runs: dict[str, list[range] | list[tuple[int, ...]]] = dict(members)
    for plan in plans:
        if plan.role == "view_all":
            siblings = [key for key in plan_by_key[plan.parent or ""].children if key != plan.key]
            runs[plan.key] = [run for key in siblings for run in members[key]]
        elif plan.role == "brand":
            runs[plan.key] = [run for key in leaves for run in members[key]]
        elif plan.role == "series":
            runs[plan.key] = [_series_members(seed, plan, fixtures_at, fill_blocks)]
    categories: dict[str, Category] = {}
    for plan in plans:
        featured: tuple[int, ...] = ()
        if plan.role == "year" and plan.children:
            firsts = [
                members[key][0][0]
                for key in plan.children
                if members[key] and plan_by_key[key].role == "segment"
            ]
            flagged = [
                index
                for key in plan.children
                for run in members[key]
                for index in run
                if index in fixtures_at and fixtures_at[index].featured
            ]
            featured = tuple(dict.fromkeys(flagged + firsts))[:3]
        categories[plan.key] = Category(
            key=plan.key,
            catid=plan.catid,
            name=plan.name,
            path=plan.path,
            role=plan.role,
            year=plan.year,
            kind=plan.kind,
            parent=plan.parent,
            children=tuple(plan.children),
            members=tuple(run for run in runs[plan.key] if len(run)),
            featured=featured,
            quirks=plan.quirks,
        )
    return categories


def _series_members(
    seed: int, plan: _Plan, fixtures_at: dict[int, FixtureSpec], fill_blocks: list[FillBlock]
) -> tuple[int, ...]:
    """Indices of the products a series category lists: tagged fixtures and series slots."""
    found = [index for index, spec in fixtures_at.items() if plan.key in spec.also_in]
    if plan.key == "series-frosty-friends":
        for block in fill_blocks:
            slots = series_slots(seed, block.year, block.kind)
            for slot, series in enumerate(slots):
                if series.name == "Frosty Friends" and (
                    block.slot_start <= slot < block.slot_start + block.count
                ):
                    found.append(block.start + slot - block.slot_start)
    return tuple(sorted(found))
