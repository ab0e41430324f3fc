"""The price-history chart of a product page, as geometry for an SVG template.

`price_chart` turns each shop's price points and stock changes into what
`templates/web/_chart.html` draws: one step line per shop (a price holds until it changes, so
the line runs flat and steps at each change), solid while the shop had it in stock and dashed
while it was out of stock or delisted, a break where the shop showed no price, one marker per
price point, and under the plot one lane per shop with a band for each stock-out. Axes carry
nice ticks: prices in steps of 1, 2, 2.5 or 5 × 10ⁿ, dates (UTC) in whole hours, days, weeks,
months or years (`nice_scale`, `time_ticks` and `legend` serve the index charts too,
`index_charts`).

Each chart comes in two layouts, and the style sheet shows the one that fits the screen: `WIDE`
(800 units across) for desktops, `NARROW` (380, fewer date ticks, the legend's long labels on
several lines) for phones, where the wide one would shrink its 12-unit text to 5 px.

Pure functions of their input, no I/O: the template does the escaping.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise


@dataclass(frozen=True)
class Layout:
    name: str  # the SVG's class: the style sheet shows one layout per screen width
    width: int  # of the viewBox, in units of the 12-unit text
    height: int  # without the stock lanes
    margin_left: int
    margin_right: int
    margin_top: int
    margin_bottom: int
    legend_left: int  # where legend rows start
    x_ticks: int  # at most


WIDE = Layout("wide", 800, 300, 80, 24, 16, 52, legend_left=80, x_ticks=7)
# Drawn about 1:1 on a 390 px phone; left room for a price of three digits.
NARROW = Layout("narrow", 380, 320, 70, 12, 12, 52, legend_left=8, x_ticks=4)
LEGEND_ROW = 20  # height of a legend line above the plot
_CHAR_WIDTH = 7  # of a legend label, roughly, at 12 px
_SAMPLE = 36  # a legend entry's line and marker, before its label
LANE_HEIGHT, LANE_GAP, LANE_CAPTION = 8, 6, 10  # the stock lanes under the plot
MARKERS = ("circle", "square", "diamond")
_Y_TICKS = 5
_MIN_SPAN = timedelta(hours=1)
_HOUR, _DAY = 3600, 86400
# Tick steps in seconds; 30 and 365 days stand for calendar months and years (see _x_ticks).
_TIME_STEPS = (
    _HOUR,
    3 * _HOUR,
    6 * _HOUR,
    12 * _HOUR,
    _DAY,
    2 * _DAY,
    7 * _DAY,
    14 * _DAY,
    30 * _DAY,
    91 * _DAY,
    182 * _DAY,
    365 * _DAY,
)


@dataclass(frozen=True)
class PricePoint:
    at: datetime
    price: Decimal | None  # None: the shop showed no price
    suspicious: bool = False


@dataclass(frozen=True)
class StockPoint:
    at: datetime
    in_stock: bool  # False: out of stock, or delisted


@dataclass(frozen=True)
class Series:
    """One shop's offer: its price points and its stock changes, oldest first."""

    vendor: str
    label: str
    product_id: int
    prices: Sequence[PricePoint]
    stock: Sequence[StockPoint]
    style: int = 0  # colour and marker: the shop's place in the list of shops
    hollow: bool = False  # hollow markers, a thinner line: an offer without its box (or tag)


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    at: datetime
    price: Decimal | None
    suspicious: bool


@dataclass(frozen=True)
class Band:
    x: float
    width: float
    start: datetime
    end: datetime


@dataclass(frozen=True)
class DrawnSeries:
    vendor: str
    label: str
    product_id: int
    style: int
    marker: str
    in_stock_path: str  # SVG path data
    out_of_stock_path: str
    points: list[Point]
    bands: list[Band]  # stock-outs, drawn in the series' lane
    lane_y: float
    hollow: bool = False


