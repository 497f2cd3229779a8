"""Line charts as inline SVG text: the report's curves with no plotting library and no external resource.

    svg = line_chart("Loss", {"train/train_loss": [(1, 0.52), (2, 0.31)]})   # an <svg> element, escaped

Each series is a <polyline> whose `data-series` names it and whose `data-points` lists `round:value` pairs, so
a test (or a reader with the page source) can compare the drawing with the numbers it came from.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import Final

PALETTE: Final = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
WIDTH: Final = 640
HEIGHT: Final = 300
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 16, 28, 72  # margins: y labels, title, x labels and the legend


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (1, 2 or 5 times a power of ten apart)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return []
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    start = math.floor(low / step) * step
    ticks = []
    value = start
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 12))
    return ticks


def line_chart(title: str, series: Mapping[str, Sequence[tuple[int, float]]], *, y_label: str = "") -> str:
    """An SVG chart of one or more series over rounds; an empty chart says it has no data."""
    points = [(x, y) for values in series.values() for x, y in values if math.isfinite(y)]
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" data-title="{escape(title)}"><title>{escape(title)}</title>'
        f'<text x="{WIDTH / 2}" y="18" text-anchor="middle" class="chart-title">{escape(title)}</text>'
    )
    if not points:
        return head + f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">no data yet</text></svg>'
    x_low, x_high = min(p[0] for p in points), max(p[0] for p in points)
    y_ticks = nice_ticks(min(p[1] for p in points), max(p[1] for p in points))
    y_low, y_high = y_ticks[0], y_ticks[-1]
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM

    def sx(x: float) -> float:
        return _LEFT + (plot_w * (x - x_low) / (x_high - x_low) if x_high > x_low else plot_w / 2)

    def sy(y: float) -> float:
        return _TOP + plot_h * (1 - (y - y_low) / (y_high - y_low))

    parts = [head, _axes(sx, sy, x_low, x_high, y_ticks, plot_w, plot_h, y_label)]
    for i, (name, values) in enumerate(series.items()):
        colour = PALETTE[i % len(PALETTE)]
        finite = [(x, y) for x, y in values if math.isfinite(y)]
        drawn = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in finite)
        data = " ".join(f"{x}:{y:.6g}" for x, y in finite)
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{drawn}" '
            f'data-series="{escape(name)}" data-points="{data}"><title>{escape(name)}</title></polyline>'
        )
        parts += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{colour}"/>' for x, y in finite]
        legend_y = HEIGHT - 30 + 14 * (i // 3)
        legend_x = _LEFT + (i % 3) * 190
        parts.append(
            f'<rect x="{legend_x}" y="{legend_y - 8}" width="12" height="3" fill="{colour}"/>'
            f'<text x="{legend_x + 16}" y="{legend_y}" class="legend">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _axes(
    sx: Callable[[float], float],
    sy: Callable[[float], float],
    x_low: int,
    x_high: int,
    y_ticks: list[float],
    plot_w: int,
    plot_h: int,
    y_label: str,
) -> str:
    parts = [
        f'<rect x="{_LEFT}" y="{_TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>',
    ]
    for tick in y_ticks:
        y = sy(tick)
        parts.append(
            f'<line x1="{_LEFT}" x2="{_LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e5e5"/>'
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{tick:g}</text>'
        )
    step = max(1, math.ceil((x_high - x_low + 1) / 10))
    for x in range(x_low, x_high + 1, step):
        parts.append(f'<text x="{sx(x):.1f}" y="{_TOP + plot_h + 16}" text-anchor="middle" class="tick">{x}</text>')
    parts.append(
        f'<text x="{_LEFT + plot_w / 2}" y="{_TOP + plot_h + 32}" text-anchor="middle" class="axis">round</text>'
    )
    if y_label:
        parts.append(
            f'<text x="14" y="{_TOP + plot_h / 2}" transform="rotate(-90 14 {_TOP + plot_h / 2})" '
            f'text-anchor="middle" class="axis">{escape(y_label)}</text>'
        )
    return "".join(parts)
