"""Turning fixtures and ornaments into one shop's `Product`s: ids, URLs, prices, stock texts.

Each shop has its own conventions (URL slugs, image paths, availability wording, whether the
page states the artist, how it names an ornament); they all live here so the rendering modules
only render.

Each shop names the generated ornaments in its own style (`shop_name`), as the real shops do:
HooH writes "{year} {title}" and "… 5th in Series", sometimes "{year} Hallmark …"; OS writes
"#5", "&" for "and", "Mini" for "Miniature" and "(No Box)", without trademark signs; HO
writes "5th in {Series} Series" and sometimes "… Keepsake Ornament". Some listings show no SKU
(OS more often) and HO prefixes a third of its 2016+ SKUs with the retail price. The true
ornament of every listing is `Product.ornament`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from decimal import Decimal

from . import names
from .models import (
    AVAILABLE,
    HO,
    HOOH,
    MINIATURE,
    OS,
    PREORDER,
    UNAVAILABLE,
    Category,
    FillBlock,
    FixtureSpec,
    Product,
    clean_sku,
)
from .ornaments import Ornament, affine_permutation, fixture_item_number, rng

AVAILABILITY_TEXTS: dict[str, dict[str, str]] = {
    HOOH: {
        AVAILABLE: "In Stock - Ships Next Business Day",
        UNAVAILABLE: "Out of Stock",
        PREORDER: "Pre-Order - Expected to ship October 2025",
    },
    OS: {
        AVAILABLE: "In Stock - Usually ships in 1 business day",
        UNAVAILABLE: "Sold Out",
        PREORDER: "Coming Soon - Pre-Order",
    },
    HO: {AVAILABLE: "In Stock", UNAVAILABLE: "Out of Stock", PREORDER: "Pre-Order"},
}
# Other wordings the generated products use now and then.
_ALTERNATE_TEXTS: dict[str, dict[str, str]] = {
    HOOH: {UNAVAILABLE: "Sold Out - Join the Waiting List"},
    OS: {AVAILABLE: "New Release - In Stock", UNAVAILABLE: "Out of stock"},
    HO: {},
}
_STATES_ARTIST = {HOOH: False, OS: True, HO: True}
# (first id, spacing) of product ids: ids are first + spacing*p + jitter, p a permutation.
_ID_SPACE = {HOOH: (12000, 2), OS: (1000, 2), HO: (3000, 3)}


@dataclass(frozen=True)
class IdMap:
    """A seeded bijection between catalog indices and non-sequential shop product ids."""

    size: int
    first: int
    spacing: int
    a: int
    b: int
    a_inverse: int
    salt: int

    @classmethod
    def create(cls, seed: int, vendor: str, size: int) -> IdMap:
        first, spacing = _ID_SPACE[vendor]
        generator = rng(seed, vendor, "ids")
        a, b = affine_permutation(size, generator)
        a_inverse = pow(a, -1, size) if size > 1 else 1
        return cls(size, first, spacing, a, b, a_inverse, generator.randrange(1 << 16))

    def _jitter(self, position: int) -> int:
        return ((position * 2654435761) ^ self.salt) % self.spacing

    def to_id(self, index: int) -> int:
        position = (self.a * index + self.b) % self.size
        return self.first + position * self.spacing + self._jitter(position)

    def to_index(self, product_id: int) -> int | None:
        position, jitter = divmod(product_id - self.first, self.spacing)
        if not 0 <= position < self.size or jitter != self._jitter(position):
            return None
        return ((position - self.b) * self.a_inverse) % self.size


def product_path(vendor: str, name: str, sku: str | None, product_id: int) -> str:
    if vendor == HOOH:
        suffix = f"-{sku}" if sku else ""
        return f"/{names.title_slug(name)}{suffix}_p_{product_id}.html"
    if vendor == HO:
        return f"/{names.title_slug(name)}_p_{product_id}.html"
    return f"/{names.lower_slug(name)}/"


def _os_path(slug: str) -> str:
    return f"/{slug}" if slug.endswith(".html") else f"/{slug}/"


def image_path(vendor: str, name: str, sku: str | None, product_id: int) -> str:
    stem = sku or names.title_slug(name)
    if vendor == HOOH:
        return f"/assets/images/{stem}.jpg"
    if vendor == HO:
        return f"/assets/images/hallmark-{names.title_slug(name)}-{stem}.jpg"
    folder = 1000 + (product_id * 7) % 9000
    return f"/images/stencil/1280x1280/products/{product_id}/{folder}/{stem}__{product_id}.jpg"


def description(series: str | None, number: int | None, kind: str, no_box: bool) -> str:
    parts = ["No box."] if no_box else []
    if series and number:
        parts.append(f"{names.ordinal(number)} in the {series} series.")
    parts.append("Miniature Keepsake Ornament." if kind == MINIATURE else "Keepsake Ornament.")
    return " ".join(parts)


def from_fixture(
    vendor: str, index: int, product_id: int, spec: FixtureSpec, category: Category
) -> Product:
    year = category.year
    assert year is not None, category.key
    sku = clean_sku(spec.sku)
    path = _os_path(spec.slug) if vendor == OS and spec.slug else None
    path = path or product_path(vendor, spec.name, sku, product_id)
    listed = _os_path(spec.listed_slug) if spec.listed_slug else path
    no_box = spec.name.endswith(" NB")
    # Hand-written products are one ornament per year (of the name) and item number.
    number = fixture_item_number(spec.sku)
    truth = f"{spec.name[:4]}:{number}" if number else f"{vendor}:{product_id}"
    return Product(
        vendor=vendor,
        index=index,
        product_id=product_id,
        category=spec.category,
        year=year,
        kind=spec.kind,
        raw_name=spec.name,
        raw_sku=spec.sku,
        price=Decimal(spec.price) if spec.price else None,
        regular_price=Decimal(spec.regular_price) if spec.regular_price else None,
        msrp=Decimal(spec.msrp) if spec.msrp else None,
        availability=spec.availability,
        availability_text=spec.availability_text or AVAILABILITY_TEXTS[vendor][spec.availability],
        series=spec.series,
        series_number=spec.series_number,
        artist=spec.artist if _STATES_ARTIST[vendor] else None,
        description=spec.description
        or description(spec.series, spec.series_number, spec.kind, no_box),
        path=path,
        listed_path=listed,
        image_path=image_path(vendor, spec.name, sku, product_id),
        status=spec.status,
        expect=spec.expect,
        note=spec.note,
        quirks=spec.quirks,
        edge_cases=spec.edge_cases,
        ornament=truth,
    )


def _ending(vendor: str, generator: random.Random) -> Decimal:
    if vendor == OS and generator.random() < 0.5:
        return Decimal("0.99")
    return Decimal("0.95")


def _availability(vendor: str, year: int, generator: random.Random) -> tuple[str, str]:
    roll = generator.random()
    if year >= names.PREORDER_YEAR:
        state = PREORDER if roll < 0.35 else AVAILABLE if roll < 0.9 else UNAVAILABLE
    elif year >= names.PREORDER_YEAR - 2:
        state = AVAILABLE if roll < 0.8 else UNAVAILABLE
    else:
        state = AVAILABLE if roll < 0.55 else UNAVAILABLE
    alternate = _ALTERNATE_TEXTS[vendor].get(state)
    if alternate and generator.random() < 0.3:
        return state, alternate
    return state, AVAILABILITY_TEXTS[vendor][state]


_MARKS = str.maketrans("", "", "™®©")
_NO_SKU = {HOOH: 0.03, OS: 0.12, HO: 0.04}  # listings that show no SKU (E8)


def shop_name(vendor: str, ornament: Ornament, no_box: bool, style: random.Random) -> str:
    """The ornament's name as `vendor` writes it (module doc)."""
    year, series, number = ornament.year, ornament.series, ornament.series_number
    if vendor == OS:
        name = f"{year} {series} #{number}" if series else ornament.name
        if series and ornament.kind == MINIATURE and "Miniature" not in series:
            name += " Miniature"
        name = name.replace(" and ", " & ").replace("Miniature", "Mini").translate(_MARKS)
        return " ".join(name.split()) + (" (No Box)" if no_box else "")
    if vendor == HO and series and ornament.name_in_series_form:
        name = ornament.name.replace(" in Series", f" in {series} Series")
    elif vendor == HO and style.random() < 0.3:
        name = f"{ornament.name} Keepsake Ornament"
    elif vendor == HOOH and style.random() < 0.15:
        name = ornament.name.replace(" ", " Hallmark ", 1)
    else:
        name = ornament.name
    return name + (" NB" if no_box else "")