@dataclass(frozen=True)
class LegendEntry:
    x: float
    y: float  # the middle of its (first) line
    label: str
    style: int | None  # None: the "out of stock" sample
    marker: str | None
    hollow: bool = False
    lines: tuple[str, ...] = ()  # the label, on as many lines as it takes


@dataclass(frozen=True)
class Tick:
    at: float  # x or y in the viewBox
    label: str


@dataclass(frozen=True)
class Frame:
    """What every chart has (the template's `axes` draws it): its SVG's id, title and
    description, its size, the plot's edges, the ticks and labels of its axes, its legend."""

    id: str
    title: str
    description: str
    width: int
    height: int
    left: float
    right: float
    top: float
    bottom: float
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    x_label: str
    y_label: str
    legend: list[LegendEntry]


@dataclass(frozen=True)
class Chart(Frame):
    currency: str
    series: list[DrawnSeries]
    start: datetime
    end: datetime
    layout: str = WIDE.name
    narrow: Chart | None = None  # the same chart laid out for a phone

    @property
    def empty(self) -> bool:
        return not any(series.points for series in self.series)


def price_chart(
    chart_id: str,
    title: str,
    series: Sequence[Series],
    end: datetime,
    currency: str = "USD",
) -> Chart:
    """The chart of `series` from their first point up to `end` (normally now), laid out
    `WIDE`, with its `NARROW` layout beside it."""
    wide = _chart(chart_id, title, series, end, currency, WIDE)
    narrow = _chart(f"{chart_id}-narrow", title, series, end, currency, NARROW)
    return replace(wide, narrow=narrow)


def _chart(
    chart_id: str,
    title: str,
    series: Sequence[Series],
    end: datetime,
    currency: str,
    layout: Layout,
) -> Chart:
    times = [point.at for one in series for point in one.prices]
    start = min(times, default=end - _MIN_SPAN)
    end = max([end, *times])
    if end - start < _MIN_SPAN:
        start = end - _MIN_SPAN
    prices = [point.price for one in series for point in one.prices if point.price is not None]
    low, high, step = nice_scale(min(prices, default=None), max(prices, default=None))
    left, right = layout.margin_left, layout.width - layout.margin_right
    legend, legend_bottom = _legend(series, layout.legend_left, layout.width - layout.legend_left)
    top = legend_bottom + layout.margin_top
    bottom = layout.height - layout.margin_bottom
    span = (end - start).total_seconds()

    def x_of(moment: datetime) -> float:
        return round(left + (moment - start).total_seconds() / span * (right - left), 1)

    def y_of(price: Decimal) -> float:
        return round(bottom - float(price - low) / float(high - low) * (bottom - top), 1)

    drawn = []
    for index, one in enumerate(series):
        lane_y = layout.height + LANE_CAPTION + index * (LANE_HEIGHT + LANE_GAP)
        drawn.append(_draw(one, end, x_of, y_of, bottom, lane_y))
    lanes = len(series) * (LANE_HEIGHT + LANE_GAP)
    y_ticks = [
        Tick(y_of(low + step * n), _money(low + step * n))
        for n in range(int((high - low) / step) + 1)
    ]
    return Chart(
        id=chart_id,
        title=title,
        description=_describe(series, start, end, currency),
        currency=currency,
        width=layout.width,
        height=layout.height + LANE_CAPTION + lanes + LANE_GAP,
        left=left,
        right=right,
        top=top,
        bottom=bottom,
        x_ticks=[
            Tick(x_of(moment), label) for moment, label in time_ticks(start, end, layout.x_ticks)
        ],
        y_ticks=y_ticks,
        x_label="Date (UTC)",
        y_label=f"Price ({currency})",
        legend=legend,
        series=drawn,
        start=start,
        end=end,
        layout=layout.name,
    )


