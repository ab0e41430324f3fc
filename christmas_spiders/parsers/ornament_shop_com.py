"""ornament-shop.com (BigCommerce, Cornerstone theme): year index, categories, products (§2).

Product pages are read from ``var BCData`` first, then JSON-LD, then the product ``dl`` rows by
their ``dt`` label ("SKU:", "Availability:", "Price:"…) — never by position — and microdata.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from parsel import Selector

from christmas_spiders import normalize
from christmas_spiders.parsers import Problem, ProductPage
from christmas_spiders.parsers.structured import (
    absolute,
    canonical_url,
    first_offer,
    itemprop_content,
    js_object,
    json_ld_product,
    linked_cards,
    shown_price,
)

_YEAR = re.compile(r"^\d{4}$")


def year_links(selector: Selector, url: str) -> list[tuple[int, str]]:
    """(year, category URL) of the sidebar's year list; regular (g1) and miniature (g2) lists of
    a year both count; Shop-By-Price and other non-year links are ignored (E18)."""
    links = []
    for href in selector.css(".sidebarBlock .navList-item a.navList-action::attr(href)").getall():
        link = absolute(url, href)
        segment = urlsplit(link).path.strip("/").split("/")[0]
        year = segment.split("-")[0]
        if _YEAR.match(year) and 1900 < int(year) < 2100:
            links.append((int(year), link))
    return list(dict.fromkeys(links))


def product_cards(selector: Selector, url: str) -> list[tuple[Selector, str]]:
    """The product cards of a category page and their product URLs (parse_listing's products,
    the quick sync's tiles)."""
    links = (".card-title a::attr(href)", ".card-figure a[href]::attr(href)")
    return linked_cards(selector, url, "ul.productGrid article.card", *links)


def parse_listing(selector: Selector, url: str) -> tuple[list[str], str | None]:
    """Product page URLs of a category page, and the next page (None on the last)."""
    products = [link for _, link in product_cards(selector, url)]
    next_page = absolute(url, selector.css(".pagination-item--next a::attr(href)").get())
    return list(dict.fromkeys(products)), next_page


def info_rows(selector: Selector) -> dict[str, Selector]:
    """The product `dl.productView-info` values, keyed by their lower-case `dt` label."""
    rows: dict[str, Selector] = {}
    for label in selector.css("dl.productView-info dt"):
        name = normalize.clean_text(" ".join(label.css("::text").getall())) or ""
        value = label.xpath("following-sibling::dd[1]")
        if value:
            rows.setdefault(name.rstrip(":").strip().lower(), value[0])
    return rows


def _text(node: Selector | None, css: str = "") -> str | None:
    if node is None:
        return None
    return normalize.clean_text(" ".join(node.css(f"{css} ::text" if css else "::text").getall()))


def _bc_value(prices: dict[str, Any], key: str) -> Decimal | None:
    entry = prices.get(key)
    return shown_price(entry.get("value")) if isinstance(entry, dict) else None


def _prices(selector: Selector, attributes: dict[str, Any], problems: list[Problem]):
    bc_prices = attributes.get("price") if isinstance(attributes.get("price"), dict) else {}
    scope = selector.css(".productView") or selector
    shown = shown_price(_text(scope[0], "[data-product-price-without-tax]"))
    was = shown_price(_text(scope[0], "[data-product-non-sale-price-without-tax]"))
    structured = _bc_value(bc_prices, "without_tax")
    structured_was = _bc_value(bc_prices, "non_sale_price_without_tax")
    if _text(scope[0], ".productView-price") and not shown:
        return None, None  # "Call for pricing" (E24)
    price = shown if shown is not None else structured
    regular = was if was is not None else structured_was
    if structured is not None and shown is not None and structured != shown:
        problems.append(
            Problem("price_disagrees", f"page shows {shown} but BCData says {structured}")
        )
        if regular is not None:  # on sale: the higher one is the pre-sale price (§C3)
            regular = max(regular, structured)
    if regular is not None and (price is None or regular <= price):
        regular = None
    return price, regular


def _availability(selector: Selector, attributes: dict[str, Any], ld_offer: dict[str, Any]):
    rows = info_rows(selector)
    text = _text(rows.get("availability"))
    button = selector.css("#form-action-addToCart::attr(value)").get() or ""
    sold_out = _text(selector.css(".productView-options .alertBox--error") or None)
    signals = [
        normalize.availability_from_schema(ld_offer.get("availability")),
        normalize.availability_from_schema(itemprop_content(selector, "availability")),
        normalize.availability_from_text(button),
        normalize.availability_from_text(text),
    ]
    if normalize.PREORDER in signals:
        return normalize.PREORDER, text or normalize.clean_text(button)
    if sold_out:
        return normalize.UNAVAILABLE, text or sold_out
    if isinstance(attributes.get("instock"), bool):
        in_stock = attributes["instock"] and attributes.get("purchasable", True) is not False
        return (normalize.AVAILABLE if in_stock else normalize.UNAVAILABLE), text
    return next((signal for signal in signals if signal), None), text


def _release_year(selector: Selector, rows: dict[str, Selector], name: str) -> int | None:
    for crumb in selector.css(".breadcrumbs .breadcrumb span[itemprop=name]::text").getall():
        if year := normalize.year_in_name(crumb):
            return year
    stated = _text(rows.get("release year"))
    if stated and stated.isdigit():
        return int(stated)
    return normalize.year_in_name(name)


def parse_product(selector: Selector, url: str) -> ProductPage:
    problems: list[Problem] = []
    bc_data, problem = js_object(selector, "BCData")
    if problem:
        problems.append(problem)
    ld, problem = json_ld_product(selector)
    if problem:
        problems.append(problem)
    attributes = (bc_data or {}).get("product_attributes") or {}
    ld = ld or {}
    offer = first_offer(ld)
    rows = info_rows(selector)

    name = (
        _text(selector.css("h1.productView-title") or None)
        or normalize.clean_text(ld.get("name"))
        or normalize.clean_text(selector.css(".productView::attr(data-name)").get())
    )
    if not selector.css(".productView") and not attributes and not ld:
        return ProductPage.skip("no_product", problems)
    if name is None:
        return ProductPage.skip("no_name", problems)

    product_id = (
        selector.css("form[data-cart-item-add] input[name=product_id]::attr(value)").get()
        or selector.css(".productView::attr(data-entity-id)").get()
    )
    sku = attributes.get("sku") or ld.get("sku") or _text(rows.get("sku"))
    if sku is None:
        sku = normalize.clean_text(selector.css("[data-product-sku]::text").get())
    if not normalize.clean_sku(sku):
        problems.append(Problem("missing_sku", "the page shows no SKU"))
    price, regular = _prices(selector, attributes, problems)
    availability, availability_text = _availability(selector, attributes, offer)
    description = _text(selector.css("[itemprop=description]") or None)
    stated = normalize.series_from_text(description) or normalize.series_from_name(name)
    image = (
        selector.css(".productView-image img::attr(src)").get()
        or selector.css(".productView-image img::attr(data-src)").get()
    )
    brand = ld.get("brand")
    if isinstance(brand, dict):
        brand = brand.get("name")
    return ProductPage(
        fields={
            "vendor_product_id": product_id,
            "sku": sku,
            "name": name,
            "price": price,
            "regular_price": regular,
            "currency": offer.get("priceCurrency")
            or itemprop_content(selector, "priceCurrency")
            or "USD",
            "availability": availability,
            "availability_text": availability_text,
            "release_year": _release_year(selector, rows, name),
            "brand": _text(rows.get("brand")) or brand or "Hallmark",
            "link": canonical_url(selector, url) or url,
            "image_url": absolute(url, image),
            "series": _text(rows.get("series")) or (stated[0] if stated else None),
            "series_number": stated[1] if stated else None,
            "artist": _text(rows.get("artist")),
        },
        problems=problems,
    )
