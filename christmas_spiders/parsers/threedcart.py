"""Product pages of the two 3dcart / Shift4Shop shops (HooH §1.4, HO §3.4), and their view-all
listing mode.

Order of trust: ``var _3d_item`` (catalogid, SKU, name, price, in-stock flag), then JSON-LD,
then microdata and the DOM by ids and classes (``h1[itemprop=name]``, ``#product_id``,
``#price``, ``#availability``). Prices follow contract §C3: the price shown to the buyer is the
price; on a page marked on sale the higher amount is ``regular_price``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

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
    shown_price,
)


def view_all_url(url: str) -> str:
    """A category's view-all mode (`?viewall=1`): every product on one page, no paging."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode({"viewall": 1}), ""))


_LABELLED = re.compile(r"^\s*(?P<label>[A-Za-z ]+?)\s*:\s*(?P<value>.+?)\s*$")


def _text(selector: Selector, css: str) -> str | None:
    return normalize.clean_text(" ".join(selector.css(f"{css} ::text").getall()))


def labelled_rows(selector: Selector) -> dict[str, str]:
    """'Series: Betsey Clark' style rows of the product's spec list, by lower-case label."""
    rows: dict[str, str] = {}
    for node in selector.css("#listing li, #listing .product-specs > *, #listing dt"):
        text = normalize.clean_text(" ".join(node.css("::text").getall())) or ""
        match = _LABELLED.match(text)
        if match:
            rows.setdefault(match.group("label").lower(), match.group("value"))
    return rows


def breadcrumb_year(selector: Selector) -> int | None:
    """The year of the year category in the breadcrumb trail ('2019 Hallmark Ornaments', '1975')."""
    crumbs = selector.css(
        ".breadcrumb-section li ::text, .breadcrumbs a::text, .breadcrumbs ::text"
    ).getall()
    return next((year for crumb in crumbs if (year := normalize.year_in_name(crumb))), None)


def _prices(selector: Selector, item: dict[str, Any], problems: list[Problem]):
    shown = shown_price(_text(selector, "#price"))
    on_sale = bool(selector.css(".saleprice, .sale-price, del.original-price"))
    struck = shown_price(_text(selector, "del.original-price, .saleprice del, del.price2"))
    retail = shown_price(_text(selector, ".retailprice span, .retailprice"))
    structured = shown_price(item.get("price"))
    if structured is None:
        structured = shown_price(itemprop_content(selector, "price"))
    price = shown if shown is not None else structured
    regular = None
    if on_sale:
        # The struck-through amount is the pre-sale price (E3): a "Retail Price" block beside it
        # is the MSRP. Without one (HO's sale: `.saleprice` and a "Retail:" block), the higher.
        candidates = [
            p for p in (struck, retail, structured) if p is not None and price and p > price
        ]
        if struck is not None and price and struck > price:
            candidates = [struck]
        regular = max(candidates) if candidates else None
    elif structured is not None and shown is not None and structured != shown:
        problems.append(
            Problem("price_disagrees", f"page shows {shown} but structured data says {structured}")
        )
    return price, regular


def _availability(selector: Selector, item: dict[str, Any], ld_offer: dict[str, Any]):
    text = _text(selector, "#availability")
    signals = [
        normalize.availability_from_text(text),
        normalize.availability_from_schema(ld_offer.get("availability")),
        normalize.availability_from_schema(itemprop_content(selector, "availability")),
    ]
    if selector.css("#waitinglist-btn"):
        signals.append(normalize.UNAVAILABLE)
    if normalize.PREORDER in signals:
        return normalize.PREORDER, text
    flag = item.get("availability")
    if flag in (0, 1, "0", "1"):
        return (normalize.AVAILABLE if int(flag) else normalize.UNAVAILABLE), text
    for signal in signals:
        if signal:
            return signal, text
    return None, text


def parse_product(selector: Selector, url: str) -> ProductPage:
    problems: list[Problem] = []
    item, problem = js_object(selector, "_3d_item")
    if problem:
        problems.append(problem)
    ld, problem = json_ld_product(selector)
    if problem:
        problems.append(problem)
    item, ld = item or {}, ld or {}
    offer = first_offer(ld)

    name = (
        normalize.clean_text(item.get("name"))
        or normalize.clean_text(ld.get("name"))
        or _text(selector, "h1[itemprop=name]")
        or _text(selector, "#listing h1")
    )
    if not item and not ld and not selector.css("form#add"):
        return ProductPage.skip("no_product", problems)
    if name is None:
        return ProductPage.skip("no_name", problems)

    catalog_id = (
        item.get("catalogid")
        or selector.css("form#add input[name=item_id]::attr(value)").get()
        or selector.css("#catalogid::attr(value)").get()
    )
    sku = (
        item.get("id")
        or ld.get("sku")
        or _text(selector, "#product_id")
        or itemprop_content(selector, "sku")
    )
    if not normalize.clean_sku(sku):
        problems.append(Problem("missing_sku", "the page shows no SKU"))
    price, regular = _prices(selector, item, problems)
    availability, availability_text = _availability(selector, item, offer)
    rows = labelled_rows(selector)
    stated = normalize.series_from_text(
        _text(selector, "#listing [itemprop=description], #listing .description")
    ) or normalize.series_from_name(name)
    image = (
        selector.css("#listing img[itemprop=image]::attr(src)").get()
        or selector.css("#main-image img::attr(src), .main-image img::attr(src)").get()
    )
    ld_image = ld.get("image")
    if isinstance(ld_image, list):
        ld_image = ld_image[0] if ld_image else None
    brand = ld.get("brand")
    if isinstance(brand, dict):
        brand = brand.get("name")
    return ProductPage(
        fields={
            "vendor_product_id": str(catalog_id) if catalog_id else None,
            "sku": sku,
            "name": name,
            "price": price,
            "regular_price": regular,
            "currency": item.get("currency") or offer.get("priceCurrency") or "USD",
            "availability": availability,
            "availability_text": availability_text,
            "release_year": breadcrumb_year(selector) or normalize.year_in_name(name),
            "brand": brand or itemprop_content(selector, "brand") or "Hallmark",
            "link": canonical_url(selector, url) or url,
            "image_url": absolute(url, ld_image or image),
            "series": rows.get("series") or (stated[0] if stated else None),
            "series_number": stated[1] if stated else None,
            "artist": rows.get("artist"),
        },
        problems=problems,
    )
