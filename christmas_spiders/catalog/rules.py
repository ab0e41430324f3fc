"""What a listing says about its ornament: the pure rules of issue #15, one function each.

An **ornament** is one Hallmark Keepsake design of one year; a **listing** is one shop's
product page for it (an item of vendor-sites.md §C2). The rules:

* **Item number.** The SKU trimmed and upper-cased, separators dropped, without a leading
  price code (``2999QXM2797`` → ``QXM2797``) and without a condition suffix (``QX1571NB`` →
  ``QX1571``; also ``NT``, ``DB``, ``SDB``, ``MIB``). What is left must look like a Hallmark
  number (Q or X and up to four more letters, then 3–5 digits: ``QX5216``, ``QXM2797``,
  ``XHD1102``); any other SKU (a shop's own "OS-11402") is not an item number.
* **Condition** is a property of the offer, not of the ornament: "NB"/"No Box", "No Tag",
  "Damaged Box" in the name or the SKU suffix give ``no_box``, ``no_tag`` or ``damaged_box``;
  anything else is ``boxed``. When a listing states two, the first of no_box, damaged_box,
  no_tag wins (the box matters most to collectors).
* **Year** of the ornament: the Keepsake year (1973 or later) the name starts or ends with,
  ignoring what shops add ("Hallmark", "No Box"…): a "2015 Star Wars Darth Vader Helmet"
  listed in a 2016 category is a 2015 ornament. Otherwise the listing's ``release_year``.
* **Series number**: the item's ``series_number`` when the page states one, else the name's
  "#46", "No. 46", "46th in Series", "#46 in the Frosty Friends Series" or a trailing "46th".
* **Kind flags** that make a different ornament however alike the names: ``miniature``
  ("Miniature", "Mini", item numbers ``QXM…``), ``light_and_sound``, ``magic`` ("Magic",
  item numbers ``QLX…``), ``signed``, ``limited``, ``club`` ("Club", "KOC", item numbers
  ``QXC…``). "Light and Sound" and "Magic" are one kind when compared: both name Hallmark's
  Magic line (light, sound, motion), and shops call one ornament either.
* **Comparable name**: the name's words after removing what shops add or write differently:
  the year (wherever it stands), "Hallmark", "Keepsake", "Ornament", the "Disney" label shops
  put before Disney characters, the words "Series", "a", "an", "the", trademark signs,
  accents, punctuation, condition words, the series number phrase, the kind-flag words and
  any embedded SKU; "&" reads "and", "First" reads "1st". Apostrophes are dropped and a
  possessive read both ways: "Mary's" agrees with "Marys" and with "Mary", "Claus's" with
  "Claus'" (but "Marys" and "Mary" are two words). Every other word is kept: words that tell
  designs apart ("Photo Holder", "Niece", "and Donald") make another name.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

BOXED, NO_BOX, NO_TAG, DAMAGED_BOX = "boxed", "no_box", "no_tag", "damaged_box"
CONDITIONS = (BOXED, NO_BOX, NO_TAG, DAMAGED_BOX)
MINIATURE, LIGHT_AND_SOUND, MAGIC = "miniature", "light_and_sound", "magic"
SIGNED, LIMITED, CLUB = "signed", "limited", "club"
FLAGS = (MINIATURE, LIGHT_AND_SOUND, MAGIC, SIGNED, LIMITED, CLUB)
ITEM_NUMBER, NAME = "item_number", "name"  # how a listing was linked to its ornament
LINK_METHODS = (ITEM_NUMBER, NAME)
FIRST_KEEPSAKE_YEAR = 1973  # the first Keepsake line; "1955 Murray Champion" is a title
LAST_YEAR = 2099

_SKU = re.compile(r"^(?:\d{3,5})?(?P<number>[QX][A-Z]{1,4}\d{3,5})(?P<suffix>SDB|MIB|NB|NT|DB)?$")
_SKU_CONDITION = {"NB": NO_BOX, "NT": NO_TAG, "DB": DAMAGED_BOX, "SDB": DAMAGED_BOX, "MIB": BOXED}
# Item-number prefixes that fix a kind (Hallmark's QXM miniatures, QXC club, QLX Magic).
_PREFIX_FLAGS = {"QXM": MINIATURE, "QXC": CLUB, "QLX": MAGIC}
_NOT_ALNUM = re.compile(r"[^A-Z0-9]+")

# Condition phrases, matched on the folded lower-case name; the order is the priority.
_CONDITION_WORDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        NO_BOX,
        re.compile(
            r"\b(?:(?:no|missing)[\s-]*(?:original\s+)?box|box\s+missing|nb"
            r"|without\s+(?:a\s+)?box|w/o\s+box|unboxed)\b"
        ),
    ),
    (
        DAMAGED_BOX,
        re.compile(r"\b(?:(?:slightly\s+)?damaged\s+box|box\s+(?:has\s+)?damaged?|s?db)\b"),
    ),
    (
        NO_TAG,
        re.compile(
            r"\b(?:(?:no|missing)[\s-]*(?:price\s+)?tags?|tags?\s+missing|without\s+tags?|nt)\b"
        ),
    ),
    (BOXED, re.compile(r"\b(?:mint\s+in\s+box|new\s+in\s+box|mib|nib|with\s+box)\b")),
)
_FLAG_WORDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        LIGHT_AND_SOUND,
        re.compile(r"\b(?:with\s+)?(?:lights?\s*(?:and|,)?\s*sounds?|sounds?\s+and\s+lights?)\b"),
    ),
    (MAGIC, re.compile(r"\bmagic\b")),
    (MINIATURE, re.compile(r"\b(?:miniatures?|mini)\b")),
    (SIGNED, re.compile(r"\b(?:artist\s+)?(?:signed|autographed)(?:\s+edition)?\b")),
    (LIMITED, re.compile(r"\blimited(?:\s+edition)?\b")),
    (
        CLUB,
        re.compile(
            r"\b(?:keepsake\s+)?(?:ornament\s+)?(?:club|koc)(?:\s+(?:edition|exclusive))?\b"
        ),
    ),
)
_NUMBER_SIGN = r"(?:#\s*|\bno\.\s*|\bnumber\s+)"
_SERIES_NUMBER: tuple[re.Pattern[str], ...] = (
    # "46th in Series", "#46 in the Frosty Friends Series" (at most six words in between)
    re.compile(
        rf"(?:{_NUMBER_SIGN}|\b)(?P<number>\d{{1,3}})(?:\s*(?:st|nd|rd|th))?"
        r"\s+in\s+(?:the\s+)?(?:[\w']+\s+){0,6}?series\b"
    ),
    re.compile(rf"{_NUMBER_SIGN}(?P<number>\d{{1,3}})\b"),  # "#46", "No. 46"
    re.compile(r"\b(?P<number>\d{1,3})\s*(?:st|nd|rd|th)$"),  # "1998 A Pony for Christmas 1st"
)
# Cheap first looks: a name none of these finds has no condition, flag or series number words
# (most names), and is spared the patterns one by one. Each finds whatever its patterns find.
_ANY_CONDITION = re.compile("|".join(pattern.pattern for _, pattern in _CONDITION_WORDS))
_ANY_FLAG = re.compile("|".join(pattern.pattern for _, pattern in _FLAG_WORDS))
_ANY_SERIES_NUMBER = re.compile(r"series|#|\bno\.|\bnumber\s|\d\s*(?:st|nd|rd|th)$")
# What shops add: the maker, the line, the licence label before Disney characters, articles.
_SHOP_WORDS = frozenset(
    {"hallmark", "keepsake", "ornament", "ornaments", "series", "disney", "a", "an", "the"}
)
# A SKU inside a name ("... QX1234"): Hallmark numbers start with Q or X ("F-150" stays).
_EMBEDDED_SKU = re.compile(r"^(?:\d{3,5})?(?:q[a-z]{0,4}|x[a-z]{1,4})\d{3,5}$")
_MARKS = re.compile(r"[™®©℠]")
_QUOTES = str.maketrans({"‘": "'", "’": "'", "ʼ": "'", "`": "'", "´": "'"})
_S_POSSESSIVE = re.compile(r"(?<=s)'s\b")  # "Claus's" reads as "Claus'"
_POSSESSIVE = re.compile(r"(?<=\w)'s\b")
_YEAR = re.compile(r"^(?:19|20)\d\d$")
_ORDINAL_WORDS = {
    "first": "1st",
    "second": "2nd",
    "third": "3rd",
    "fourth": "4th",
    "fifth": "5th",
    "sixth": "6th",
    "seventh": "7th",
    "eighth": "8th",
    "ninth": "9th",
    "tenth": "10th",
}


@dataclass(frozen=True)
class NameForm:
    """A name made comparable, read two ways: `words` drops apostrophes ("Mary's" → "marys",
    as shops that leave them out write it); `bare` drops a possessive "'s" ("Mary's" → "mary",
    as shops that leave the possessive out write it). Names agree when either reading does."""

    words: tuple[str, ...]
    bare: tuple[str, ...] = ()

    @property
    def bare_text(self) -> str:
        return " ".join(sorted(self.bare or self.words))

    @property
    def sorted_text(self) -> str:
        return " ".join(sorted(self.words))

    @property
    def squashed(self) -> str:
        """The words run together, so "Snow Man" and "Snowman", "R2-D2" and "R2 D2" agree."""
        return "".join(self.words)


@dataclass(frozen=True)
class NameParts:
    """Everything the rules read from a name."""

    form: NameForm
    year: int | None  # the year the name starts or ends with, else the release year
    series_number: int | None
    flags: frozenset[str]
    condition: str


def item_number(sku: str | None) -> str | None:
    """'2999QXM2797' → 'QXM2797', ' qx1571nb' → 'QX1571'; None when no Hallmark number."""
    match = _SKU.match(_NOT_ALNUM.sub("", (sku or "").upper()))
    return match.group("number") if match else None


def sku_condition(sku: str | None) -> str | None:
    """The condition a SKU suffix states ('QX1571NB' → 'no_box'), None without a suffix."""
    match = _SKU.match(_NOT_ALNUM.sub("", (sku or "").upper()))
    return _SKU_CONDITION.get(match.group("suffix") or "") if match else None


def kind(flags: frozenset[str]) -> frozenset[str]:
    """Flags as compared: "Light and Sound" and "Magic" both name Hallmark's Magic line."""
    return frozenset(MAGIC if flag == LIGHT_AND_SOUND else flag for flag in flags)


