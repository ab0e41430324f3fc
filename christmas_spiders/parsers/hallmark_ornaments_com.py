"""hallmarkornaments.com (3dcart, "The Ornament Factory"): year index, year grids, products (§3).

Year grids arrive empty (`#itemsBlock`) and are filled by the page's script (§C4), so
``parse_listing`` reads the DOM a browser built; ``grid_is_unfilled`` tells a plain-HTTP page
that still needs the browser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from parsel import Selector

from christmas_spiders.parsers.structured import absolute, linked_cards
from christmas_spiders.parsers.threedcart import parse_product

__all__ = [
    "Listing",
    "grid_is_unfilled",
    "parse_listing",
    "parse_product",
    "product_cards",
    "year_links",
]

_PATH_YEAR = re.compile(r"^/((?:19|20)\d\d)(?!\d)")
_TEXT_YEAR = re.compile(r"\b((?:19|20)\d\d)\b")
_LAST_INTEGER = re.compile(r"(\d[\d,]*)(?!.*\d)")


def year_links(selector: Selector, url: str) -> list[tuple[int, str]]:
    """(year, category URL) of the `a.subcat` links: the year leads the href's path
    (`/1975_c_305.html`), never the host, port or category id; else it is in the link text."""
    links = []
    for link in selector.css("a.subcat"):
        href = absolute(url, link.attrib.get("href"))
        if not href:
            continue
        match = _PATH_YEAR.match(urlsplit(href).path) or _TEXT_YEAR.search(
            " ".join(link.css("::text").getall())
        )
        if match:
            links.append((int(match.group(1)), href))
    return list(dict.fromkeys(links))


@dataclass
class Listing:
    products: list[str]
    expected_count: int | None  # the number `.product-count` announces
    next_page: str | None


def product_count(selector: Selector) -> int | None:
    text = " ".join(selector.css(".product-count ::text").getall())
    match = _LAST_INTEGER.search(text)
    return int(match.group(1).replace(",", "")) if match else None


def product_cards(selector: Selector, url: str) -> list[tuple[Selector, str]]:
    """The product cards of a year grid (as the browser built it) and their product URLs
    (parse_listing's products, the quick sync's tiles)."""
    cards = "#productCategoryBlock .product-item"
    return linked_cards(selector, url, cards, ".img > a::attr(href)", ".name a::attr(href)")


def parse_listing(selector: Selector, url: str) -> Listing:
    products = [link for _, link in product_cards(selector, url)]
    next_page = None
    for link in selector.css(".paging a"):
        if "next" in " ".join(link.css("::text").getall()).lower():
            next_page = absolute(url, link.attrib.get("href"))
            break
    return Listing(list(dict.fromkeys(products)), product_count(selector), next_page)


def grid_is_unfilled(selector: Selector) -> bool:
    """An empty product grid on a page that announces products: the script has not run."""
    return not selector.css("#itemsBlock .product-item") and (product_count(selector) or 0) > 0
