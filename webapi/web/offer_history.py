"""What an ornament's (or a product's) page shows of its offers' history: each offer's lowest
and highest price over the last days, the price chart with one line per shop and condition, and
the lowest and highest at any shop. Pure: the rows and histories come in, nothing is read here.

A shop that lists one ornament twice in one condition (a listing replaced by a new one, two
boxed listings at once) gets one line: at each moment the best of its listings then — the
cheapest in stock, else the cheapest still listed — in stock while any of them is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from christmas_spiders.domain import IN_STOCK
from christmas_spiders.storage import history
from christmas_spiders.vendors import VENDORS
from webapi.ornament_queries import BOXED
from webapi.web import charts
from webapi.web.formatting import condition_text

WINDOWS = (90, 365)  # days of the lowest / highest figures


@dataclass(frozen=True)
class OfferHistory:
    offers: list[dict[str, Any]]  # each {"offer": row, "figures": {days: Figures}}
    chart: charts.Chart
    overall: dict[int, dict[str, Any]]  # per window: the lowest and highest at any shop


def offer_history(
    offers: Sequence[Any],
    histories: Mapping[int, history.ProductHistory],
    now: datetime,
    subject: str,
) -> OfferHistory:
    """The figures and the chart of `offers` (rows of product_queries.product_rows, in
    OFFER_ORDER); `subject` names them in the chart's title."""
    views = []
    for offer in offers:
        found = histories[offer.id]
        figures = {days: found.since(now - timedelta(days=days)).figures() for days in WINDOWS}
        views.append({"offer": offer, "figures": figures})
    series = [_line(group, histories) for group in _lines(offers)]
    first = offers[0]
    shops = len({offer.vendor for offer in offers})
    title = f"Price history of {subject} at {_count(shops, 'shop')}"
    chart = charts.price_chart("price-chart", title, series, now, first.currency)
    return OfferHistory(views, chart, _overall(views))


def _lines(offers: Sequence[Any]) -> list[list[Any]]:
    """The offers by shop (in the order of VENDORS) and condition (boxed first)."""
    groups: dict[tuple[str, str], list[Any]] = {}
    for offer in offers:
        groups.setdefault((offer.vendor, offer.condition or BOXED), []).append(offer)
    order = {vendor: index for index, vendor in enumerate(VENDORS)}
    return [
        groups[key]
        for key in sorted(groups, key=lambda k: (order.get(k[0], len(order)), k[1] != BOXED, k))
    ]


def _line(group: list[Any], histories: Mapping[int, history.ProductHistory]) -> charts.Series:
    """One shop's line for one condition (module doc)."""
    first = group[0]
    condition = first.condition or BOXED
    label = (
        first.vendor_name
        if condition == BOXED
        else f"{first.vendor_name}, {condition_text(condition)}"
    )
    prices, stock = _merged([histories[offer.id] for offer in group])
    return charts.Series(
        vendor=first.vendor,
        label=label,
        product_id=first.id,
        prices=prices,
        stock=stock,
        style=list(VENDORS).index(first.vendor) if first.vendor in VENDORS else 0,
        hollow=condition != BOXED,
    )


def _merged(
    found: Sequence[history.ProductHistory],
) -> tuple[list[charts.PricePoint], list[charts.StockPoint]]:
    """The price and stock points of the best of several listings at each moment."""
    if len(found) == 1:  # the common case: the listing's own points
        one = found[0]
        return (
            [charts.PricePoint(p.at, p.price, p.suspicious) for p in one.prices],
            [charts.StockPoint(p.at, p.availability in IN_STOCK) for p in one.availability],
        )
    events: list[tuple[datetime, int, int, Any]] = []  # (at, change id, listing, point)
    for index, one in enumerate(found):
        events += [(p.at, p.change_id, index, p) for p in (*one.prices, *one.availability)]
    events.sort(key=lambda event: (event[0], event[1]))
    price: dict[int, history.PricePoint] = {}
    listed: dict[int, str | None] = {}  # listing → its availability; None: delisted
    prices: list[charts.PricePoint] = []
    stock: list[charts.StockPoint] = []
    for position, (at, _, index, point) in enumerate(events):
        if isinstance(point, history.PricePoint):
            price[index] = point
        else:
            listed[index] = point.availability
        if position + 1 < len(events) and events[position + 1][0] == at:
            continue  # several points at one moment: the state after all of them
        best = _best(price, listed)
        if best is not None and (not prices or (prices[-1].price, prices[-1].suspicious) != best):
            prices.append(charts.PricePoint(at, *best))
        in_stock = any(availability in IN_STOCK for availability in listed.values())
        if not stock or stock[-1].in_stock != in_stock:
            stock.append(charts.StockPoint(at, in_stock))
    return prices, stock


def _best(price: Mapping[int, history.PricePoint], listed: Mapping[int, str | None]):
    """(price, suspicious) of the best listing now: in stock before out of stock, then the
    lowest price; None while none is listed with a price."""
    candidates = [
        (listed[index] not in IN_STOCK, point.price, index)
        for index, point in price.items()
        if listed.get(index) is not None and point.price is not None
    ]
    if not candidates:
        return None
    _, _, index = min(candidates)
    return price[index].price, price[index].suspicious


def _overall(views: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Lowest and highest over each window at any shop."""
    result = {}
    for days in WINDOWS:
        figures = [view["figures"][days] for view in views]
        lows = [found.lowest for found in figures if found.lowest is not None]
        highs = [found.highest for found in figures if found.highest is not None]
        result[days] = {"lowest": min(lows, default=None), "highest": max(highs, default=None)}
    return result


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")