def item_number_flags(number: str | None) -> frozenset[str]:
    """Kind flags an item number fixes by its prefix ('QXM2797' → {'miniature'})."""
    for prefix, flag in _PREFIX_FLAGS.items():
        if number and number.startswith(prefix):
            return frozenset({flag})
    return frozenset()


def fold(text: str) -> str:
    """Lower case, accents and trademark signs dropped, quotes straightened, '&' read 'and'."""
    if not text.isascii():
        text = unicodedata.normalize("NFKD", _MARKS.sub(" ", text))
        text = "".join(char for char in text if not unicodedata.combining(char))
    text = text.translate(_QUOTES).lower()
    return re.sub(r"\s*[&+]\s*", " and ", text)


def _take(pattern: re.Pattern[str], text: str) -> tuple[re.Match[str] | None, str]:
    """The first match of `pattern` and the text with every match blanked out."""
    match = pattern.search(text)
    return match, pattern.sub(" ", text) if match else text


def _keepsake_year(word: str) -> int | None:
    if _YEAR.match(word) and FIRST_KEEPSAKE_YEAR <= int(word) <= LAST_YEAR:
        return int(word)
    return None


def _words(text: str) -> list[str]:
    """The words that count, ordinals as digits ("Baby's First" = "Baby's 1st")."""
    return [
        _ORDINAL_WORDS.get(word, word)
        for word in re.split(r"[^a-z0-9]+", text)
        if word and word not in _SHOP_WORDS and not _EMBEDDED_SKU.match(word)
    ]


