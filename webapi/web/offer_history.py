"""What a SKU's (or a product's) page shows of its offers' history: each offer's lowest and
highest price over the last days, the price chart of every offer, and the lowest and highest at
any shop. Pure: the rows and histories come in, nothing is read here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from christmas_spiders.domain import IN_STOCK
from christmas_spiders.storage import history
from christmas_spiders.vendors import VENDORS
from webapi.web import charts

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
    sku: str | None,
) -> OfferHistory:
    """The figures and the chart of `offers` (rows of product_queries.product_rows)."""
    styles = {vendor: index for index, vendor in enumerate(VENDORS)}
    views, series = [], []
    for offer in offers:
        found = histories[offer.id]
        figures = {days: found.since(now - timedelta(days=days)).figures() for days in WINDOWS}
        views.append({"offer": offer, "figures": figures})
        series.append(
            charts.Series(
                vendor=offer.vendor,
                label=offer.vendor_name,
                product_id=offer.id,
                prices=[
                    charts.PricePoint(point.at, point.price, point.suspicious)
                    for point in found.prices
                ],
                stock=[
                    charts.StockPoint(point.at, point.availability in IN_STOCK)
                    for point in found.availability
                ],
                style=styles.get(offer.vendor, 0),
            )
        )
    _label_repeated_shops(series)
    first = offers[0]
    shops = len({offer.vendor for offer in offers})
    title = f"Price history of {sku or first.name} at {_count(shops, 'shop')}"
    chart = charts.price_chart("price-chart", title, series, now, first.currency)
    return OfferHistory(views, chart, _overall(views))


def _label_repeated_shops(series: list[charts.Series]) -> None:
    """Two listings at one shop (box / no box…) get their product id in the legend."""
    seen: dict[str, int] = {}
    for one in series:
        seen[one.vendor] = seen.get(one.vendor, 0) + 1
    for index, one in enumerate(series):
        if seen[one.vendor] > 1:
            series[index] = replace(one, label=f"{one.label} (#{one.product_id})")


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
