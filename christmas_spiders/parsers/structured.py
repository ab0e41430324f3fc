"""Structured data shared by the shops: inline JS objects, JSON-LD, microdata, canonical links."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any
from urllib.parse import urljoin

from parsel import Selector
from w3lib.html import replace_entities

from christmas_spiders import normalize
from christmas_spiders.parsers import Problem


def js_object(selector: Selector, variable: str) -> tuple[dict[str, Any] | None, Problem | None]:
    """The object literal assigned to `var <variable> = {...};` in an inline script.

    Located by a non-greedy match up to the closing `};` (names may contain `;`, `&amp;` or
    `}`), then parsed as JSON. Returns (None, None) when the page has no such variable.
    """
    pattern = re.compile(rf"\bvar\s+{re.escape(variable)}\s*=\s*(\{{.*?\}})\s*;", re.DOTALL)
    for script in selector.xpath("//script[not(@src)]/text()").getall():
        if variable not in script:
            continue
        for match in pattern.finditer(script):
            try:
                value = json.loads(match.group(1))
            except json.JSONDecodeError:
                continue  # a `};` inside a string ended the match early: try a longer one
            if isinstance(value, dict):
                return value, None
        return None, Problem(f"broken_{variable.strip('_').lower()}", f"{variable} is not JSON")
    return None, None


def json_ld_product(selector: Selector) -> tuple[dict[str, Any] | None, Problem | None]:
    """The first schema.org Product in the page's JSON-LD blocks."""
    problem = None
    for block in selector.css('script[type="application/ld+json"]::text').getall():
        try:
            data = json.loads(block)
        except json.JSONDecodeError:
            problem = Problem("broken_json_ld", "a JSON-LD block is not valid JSON")
            continue
        for node in data if isinstance(data, list) else [data, *data.get("@graph", [])]:
            if isinstance(node, dict) and node.get("@type") == "Product":
                return node, problem
    return None, problem


def first_offer(product: dict[str, Any]) -> dict[str, Any]:
    offers = product.get("offers") or {}
    if isinstance(offers, list):
        offers = offers[0] if offers else {}
    return offers if isinstance(offers, dict) else {}


def canonical_url(selector: Selector, page_url: str) -> str | None:
    return absolute(page_url, selector.css('link[rel="canonical"]::attr(href)').get())


def itemprop_content(selector: Selector, name: str) -> str | None:
    """A microdata property: `content`, `href` or text of the first [itemprop=name]."""
    node = selector.css(f'[itemprop="{name}"]')
    if not node:
        return None
    node = node[0]
    value = node.attrib.get("content") or node.attrib.get("href")
    if value is None:
        value = " ".join(node.css("::text").getall())
    return value.strip() or None


def shown_price(value: Any) -> Decimal | None:
    """A price as the page shows it, or None when it shows none or none that can be read."""
    try:
        return normalize.parse_price(value)
    except ValueError:
        return None


def absolute(page_url: str, href: str | None) -> str | None:
    """An absolute URL for a link found on a page (entities decoded, E20)."""
    return urljoin(page_url, replace_entities(href.strip())) if href else None


def linked_cards(
    selector: Selector, page_url: str, cards: str, *links: str
) -> list[tuple[Selector, str]]:
    """The product cards (`cards`, CSS) of a listing page, each with the absolute URL of the
    first of its `links` (CSS of an href) it has; a card without one is no product's."""
    found = []
    for card in selector.css(cards):
        link = absolute(page_url, next((h for css in links if (h := card.css(css).get())), None))
        if link:
            found.append((card, link))
    return found
