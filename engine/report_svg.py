"""Small SVG charts drawn by hand: the dashboard page must open anywhere, offline, with no CDN.

Two kinds are enough for the dashboards: a line chart (series over time or over model
versions, with marked points such as promotions) and a stacked bar chart (verdicts per
group). Each returns one ``<svg>`` element as text, sized by its ``viewBox`` so it scales with
the page. Missing values (None, NaN) are gaps, never zeros.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape

PALETTE = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974", "#64B5CD")
WIDTH, HEIGHT = 640, 280
LEFT, RIGHT, TOP, BOTTOM = 60, 150, 34, 42  # the plot area's margins; the legend sits on the right

X = float | datetime


@dataclass(frozen=True)
class Mark:
    """A point to mark on a line chart (a promotion), with a label shown on hover."""

    x: X
    y: float
    label: str


def line_chart(
    series: Mapping[str, Sequence[tuple[X, float | None]]],
    *,
    title: str,
    y_label: str,
    marks: Sequence[Mark] = (),
    x_labels: Mapping[float, str] | None = None,  # category labels for numeric x (model versions)
    y_from_zero: bool = True,
) -> str:
    """Series as lines with dots; ``marks`` as stars. An empty chart says there is no data yet."""
    points = {name: [(x, y) for x, y in values if _finite(y)] for name, values in series.items()}
    points = {name: values for name, values in points.items() if values}
    if not points:
        return _empty(title)
    xs = [_x(x) for values in points.values() for x, _ in values] + [_x(m.x) for m in marks]
    ys = [float(y) for values in points.values() for _, y in values] + [m.y for m in marks]  # type: ignore[arg-type]
    x_time = any(isinstance(x, datetime) for values in points.values() for x, _ in values)
    x0, x1 = _pad(min(xs), max(xs))
    y0, y1 = (0.0 if y_from_zero and min(ys) >= 0 else min(ys)), max(ys)
    y0, y1 = _nice_range(y0, y1)
    plot = _Plot(x0, x1, y0, y1)
    parts = [_frame(title, y_label), plot.y_axis()]
    parts.append(plot.x_axis_time() if x_time else plot.x_axis_labels(x_labels or {}))
    for i, (name, values) in enumerate(sorted(points.items())):
        colour = PALETTE[i % len(PALETTE)]
        ordered = sorted(values, key=lambda v: _x(v[0]))
        coords = [(plot.px(_x(x)), plot.py(float(y))) for x, y in ordered]  # type: ignore[arg-type]
        if len(coords) > 1:
            path = " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in coords)
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        for (cx, cy), (_, y) in zip(coords, ordered, strict=True):
            tip = f"{escape(name)}: {_fmt(float(y))}"  # type: ignore[arg-type]
            parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3" fill="{colour}"><title>{tip}</title></circle>')
        parts.append(_legend_item(i, name, colour))
    for mark in marks:
        cx, cy = plot.px(_x(mark.x)), plot.py(mark.y)
        parts.append(
            f'<path d="{_star(cx, cy, 8)}" fill="#F2C14E" stroke="#7A5C00" stroke-width="1">'
            f"<title>{escape(mark.label)}</title></path>"
        )
    if marks:
        parts.append(_legend_item(len(points), "promoted", "#F2C14E", star=True))
    return _svg(title, parts)


def bar_chart(categories: Sequence[str], stacks: Mapping[str, Sequence[float]], *, title: str, y_label: str) -> str:
    """Stacked bars: one bar per category, one colour per stack (e.g. a verdict)."""
    if not categories or not stacks:
        return _empty(title)
    totals = [sum(values[i] for values in stacks.values()) for i in range(len(categories))]
    y0, y1 = _nice_range(0.0, max(totals) or 1.0)
    plot = _Plot(-0.5, len(categories) - 0.5, y0, y1)
    parts = [_frame(title, y_label), plot.y_axis(), plot.x_axis_labels({float(i): c for i, c in enumerate(categories)})]
    bar = 0.6 * plot.width / len(categories)
    for i in range(len(categories)):
        base = 0.0
        for j, (name, values) in enumerate(stacks.items()):
            value = values[i]
            if value <= 0:
                continue
            top, bottom = plot.py(base + value), plot.py(base)
            tip = f"{escape(categories[i])}: {escape(name)} {_fmt(value)}"
            parts.append(
                f'<rect x="{plot.px(i) - bar / 2:.1f}" y="{top:.1f}" width="{bar:.1f}" height="{bottom - top:.1f}" '
                f'fill="{PALETTE[j % len(PALETTE)]}"><title>{tip}</title></rect>'
            )
            base += value
    for j, name in enumerate(stacks):
        parts.append(_legend_item(j, name, PALETTE[j % len(PALETTE)]))
    return _svg(title, parts)


class _Plot:
    """Maps data coordinates to the plot area's pixels and draws its axes."""

    def __init__(self, x0: float, x1: float, y0: float, y1: float) -> None:
        self.x0, self.x1, self.y0, self.y1 = x0, x1, y0, y1
        self.width = WIDTH - LEFT - RIGHT
        self.height = HEIGHT - TOP - BOTTOM

    def px(self, x: float) -> float:
        return LEFT + (x - self.x0) / ((self.x1 - self.x0) or 1.0) * self.width

    def py(self, y: float) -> float:
        return TOP + self.height - (y - self.y0) / ((self.y1 - self.y0) or 1.0) * self.height

    def y_axis(self) -> str:
        parts = [f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + self.height}" stroke="#999"/>']
        for tick in _ticks(self.y0, self.y1):
            y = self.py(tick)
            parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + self.width}" y2="{y:.1f}" stroke="#eee"/>')
            parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{_fmt(tick)}</text>')
        return "".join(parts)

    def x_axis_time(self) -> str:
        base = TOP + self.height
        parts = [f'<line x1="{LEFT}" y1="{base}" x2="{LEFT + self.width}" y2="{base}" stroke="#999"/>']
        span = self.x1 - self.x0
        for i in range(5):
            x = self.x0 + span * (i + 0.5) / 5
            label = datetime.fromtimestamp(x, timezone.utc).strftime(_time_format(span))
            parts.append(f'<text x="{self.px(x):.1f}" y="{base + 16}" text-anchor="middle" class="tick">{label}</text>')
        day = datetime.fromtimestamp(self.x0, timezone.utc).strftime("%Y-%m-%d UTC")
        parts.append(f'<text x="{LEFT + self.width}" y="{base + 32}" text-anchor="end" class="tick">{day}</text>')
        return "".join(parts)

    def x_axis_labels(self, labels: Mapping[float, str]) -> str:
        base = TOP + self.height
        parts = [f'<line x1="{LEFT}" y1="{base}" x2="{LEFT + self.width}" y2="{base}" stroke="#999"/>']
        for x, label in labels.items():
            parts.append(
                f'<text x="{self.px(x):.1f}" y="{base + 16}" text-anchor="middle" class="tick">{escape(label)}</text>'
            )
        return "".join(parts)


