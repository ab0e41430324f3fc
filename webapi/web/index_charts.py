"""The year index's charts (the market pages), as geometry for `templates/web/_index_chart.html`.

A line per year of its daily index (chain-linked, 100 on the window's first day: see
webapi.market.year_index), straight from day to day and broken on a day no ornament was
priced; under the plot, when asked, a bar a day of the ornaments behind the point: priced
(light) and matched with the day before (dark), which is what the step compared.

Three charts: `year_chart` (one year, every point marked, its bars; WIDE and NARROW layouts),
`years_chart` (a line per year and a legend, for comparing years; WIDE and NARROW) and
`small_chart` (one year in the `SMALL` layout, for small multiples, which fits a phone and a
column of a desktop's grid alike). The x axis starts on the first day any year had a priced
ornament (the index is still 100 there: nothing was matched before it), two days at least, each
day its own width with its point, bar and tick in the middle. Scales, date ticks, layouts, the
legend and the frame are the price chart's (`charts`).

Pure functions of their input, no I/O: the template does the escaping.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from itertools import pairwise

from webapi.web.charts import NARROW, WIDE, Frame, Layout, Tick, legend, nice_scale, time_ticks

SMALL = Layout("small", 380, 220, 56, 14, 10, 44, legend_left=8, x_ticks=4)
STYLES = 10  # line colours and dashes of the style sheet (y0 … y9)
COUNT_CAPTION, COUNT_HEIGHT, COUNT_GAP = 16, 40, 8  # the bars under the plot
_MIN_SHOWN = timedelta(days=1)  # two days at least
_DAY = timedelta(days=1)
_CHAR_WIDTH = 7  # of a tick label, roughly, at 12 px


@dataclass(frozen=True)
class IndexPoint:
    day: date
    index: Decimal  # 100 on the window's first day
    ornaments: int  # priced that day
    matched: int  # priced that day and the day before: the step's


@dataclass(frozen=True)
class IndexSeries:
    """One year's index over the window, a point a day, oldest first."""

    label: str
    points: Sequence[IndexPoint]
    link: str | None = None  # its own page
    style: int = 0


@dataclass(frozen=True)
class Mark:
    x: float
    y: float
    point: IndexPoint


@dataclass(frozen=True)
class Line:
    label: str
    style: int
    path: str  # SVG path data
    marks: list[Mark]  # every drawn point, or (`marks=False`) the ones no segment shows
    last: IndexPoint | None  # the last priced point
    link: str | None


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    priced_y: float  # top of the light bar
    matched_y: float  # top of the dark one
    point: IndexPoint


@dataclass(frozen=True)
class IndexChart(Frame):
    lines: list[Line]
    bars: list[Bar]
    bars_top: float  # the count band, under the plot's axis labels
    bars_most: int  # the count a full bar stands for
    start: date
    end: date
    layout: str = WIDE.name
    narrow: IndexChart | None = None

    @property
    def empty(self) -> bool:
        return not any(line.last for line in self.lines)

    @property
    def bars_bottom(self) -> float:
        return self.bars_top + COUNT_HEIGHT


def year_chart(chart_id: str, title: str, series: IndexSeries) -> IndexChart:
    """One year's index, every point marked, with the bars of its ornaments; wide and narrow."""
    wide = _chart(chart_id, title, [series], WIDE, marks=True, bars=True, keyed=False)
    narrow = _chart(
        f"{chart_id}-narrow", title, [series], NARROW, marks=True, bars=True, keyed=False
    )
    return replace(wide, narrow=narrow)


def years_chart(chart_id: str, title: str, series: Sequence[IndexSeries]) -> IndexChart:
    """A line per year and a legend, for comparing years; wide and narrow."""
    wide = _chart(chart_id, title, series, WIDE, marks=False, bars=False, keyed=True)
    narrow = _chart(
        f"{chart_id}-narrow", title, series, NARROW, marks=False, bars=False, keyed=True
    )
    return replace(wide, narrow=narrow)


def small_chart(chart_id: str, title: str, series: IndexSeries) -> IndexChart:
    """One year in the small layout (small multiples), with the bars of its ornaments."""
    return _chart(chart_id, title, [series], SMALL, marks=False, bars=True, keyed=False)


