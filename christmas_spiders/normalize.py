"""Pure normalization of what the shops show: prices, availability, SKUs, names and series.

No I/O here. Parsers and the normalize pipeline both use these functions, so a value is
normalized the same way wherever it comes from.
"""

from __future__ import annotations

import html
import re
import unicodedata
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from price_parser import Price

from christmas_spiders.domain import AVAILABILITY, AVAILABLE, PREORDER, UNAVAILABLE

_CENT = Decimal("0.01")

# Text rules, checked in this order; word boundaries and negations keep "Currently not in
# stock" from reading as in stock (vendor-sites.md E7).
_PREORDER_TEXT = re.compile(r"\bpre[\s-]?(order|sale)", re.IGNORECASE)
_UNAVAILABLE_TEXT = re.compile(
    r"\b(out\s+of\s+stock|sold\s+out|not\s+(currently\s+)?(in\s+stock|available)"
    r"|unavailable|no\s+longer\s+available|discontinued|waiting\s+list|back[\s-]?order)",
    re.IGNORECASE,
)
_AVAILABLE_TEXT = re.compile(
    r"\b(in\s+stock|available|ships|add\s+to\s+cart|buy\s+now)\b", re.IGNORECASE
)
# schema.org ItemAvailability values (https://schema.org/ItemAvailability), by local name.
_SCHEMA_AVAILABILITY = {
    "instock": AVAILABLE,
    "instoreonly": AVAILABLE,
    "onlineonly": AVAILABLE,
    "limitedavailability": AVAILABLE,
    "preorder": PREORDER,
    "presale": PREORDER,
    "outofstock": UNAVAILABLE,
    "soldout": UNAVAILABLE,
    "discontinued": UNAVAILABLE,
    "backorder": UNAVAILABLE,
}

_YEAR = re.compile(r"^\s*((?:19|20)\d\d)\b")
_ORDINAL = r"(?P<number>\d{1,3})\s*(?:st|nd|rd|th)"
# "2019 Frosty Friends 40th in Series", "1995 Frosty Friends 16th in Frosty Friends Series"
_SERIES_IN_NAME = re.compile(
    rf"^\s*(?:19|20)\d\d\s+(?P<series>.+?)\s+{_ORDINAL}\s+in\s+(?:the\s+)?(?:.+?\s+)?series\b",
    re.IGNORECASE,
)
# "5th in the Nostalgic Rocking Horse series"
_SERIES_IN_TEXT = re.compile(
    rf"\b{_ORDINAL}\s+in\s+the\s+(?P<series>[^.;:,]+?)\s+series\b", re.IGNORECASE
)


def clean_text(value: Any) -> str | None:
    """HTML-unescape, Unicode NFC, collapse whitespace (incl. &nbsp;); empty → None."""
    if value is None:
        return None
    text = unicodedata.normalize("NFC", html.unescape(str(value)))
    text = " ".join(text.split())
    return text or None


def parse_price(value: Any) -> Decimal | None:
    """A price shown by a shop as Decimal with cents: '$1,299.00' → 1299.00.

    None for no price: empty, 'Call for pricing', or zero (shops show $0.00 for "ask us").
    Raises ValueError for a negative or unreadable number given as a number.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            raise ValueError(f"not a price: {value!r}") from None
    else:
        text = clean_text(value)
        if text is None:
            return None
        amount = Price.fromstring(text, decimal_separator=".").amount
        if amount is None:
            return None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"not a price: {value!r}")
    if amount == 0:
        return None
    return amount.quantize(_CENT, rounding=ROUND_HALF_UP)


def availability_from_schema(value: Any) -> str | None:
    """'http://schema.org/InStock' (or 'InStock') → 'available'; unknown → None."""
    text = clean_text(value)
    if text is None:
        return None
    local_name = text.rstrip("/").rsplit("/", 1)[-1].lower()
    return _SCHEMA_AVAILABILITY.get(local_name)


def availability_from_text(value: Any) -> str | None:
    """The shop's words → one of the three values, or None when they say nothing clear."""
    text = clean_text(value)
    if text is None:
        return None
    if text.lower() in AVAILABILITY:
        return text.lower()
    for pattern, meaning in (
        (_PREORDER_TEXT, PREORDER),
        (_UNAVAILABLE_TEXT, UNAVAILABLE),
        (_AVAILABLE_TEXT, AVAILABLE),
    ):
        if pattern.search(text):
            return meaning
    return availability_from_schema(text)


def clean_sku(value: Any) -> str | None:
    """Trimmed and upper-cased, as shown; never invented ('qx1571nb ' → 'QX1571NB')."""
    text = clean_text(value)
    return text.upper() if text else None


def year_in_name(name: str | None) -> int | None:
    """The leading year of a Keepsake name ('1994 Mrs. Claus' Cupboard' → 1994)."""
    match = _YEAR.match(name or "")
    return int(match.group(1)) if match else None


def series_from_name(name: str | None) -> tuple[str, int] | None:
    """'2019 Frosty Friends 40th in Series' → ('Frosty Friends', 40)."""
    match = _SERIES_IN_NAME.match(name or "")
    if not match:
        return None
    return match.group("series").strip(" -\u2013\u2014,"), int(match.group("number"))


def series_from_text(text: str | None) -> tuple[str, int] | None:
    """'5th in the Nostalgic Rocking Horse series' → ('Nostalgic Rocking Horse', 5)."""
    match = _SERIES_IN_TEXT.search(text or "")
    if not match:
        return None
    return match.group("series").strip(), int(match.group("number"))