def _time_format(span_s: float) -> str:
    if span_s < 600:
        return "%H:%M:%S"
    return "%H:%M" if span_s < 2 * 86400 else "%m-%d %H:%M"


def _svg(title: str, parts: Sequence[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}">'
        "<style>text{font:11px sans-serif;fill:#333}.title{font:bold 13px sans-serif}.tick{fill:#666}</style>"
        + "".join(parts)
        + "</svg>"
    )


def _frame(title: str, y_label: str) -> str:
    middle = TOP + (HEIGHT - TOP - BOTTOM) / 2
    return (
        f'<text x="{LEFT}" y="18" class="title">{escape(title)}</text>'
        f'<text x="14" y="{middle:.0f}" transform="rotate(-90 14 {middle:.0f})" '
        f'text-anchor="middle" class="tick">{escape(y_label)}</text>'
    )


def _legend_item(i: int, name: str, colour: str, *, star: bool = False) -> str:
    x, y = WIDTH - RIGHT + 14, TOP + 6 + 16 * i
    symbol = (
        f'<path d="{_star(x + 5, y, 6)}" fill="{colour}" stroke="#7A5C00"/>'
        if star
        else f'<rect x="{x}" y="{y - 5}" width="10" height="10" fill="{colour}"/>'
    )
    return symbol + f'<text x="{x + 15}" y="{y + 4}">{escape(name)}</text>'


def _empty(title: str) -> str:
    return _svg(
        title,
        [
            _frame(title, ""),
            f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" class="tick">no data yet</text>',
        ],
    )


def _star(cx: float, cy: float, r: float) -> str:
    points = []
    for k in range(10):
        radius = r if k % 2 == 0 else r * 0.45
        angle = math.pi / 2 + k * math.pi / 5
        points.append(f"{cx + radius * math.cos(angle):.1f},{cy - radius * math.sin(angle):.1f}")
    return "M" + " L".join(points) + " Z"


def _x(x: X) -> float:
    return x.timestamp() if isinstance(x, datetime) else float(x)


def _pad(lo: float, hi: float) -> tuple[float, float]:
    if hi == lo:
        return lo - 1.0, hi + 1.0
    margin = (hi - lo) * 0.05
    return lo - margin, hi + margin


def _nice_range(lo: float, hi: float) -> tuple[float, float]:
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    step = _step(lo, hi)
    return math.floor(lo / step) * step, math.ceil(hi / step) * step


def _step(lo: float, hi: float, target: int = 5) -> float:
    raw = (hi - lo) / target
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if factor * magnitude >= raw:
            return factor * magnitude
    return 10 * magnitude


def _ticks(lo: float, hi: float) -> list[float]:
    step = _step(lo, hi)
    count = int(round((hi - lo) / step))
    return [lo + i * step for i in range(count + 1)]


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{value:.3g}"