def from_ornament(
    vendor: str, seed: int, index: int, product_id: int, block: FillBlock, ornament: Ornament
) -> Product:
    generator = rng(seed, vendor, "listing", index)
    style = rng(seed, vendor, "words", index)  # its own draws: prices stay as they were
    no_box = ornament.year < 2000 and generator.random() < 0.08
    name = shop_name(vendor, ornament, no_box, style)
    sku: str | None = ornament.sku + ("NB" if no_box else "")
    if vendor == HO and ornament.year >= 2016 and generator.random() < 0.3:
        sku = f"{int(ornament.retail_price * 100)}{sku}"
    if style.random() < _NO_SKU[vendor]:
        sku = None
    factor = generator.uniform(0.9, 1.2) * (0.85 if no_box else 1.0)
    price = Decimal(math.floor(float(ornament.market_price) * factor)) + _ending(vendor, generator)
    regular_price = msrp = None
    roll = generator.random()
    if roll < 0.12:
        regular_price = price
        price = Decimal(math.floor(float(price) * 0.8)) + Decimal("0.95")
    elif roll < 0.18 and vendor != HO:
        msrp = price + Decimal(10)
    availability, text = _availability(vendor, ornament.year, generator)
    return Product(
        vendor=vendor,
        index=index,
        product_id=product_id,
        category=block.category,
        year=block.year,
        kind=ornament.kind,
        raw_name=name,
        raw_sku=sku,
        price=price,
        regular_price=regular_price,
        msrp=msrp,
        availability=availability,
        availability_text=text,
        series=ornament.series,
        series_number=ornament.series_number,
        artist=ornament.artist if _STATES_ARTIST[vendor] else None,
        description=description(ornament.series, ornament.series_number, ornament.kind, no_box),
        path=product_path(vendor, name, sku, product_id),
        listed_path=product_path(vendor, name, sku, product_id),
        image_path=image_path(vendor, name, sku, product_id),
        retail_price=ornament.retail_price,
        ornament=ornament.truth,
    )
