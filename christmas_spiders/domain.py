"""Names and rules of the domain that storage, configuration and the API all use (a leaf: it
imports nothing of ours).

Defined once here, so the configuration can check against them without importing the storage.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

# The kinds of rows in `product_changes`: a product first seen, a field changed, a product no
# longer listed, listed again, and linked to another ornament (christmas_spiders.catalog:
# field `ornament_id`, the old and the new ornament id; subscribers receive it by default).
RELINKED = "relinked"
CHANGE_KINDS = ("listed", "changed", "delisted", "relisted", RELINKED)

# A crawl run's health verdict (christmas_spiders.health): a `product_changes` row without a
# product, written once when a vendor's run is suspect and once when the vendor is healthy
# again. Subscribers receive it only when they ask for it (kinds or the crawl_health rule).
HEALTH_KIND = "crawl_health"
EVENT_KINDS = (*CHANGE_KINDS, HEALTH_KIND)

# Columns of `products` whose changes the history trigger can record.
AUDITABLE_FIELDS = (
    "price",
    "regular_price",
    "availability",
    "availability_text",
    "name",
    "sku",
    "link",
    "image_url",
    "release_year",
    "series",
    "series_number",
    "artist",
    "brand",
    "currency",
)

# A product's availability (`products.availability`), and the values that count as in stock.
AVAILABLE, PREORDER, UNAVAILABLE = "available", "preorder", "unavailable"
AVAILABILITY = (AVAILABLE, PREORDER, UNAVAILABLE)
IN_STOCK = (AVAILABLE, PREORDER)

# Events: what a `changed` row means to a collector (the /v1/changes feed, the web view's
# recent changes, the audit worker's alerts).
PRICE_DROP, PRICE_RISE, RESTOCK, SOLD_OUT = "price_drop", "price_rise", "restock", "sold_out"
EVENTS = (PRICE_DROP, PRICE_RISE, RESTOCK, SOLD_OUT)
# The availability events, as (availability before, availability after): also read as SQL.
STOCK_EVENTS = {RESTOCK: ((UNAVAILABLE,), IN_STOCK), SOLD_OUT: (IN_STOCK, (UNAVAILABLE,))}


def price_of(text: str | None) -> Decimal | None:
    """A price as the history stores it ("17.95"); None for no price, zero or garbage (the
    pipeline stores $0.00 as no price)."""
    if text is None:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() and value > 0 else None


def price_event(old: Decimal | None, new: Decimal | None, suspicious: bool) -> str | None:
    """A price drop or rise; none to or from no price, and none for a price the history
    trigger flagged suspicious (a jump too large to trust)."""
    if suspicious or old is None or new is None or new == old:
        return None
    return PRICE_DROP if new < old else PRICE_RISE


def stock_event(old: str | None, new: str | None) -> str | None:
    """A restock (out of stock → in stock or pre-order) or a sell-out (the reverse)."""
    for event, (before, after) in STOCK_EVENTS.items():
        if old in before and new in after:
            return event
    return None


def change_event(
    kind: str, field: str | None, old_value: str | None, new_value: str | None, suspicious: bool
) -> str | None:
    """The event a `product_changes` row is (one of EVENTS), or None: only `changed` rows of
    the price or the availability are events."""
    if kind != "changed":
        return None
    if field == "price":
        return price_event(price_of(old_value), price_of(new_value), suspicious)
    if field == "availability":
        return stock_event(old_value, new_value)
    return None