def parse_name(name: str, release_year: int | None = None) -> NameParts:
    """Apply the name rules (module docstring) to one listing name.

    The year is the one the name starts or ends with, else `release_year`; it is not a word.
    """
    text = fold(name)
    condition = BOXED
    conditions = _CONDITION_WORDS if _ANY_CONDITION.search(text) else ()
    for value, pattern in reversed(conditions):  # the first rule in the list wins
        match, text = _take(pattern, text)
        if match and value != BOXED:
            condition = value
    series_number = None
    text = text.strip(" -–—,.;:()")
    for pattern in _SERIES_NUMBER if _ANY_SERIES_NUMBER.search(text) else ():
        match, text = _take(pattern, text.strip(" -–—,.;:()"))
        if match and series_number is None:
            series_number = int(match.group("number"))
    flags = set()
    for flag, pattern in _FLAG_WORDS if _ANY_FLAG.search(text) else ():
        match, text = _take(pattern, text)
        if match:
            flags.add(flag)
    text = _S_POSSESSIVE.sub("", text)
    words = _words(text.replace("'", ""))
    bare = _words(_POSSESSIVE.sub("", text).replace("'", ""))
    year = release_year
    if words:
        year = _keepsake_year(words[0]) or _keepsake_year(words[-1]) or release_year
    if year is not None:
        words = [word for word in words if word != str(year)]
        bare = [word for word in bare if word != str(year)]
    form = NameForm(tuple(words), tuple(bare) if bare != words else ())
    return NameParts(form, year, series_number, frozenset(flags), condition)


def offer_condition(name_condition: str, sku: str | None) -> str:
    """The offer's condition: what its name states and what its SKU suffix states, by priority."""
    stated = {name_condition, sku_condition(sku) or BOXED}
    return next((value for value in (NO_BOX, DAMAGED_BOX, NO_TAG) if value in stated), BOXED)


def condition(name: str, sku: str | None) -> str:
    """'1975 Betsey Clark (Adorable) NB' → 'no_box'; 'QX1571DB' → 'damaged_box'."""
    return offer_condition(parse_name(name).condition, sku)
