"""hookedonhallmark.com (3dcart): year index, year categories and product pages (§1)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from parsel import Selector

from christmas_spiders.parsers.structured import absolute, linked_cards
from christmas_spiders.parsers.threedcart import parse_product

__all__ = [
    "Listing",
    "is_product_url",
    "parse_listing",
    "parse_product",
    "product_cards",
    "year_links",
]

_YEAR = re.compile(r"^(?:19|20)\d\d$")
_PRODUCT_URL = re.compile(r"_p_\d+\.html$|/product\.asp$", re.I)


def is_product_url(url: str) -> bool:
    """A product page (`/{Slug}_p_{catalogid}.html`, or its `product.asp?itemid=` alias)."""
    return bool(_PRODUCT_URL.search(urlsplit(url).path))


def year_links(selector: Selector, url: str) -> list[tuple[int, str]]:
    """(year, category URL) from the `ul.columns-5` grid; tiles without a year are ignored."""
    links = []
    for tile in selector.css("ul.columns-5 > li"):
        href = tile.css("a::attr(href)").get()
        label = tile.css("span img::attr(alt)").get() or " ".join(tile.css("span ::text").getall())
        first = (label or "").split()[:1]
        if href and first and _YEAR.match(first[0]):
            links.append((int(first[0]), absolute(url, href)))
    return list(dict.fromkeys(links))


@dataclass
class Listing:
    """What a category page offers: product pages, and where else to look."""

    products: list[str] = field(default_factory=list)
    next_page: str | None = None
    view_all: str | None = None  # the ?viewall=1 mode of this category
    view_all_category: str | None = None  # a "View All" sub-category of a segmented year
    subcategories: list[str] = field(default_factory=list)


def product_cards(selector: Selector, url: str) -> list[tuple[Selector, str]]:
    """The product cards of a category page and their product URLs (parse_listing's products,
    the quick sync's tiles)."""
    cards = "section.category-products:not(#featureBlock) .product-item"
    return linked_cards(selector, url, cards, ".name a::attr(href)", ".img a::attr(href)")


def parse_listing(selector: Selector, url: str) -> Listing:
    listing = Listing()
    listing.products = list(dict.fromkeys(link for _, link in product_cards(selector, url)))
    for link in selector.css(".paging a"):
        text = " ".join(link.css("::text").getall()).strip().lower()
        href = absolute(url, link.attrib.get("href"))
        if "next" in text and listing.next_page is None:
            listing.next_page = href
        elif "view all" in text and "exit" not in text and listing.view_all is None:
            listing.view_all = href
    for tile in selector.css(".sub-categories a[href]"):
        href = absolute(url, tile.attrib["href"])
        label = " ".join(tile.css("::text, img::attr(alt)").getall())
        if re.search("view-all", href, re.I) or re.search(r"\bview all\b", label, re.I):
            listing.view_all_category = listing.view_all_category or href
        else:
            listing.subcategories.append(href)
    return listing