def _chart(
    chart_id: str,
    title: str,
    series: Sequence[IndexSeries],
    layout: Layout,
    *,
    marks: bool,
    bars: bool,
    keyed: bool,
) -> IndexChart:
    start, end = _shown_days(series)
    shown = [
        [point for point in one.points if start <= point.day <= end and point.ornaments]
        for one in series
    ]
    values = [point.index for points in shown for point in points]
    low, high, step = nice_scale(min(values, default=None), max(values, default=None))
    left, right = layout.margin_left, layout.width - layout.margin_right
    entries = [(one.label, one.style % STYLES, None, False) for one in series]
    laid, legend_bottom = legend(entries, layout.legend_left, layout.width - layout.legend_left)
    top = (legend_bottom if keyed else 0) + layout.margin_top
    bottom = layout.height - layout.margin_bottom
    # A day spans its width of the axis, its point and bar in the middle, its tick under them.
    axis_start = _midnight(min(start, end - _MIN_SHOWN))
    axis_end = _midnight(end) + _DAY
    span = (axis_end - axis_start).total_seconds()

    def x_of(day: date) -> float:
        moment = _midnight(day) + _DAY / 2
        return round(left + (moment - axis_start).total_seconds() / span * (right - left), 1)

    def y_of(value: Decimal) -> float:
        return round(bottom - float(value - low) / float(high - low) * (bottom - top), 1)

    lines = [
        _line(one, points, x_of, y_of, marks) for one, points in zip(series, shown, strict=True)
    ]
    bars_top = layout.height + COUNT_CAPTION
    drawn_bars: list[Bar] = []
    most = 0
    if bars and len(series) == 1:
        counted = [p for p in series[0].points if start <= p.day <= end]
        most = max((p.ornaments for p in counted), default=0)
        width = max(round((right - left) / (span / _DAY.total_seconds()) * 0.7, 1), 1.0)
        drawn_bars = [
            Bar(
                round(x_of(p.day) - width / 2, 1),
                width,
                _bar_top(p.ornaments, most, bars_top),
                _bar_top(p.matched, most, bars_top),
                p,
            )
            for p in counted
        ]
    decimals = max(0, -step.normalize().as_tuple().exponent)
    return IndexChart(
        id=chart_id,
        title=title,
        description=_describe(series, shown, start, end),
        width=layout.width,
        height=bars_top + COUNT_HEIGHT + COUNT_GAP if drawn_bars else layout.height,
        left=left,
        right=right,
        top=top,
        bottom=bottom,
        x_ticks=[
            Tick(x_of(moment.date()), label)
            for moment, label in time_ticks(axis_start, axis_end - _DAY, layout.x_ticks, _DAY)
            if x_of(moment.date()) + len(label) * _CHAR_WIDTH / 2 <= layout.width
        ],
        y_ticks=[
            Tick(y_of(low + step * n), f"{low + step * n:.{decimals}f}")
            for n in range(int((high - low) / step) + 1)
        ],
        x_label="Day (UTC)",
        y_label="Index",
        legend=laid if keyed else [],
        lines=lines,
        bars=drawn_bars,
        bars_top=bars_top,
        bars_most=most,
        start=start,
        end=end,
        layout=layout.name,
    )


def _shown_days(series: Sequence[IndexSeries]) -> tuple[date, date]:
    """From the first day any year had a priced ornament (else the window's first) to the
    window's last."""
    days = [point.day for one in series for point in one.points]
    if not days:
        today = datetime.now(UTC).date()
        return today, today
    priced = [point.day for one in series for point in one.points if point.ornaments]
    return min(priced or days), max(days)


def _line(one: IndexSeries, points: list[IndexPoint], x_of, y_of, marks: bool) -> Line:
    """A segment from each day to the next priced one; a day without a priced ornament breaks
    the line."""
    path: list[str] = []
    joined: set[date] = set()
    for before, after in pairwise(points):
        if after.day - before.day == timedelta(days=1):
            if before.day not in joined:
                path.append(f"M{x_of(before.day)},{y_of(before.index)}")
            path.append(f"L{x_of(after.day)},{y_of(after.index)}")
            joined |= {before.day, after.day}
    return Line(
        label=one.label,
        style=one.style % STYLES,
        path="".join(path),
        marks=[
            Mark(x_of(point.day), y_of(point.index), point)
            for point in points
            if marks or point.day not in joined
        ],
        last=points[-1] if points else None,
        link=one.link,
    )


def _bar_top(count: int, most: int, bars_top: float) -> float:
    return round(bars_top + COUNT_HEIGHT - (count / most * COUNT_HEIGHT if most else 0), 1)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _describe(
    series: Sequence[IndexSeries], shown: list[list[IndexPoint]], start: date, end: date
) -> str:
    parts = []
    for one, points in zip(series, shown, strict=True):
        if not points:
            parts.append(f"{one.label}: no ornament priced")
            continue
        lowest = min(points, key=lambda point: point.index)
        highest = max(points, key=lambda point: point.index)
        parts.append(
            f"{one.label}: {points[-1].index} on {points[-1].day} over {points[-1].ornaments} "
            f"ornament(s), lowest {lowest.index}, highest {highest.index}"
        )
    return (
        f"Price index, 100 on the window's first day, from {start} to {end} (UTC), a line per "
        "year. " + "; ".join(parts) + "."
    )