def _draw(one: Series, end: datetime, x_of, y_of, bottom: float, lane_y: float) -> DrawnSeries:
    points = [
        Point(
            x_of(point.at),
            bottom if point.price is None else y_of(point.price),
            point.at,
            point.price,
            point.suspicious,
        )
        for point in one.prices
    ]
    # Flat stretches: each price from its point to the next (the last one up to `end`), cut
    # wherever the stock changed, as (from, to, price, in stock).
    stretches: list[tuple[datetime, datetime, Decimal | None, bool]] = []
    for index, point in enumerate(one.prices):
        until = one.prices[index + 1].at if index + 1 < len(one.prices) else end
        cuts = [change.at for change in one.stock if point.at < change.at < until]
        bounds = [point.at, *cuts, until]
        for begin, finish in pairwise(bounds):
            stretches.append((begin, finish, point.price, _in_stock(one.stock, begin)))
    paths: dict[bool, list[str]] = {True: [], False: []}
    previous: tuple[datetime, Decimal | None] | None = None
    for begin, finish, price, in_stock in stretches:
        if price is not None:
            y = y_of(price)
            path = paths[in_stock]
            stepped = previous is not None and previous[0] == begin and previous[1] is not None
            if stepped and previous[1] != price:
                path.append(f"M{x_of(begin)},{y_of(previous[1])}V{y}")  # the step
            else:
                path.append(f"M{x_of(begin)},{y}")
            path.append(f"H{x_of(finish)}")
        previous = (finish, price)
    return DrawnSeries(
        vendor=one.vendor,
        label=one.label,
        product_id=one.product_id,
        style=one.style,
        marker=MARKERS[one.style % len(MARKERS)],
        in_stock_path="".join(paths[True]),
        out_of_stock_path="".join(paths[False]),
        points=points,
        bands=[
            Band(x_of(begin), round(x_of(finish) - x_of(begin), 1), begin, finish)
            for begin, finish in _stock_outs(one, end)
        ],
        lane_y=lane_y,
        hollow=one.hollow,
    )


def _legend(series: Sequence[Series], left: float, right: float) -> tuple[list[LegendEntry], float]:
    """The price chart's legend: a shop and condition an entry, then "out of stock"."""
    entries: list[tuple[str, int | None, str | None, bool]] = [
        (one.label, one.style, MARKERS[one.style % len(MARKERS)], one.hollow) for one in series
    ]
    entries.append(("out of stock", None, None, False))
    return legend(entries, left, right)


