"""Naming data for generated Keepsake ornaments: series, titles, artists and SKU prefixes.

Pure data plus a few tiny helpers. The series and titles follow the real Keepsake naming
style ("{year} {Title}", "{year} {Series} {N}th in Series", "... Miniature", "... NB") without
claiming to be the real product list.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

FIRST_YEAR = 1973
LAST_YEAR = 2025
FIRST_MINIATURE_YEAR = 1988
PREORDER_YEAR = 2025  # the season being announced: its products can be pre-ordered


@dataclass(frozen=True)
class Series:
    name: str
    start: int
    end: int | None = None  # last year, None = still running
    miniature: bool = False

    def number(self, year: int) -> int:
        return year - self.start + 1

    def active(self, year: int) -> bool:
        return self.start <= year <= (self.end or LAST_YEAR)


# No "." in series names: "5th in the X series" must stay one sentence.
SERIES: tuple[Series, ...] = (
    Series("Betsey Clark", 1973, 1985),
    Series("Thimble", 1978, 1989),
    Series("Here Comes Santa", 1979),
    Series("Frosty Friends", 1980),
    Series("Rocking Horse", 1981, 1996),
    Series("Clothespin Soldier", 1982, 1987),
    Series("Nostalgic Houses and Shops", 1984),
    Series("Mary's Angels", 1988),
    Series("Puppy Love", 1991),
    Series("Holiday Barbie", 1993, 2012),
    Series("Lionel Trains", 1996),
    Series("Sky's the Limit", 1997),
    Series("Snowball and Tuxedo", 1999, 2010),
    Series("Toymaker Santa", 2000, 2015),
    Series("Christmas Window", 2003),
    Series("Father Christmas", 2004, 2015),
    Series("Nostalgic Rocking Horse", 2015),
    Series("Old English Village", 1988, 1996, miniature=True),
    Series("Penguin Pal", 1988, 1991, miniature=True),
    Series("Miniature Rocking Horse", 1988, miniature=True),
    Series("Kittens in Toyland", 1988, 1992, miniature=True),
    Series("Noel Railroad", 1989, 1998, miniature=True),
    Series("Antique Tractors", 1997, miniature=True),
    Series("Frosty Friends Miniature", 2000, miniature=True),
)

ARTISTS: tuple[str, ...] = (
    "Ed Seale",
    "Duane Unruh",
    "Linda Sickman",
    "Robert Chad",
    "Don Palmiter",
    "Sue Tague",
    "Patricia Andrews",
    "Tracy Larsen",
    "Ken Crow",
    "LaDene Votruba",
    "Nina Aubé",
    "Joanne Eschrich",
    "Katrina Bricker",
    "Orville Wilson",
    "Chris Stoebner",
    "Tammy Haddix",
    "Valerie Shanks",
    "John Francis (Collin)",
)

# Plain subjects can take a modifier ("Jolly Snowman"); licensed ones are used as they are.
PLAIN_THEMES: tuple[str, ...] = (
    "Baby's First Christmas",
    "Our First Christmas Together",
    "Grandma",
    "Grandpa",
    "Mom and Dad",
    "Sister to Sister",
    "Daughter",
    "Son",
    "Teacher",
    "Godchild",
    "Friendship Blend",
    "Snowman",
    "Gingerbread House",
    "Cardinal",
    "Christmas Kitten",
    "Puppy",
    "Santa's Sleigh",
    "Reindeer Games",
    "Nativity",
    "Angel",
    "Toy Soldier",
    "Nutcracker",
    "Candy Cane Express",
    "Jingle Bell Cat",
    "Polar Bear",
    "Penguin",
    "Snow Globe",
    "Christmas Tree Lot",
    "Ice Skating Mouse",
    "Mailbox Delivery",
    "Cocoa Mug",
    "Stocking Stuffer",
    "Hockey Player",
    "Ballerina",
    "Fishing Buddy",
    "Fire Station",
    "Country Church",
    "Sugarplum Cottage",
    "Owl",
    "Fox",
    "Bunny",
    "Squirrel",
    "Teddy Bear",
    "Drummer Boy",
    "Caroler",
    "Wreath",
    "Star of Wonder",
    "Lighthouse",
    "Sleigh Ride",
    "Tree Topper Angel",
    "Holiday Hoot",
    "Frosty Lantern",
    "Christmas Morning",
    "Hot Cocoa Stand",
    "Santa's Workshop",
)
MODIFIERS: tuple[str, ...] = (
    "Jolly",
    "Merry",
    "Cozy",
    "Sparkling",
    "Vintage",
    "Little",
    "Playful",
    "Winter",
    "Holiday",
    "Festive",
    "Glowing",
    "Peppermint",
    "Snowy",
    "Twinkling",
    "Happy",
)
LICENSED_THEMES: tuple[tuple[str, str], ...] = (  # (title, SKU prefix)
    ("Peanuts® Snoopy and Woodstock", "QXI"),
    ("Peanuts® Charlie Brown", "QXI"),
    ("Disney Mickey Mouse", "QXD"),
    ("Disney Mickey & Minnie", "QXD"),
    ("Disney Frozen Olaf", "QXD"),
    ("Star Wars™ R2-D2™", "QXI"),
    ("Star Wars™ Millennium Falcon™", "QXI"),
    ("Harry Potter™ Hogwarts™ Express", "QXI"),
    ("Barbie™ Holiday Dream", "QXI"),
    ("Dr. Seuss's The Grinch", "QXI"),
    ("Rudolph the Red-Nosed Reindeer®", "QXI"),
    ("Frosty the Snowman™", "QXI"),
    ("Elf Buddy the Elf™", "QXI"),
    ("Hot Wheels™ Holiday Racer", "QXI"),
    ("Coca-Cola® Santa", "QXI"),
    ("Marvel Spider-Man", "QXI"),
)
MINIATURE_THEMES: tuple[str, ...] = (
    "Teddy Bear",
    "Santa",
    "Snowman",
    "Kitten",
    "Puppy",
    "Nutcracker",
    "Angel",
    "Mouse",
    "Rocking Horse",
    "Sled",
    "Candy Cane",
    "Gingerbread Man",
    "Bell",
    "Wreath",
    "Toy Train",
    "Owl",
    "Penguin",
    "Reindeer",
    "Stocking",
    "Lantern",
)


def ordinal(number: int) -> str:
    """1 → '1st', 12 → '12th', 22 → '22nd'."""
    if 10 <= number % 100 <= 20:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def regular_titles() -> list[tuple[str, str]]:
    """Every (title, SKU prefix) a generated regular ornament can take, in a fixed order."""
    titles = [(title, "QX") for title in PLAIN_THEMES]
    titles += list(LICENSED_THEMES)
    titles += [(f"{modifier} {theme}", "QX") for modifier in MODIFIERS for theme in PLAIN_THEMES]
    return titles


def miniature_titles() -> list[tuple[str, str]]:
    titles = [(f"{theme} Miniature", "QXM") for theme in MINIATURE_THEMES]
    titles += [
        (f"{modifier} {theme} Miniature", "QXM")
        for modifier in MODIFIERS
        for theme in MINIATURE_THEMES
    ]
    return titles


_DROP = re.compile(r"[™®©]")
_NOT_WORD = re.compile(r"[^A-Za-z0-9]+")


def ascii_words(text: str) -> list[str]:
    """The ASCII words of a name, punctuation and marks dropped ('Noël' → 'Noel')."""
    folded = unicodedata.normalize("NFKD", _DROP.sub("", text))
    folded = folded.encode("ascii", "ignore").decode("ascii").replace("'", "")
    return [word for word in _NOT_WORD.split(folded) if word]


def title_slug(text: str) -> str:
    """3dcart style: case kept, '1994 Mrs. Claus' Cupboard' → '1994-Mrs-Claus-Cupboard'."""
    return "-".join(ascii_words(text))


def lower_slug(text: str) -> str:
    """BigCommerce style: '1998 Mulan, Mushu and Cri-Kee' → '1998-mulan-mushu-and-cri-kee'."""
    return "-".join(ascii_words(text)).lower()
