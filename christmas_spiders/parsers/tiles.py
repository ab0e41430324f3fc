"""Listing tiles: what a year listing shows of each product, for the quick sync (issue #16).

Pure, like the product parsers: a parsel Selector and the page URL in, one ``Tile`` per product
card out, the cards and URLs being those the shop's ``parse_listing`` reads (its parser's
``product_cards``; the spider matches tiles by URL). Structured data first — the card's own ids
and ``data-*`` attributes — then the visible markup by classes (vendor-sites.md §1.3, §2.3,
§3.3):

* HooH: id `.product-item[data-catalogid]`; price `.sale-price` with `del.regular-price`, else
  `.regular-price`; availability from `.status .availability` and the waiting-list button.
* OS: id `article.card[data-entity-id]`; price `data-product-price` and the shown
  `[data-product-price-without-tax]` (they must agree), "Was:"
  `[data-product-non-sale-price-without-tax]`; availability from the card button (Add to Cart,
  Pre-Order Now, Sold Out).
* HO: id `.product-cell[data-catalogid]` or `img#qv_<id>`; price `.price1` with `del.price2`,
  else `.price`; no availability (the grid does not show stock).

A tile the parser cannot compare (no price block at all, a price it cannot read) carries
``unreadable``: the quick sync then reads the product page, which is the source of truth.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from parsel import Selector
from price_parser import Price

from christmas_spiders import normalize
from christmas_spiders.parsers import hallmark_ornaments_com as ho_shop
from christmas_spiders.parsers import hookedonhallmark_com as hooh_shop
from christmas_spiders.parsers import ornament_shop_com as os_shop
from christmas_spiders.parsers.structured import shown_price

_DIGIT = re.compile(r"\d")
_QV_ID = re.compile(r"^qv_(\d+)$")


@dataclass(frozen=True)
class Tile:
    url: str
    vendor_product_id: str | None
    price: Decimal | None = None
    regular_price: Decimal | None = None  # the pre-sale price, on sale only
    availability: str | None = None  # None: the tile does not tell
    unreadable: str | None = None  # why the tile cannot be compared with the stored product


def _text(node: Selector, css: str) -> str | None:
    return normalize.clean_text(" ".join(node.css(css).getall()))


def _amount(text: str | None) -> tuple[Decimal | None, bool]:
    """(price, readable): '$0.00' or 'Call for pricing' is no price (readable); a text with
    digits but no amount in it is unreadable."""
    if not _DIGIT.search(text or ""):
        return None, True
    return shown_price(text), Price.fromstring(text, decimal_separator=".").amount is not None


def _pre_sale(price: Decimal | None, regular: Decimal | None) -> Decimal | None:
    """Only a higher pre-sale price counts (as the normalize pipeline keeps it)."""
    return regular if regular is not None and price is not None and regular > price else None


def _tile(
    url: str,
    product_id: str | None,
    price_text: str | None,
    regular_text: str | None,
    availability: str | None,
) -> Tile:
    if price_text is None:
        return Tile(url, product_id, availability=availability, unreadable="no price")
    price, readable = _amount(price_text)
    regular, regular_readable = _amount(regular_text)
    if not (readable and regular_readable):
        return Tile(url, product_id, availability=availability, unreadable="price not readable")
    return Tile(url, product_id, price, _pre_sale(price, regular), availability)


def _unique(tiles: list[Tile]) -> list[Tile]:
    """One tile per URL (a product listed twice on a page, E13), the first kept."""
    return list({tile.url: tile for tile in reversed(tiles)}.values())[::-1]


def hookedonhallmark_com(selector: Selector, url: str) -> list[Tile]:
    tiles = []
    for item, link in hooh_shop.product_cards(selector, url):
        block = item.css(".price")
        sale = _text(block, ".sale-price ::text")
        price_text = sale or _text(block, ".regular-price:not(del) ::text")
        # del.regular-price holds the old amount and an sr-only label: its own text only.
        regular_text = _text(block, "del.regular-price::text") if sale else None
        status = _text(item, ".status .availability ::text")
        signals = [normalize.availability_from_text(status)]
        action = (_text(item, ".action ::text") or "").lower()
        if item.css(".waiting-list") or "waiting list" in action:
            signals.append(normalize.UNAVAILABLE)
        availability = next((s for s in signals if s), None)
        if normalize.PREORDER in signals:
            availability = normalize.PREORDER
        product_id = item.attrib.get("data-catalogid") or None
        tiles.append(_tile(link, product_id, price_text, regular_text, availability))
    return _unique(tiles)


def ornament_shop_com(selector: Selector, url: str) -> list[Tile]:
    tiles = []
    for card, link in os_shop.product_cards(selector, url):
        product_id = (
            card.attrib.get("data-entity-id")
            or card.css(".quickview::attr(data-product-id)").get()
            or None
        )
        buttons = card.css(".card-figcaption-button:not(.quickview)")
        availability = normalize.availability_from_text(_text(buttons[:1], "::text"))
        structured = card.attrib.get("data-product-price")  # with data tags on (§2.3)
        shown = _text(card, "[data-product-price-without-tax] ::text")
        if None not in (structured, shown) and shown_price(structured) != shown_price(shown):
            tiles.append(Tile(link, product_id, None, None, availability, "prices disagree"))
            continue
        price_text = structured or shown or _text(card, ".price-section .price-label ::text")
        regular_text = _text(card, "[data-product-non-sale-price-without-tax] ::text")
        tiles.append(_tile(link, product_id, price_text, regular_text, availability))
    return _unique(tiles)


def hallmark_ornaments_com(selector: Selector, url: str) -> list[Tile]:
    """The grid as the browser built it (§3.3); the shop shows no stock on its grid."""
    tiles = []
    for cell, link in ho_shop.product_cards(selector, url):
        product_id = cell.xpath("ancestor::*[@data-catalogid][1]/@data-catalogid").get()
        if not product_id:
            found = _QV_ID.match(cell.css(".img img::attr(id)").get() or "")
            product_id = found.group(1) if found else None
        block = cell.css(".price")
        sale = _text(block, ".price1 ::text")
        price_text = sale or (_text(block, "::text") if block else None)
        regular_text = _text(block, ".price2 ::text") if sale else None
        tiles.append(_tile(link, product_id, price_text, regular_text, None))
    return _unique(tiles)


PARSERS: dict[str, Callable[[Selector, str], list[Tile]]] = {
    "hookedonhallmark_com": hookedonhallmark_com,
    "ornament_shop_com": ornament_shop_com,
    "hallmark_ornaments_com": hallmark_ornaments_com,
}