def legend(
    entries: Sequence[tuple[str, int | None, str | None, bool]], left: float, right: float
) -> tuple[list[LegendEntry], float]:
    """Entries (label, style, marker, hollow) left to right from the chart's top, wrapping onto
    a new row where the next one would not fit; a label too long for a row of its own is put on
    several lines. Also the legend's bottom."""
    fits = max(int((right - left - _SAMPLE) // _CHAR_WIDTH), 1)  # characters on a line
    laid: list[LegendEntry] = []
    x, y, row_lines = left, LEGEND_ROW / 2, 1
    for label, style, marker, hollow in entries:
        lines = tuple(textwrap.wrap(label, fits)) or (label,)
        width = _SAMPLE + max(len(line) for line in lines) * _CHAR_WIDTH
        if x > left and (x + width > right or len(lines) > 1):
            x, y, row_lines = left, y + row_lines * LEGEND_ROW, 1
        laid.append(LegendEntry(x, y, label, style, marker, hollow, lines))
        row_lines = max(row_lines, len(lines))
        x += width + 12
    return laid, y + (row_lines - 0.5) * LEGEND_ROW


def _in_stock(stock: Sequence[StockPoint], moment: datetime) -> bool:
    state = True  # before any stock point: nothing says otherwise
    for change in stock:
        if change.at > moment:
            break
        state = change.in_stock
    return state


def _stock_outs(one: Series, end: datetime) -> list[tuple[datetime, datetime]]:
    """The intervals the shop was out of stock (or had delisted the product)."""
    outs: list[tuple[datetime, datetime]] = []
    since: datetime | None = None
    for change in one.stock:
        if not change.in_stock and since is None:
            since = change.at
        elif change.in_stock and since is not None:
            outs.append((since, change.at))
            since = None
    if since is not None:
        outs.append((since, end))
    return outs


def nice_scale(low: Decimal | None, high: Decimal | None) -> tuple[Decimal, Decimal, Decimal]:
    """A price axis from a multiple of a nice step below the lowest price to one above the
    highest, with about _Y_TICKS ticks."""
    if low is None or high is None:
        low, high = Decimal(0), Decimal(10)
    if high - low < Decimal("0.01"):
        low, high = low - max(low / 10, Decimal(1)), high + max(high / 10, Decimal(1))
    raw = float(high - low) / (_Y_TICKS - 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(
        Decimal(str(factor)) * Decimal(str(magnitude))
        for factor in (1, 2, 2.5, 5, 10)
        if factor * magnitude >= raw
    )
    bottom = max(Decimal(0), (low / step).to_integral_value(rounding="ROUND_FLOOR") * step)
    top = (high / step).to_integral_value(rounding="ROUND_CEILING") * step
    if top <= bottom:
        top = bottom + step
    return bottom, top, step


def time_ticks(
    start: datetime, end: datetime, most: int, finest: timedelta = timedelta(hours=1)
) -> list[tuple[datetime, str]]:
    """At most `most` ticks, at whole hours, days, weeks, months or years, `finest` apart at
    least (a day for daily figures)."""
    span = (end - start).total_seconds()
    least = finest.total_seconds()
    step = next((s for s in _TIME_STEPS if s >= least and span / s <= most - 1), None)
    if step is None:  # decades: whole years, every few of them
        years = math.ceil(span / (365 * _DAY) / (most - 1))
        return _calendar_ticks(start, end, months=12 * years)
    if step == 30 * _DAY:
        return _calendar_ticks(start, end, months=1)
    if step >= 91 * _DAY:
        return _calendar_ticks(start, end, months=round(step / (30.4 * _DAY)))
    epoch = datetime(1970, 1, 5, tzinfo=UTC)  # a Monday: weekly ticks fall on Mondays
    first = math.ceil((start - epoch).total_seconds() / step)
    ticks = []
    moment = epoch + timedelta(seconds=first * step)
    label = "%Y-%m-%d" if step >= _DAY else "%m-%d %H:%M"
    while moment <= end:
        ticks.append((moment, moment.strftime(label)))
        moment += timedelta(seconds=step)
    return ticks


def _calendar_ticks(start: datetime, end: datetime, months: int) -> list[tuple[datetime, str]]:
    """The first of every `months`-th month (January for yearly steps) within the span."""
    index = start.year * 12 + start.month - 1
    if start != datetime(start.year, start.month, 1, tzinfo=UTC):
        index += 1
    index = math.ceil(index / months) * months
    ticks = []
    while True:
        moment = datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)
        if moment > end:
            return ticks
        ticks.append((moment, moment.strftime("%Y" if months % 12 == 0 else "%Y-%m")))
        index += months


def _money(price: Decimal) -> str:
    return f"{price:,.2f}"


def _describe(series: Sequence[Series], start: datetime, end: datetime, currency: str) -> str:
    if not any(one.prices for one in series):
        return "No price has been recorded yet."
    parts = []
    for one in series:
        priced = [point.price for point in one.prices if point.price is not None]
        if not priced:
            parts.append(f"{one.label}: no price recorded")
            continue
        outs = len(_stock_outs(one, end))
        parts.append(
            f"{one.label}: {len(one.prices)} price point(s), from {_money(priced[0])} to "
            f"{_money(priced[-1])} {currency}, lowest {_money(min(priced))}, highest "
            f"{_money(max(priced))}" + (f", out of stock {outs} time(s)" if outs else "")
        )
    return (
        f"Price in {currency} at each shop from {start:%Y-%m-%d} to {end:%Y-%m-%d} (UTC), one "
        "step line per shop, dashed while out of stock. " + "; ".join(parts) + "."
    )
