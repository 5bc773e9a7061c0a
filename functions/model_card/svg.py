"""Small SVG primitives for the model card's charts: a document, text, lines, a plot frame.

Every string argument is escaped here (`markup.text`) and every coordinate is formatted with
one decimal, so callers pass plain values and never build markup from report data themselves.
The documents have no XML prolog, ids, scripts, styles or external references: they are valid
standalone ``.svg`` files and can be inlined into an HTML page as they are.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Iterable, Sequence

from functions.model_card.markup import text

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
GRID, AXIS, INK, MUTED = "#e6e6e6", "#888888", "#1a1a1a", "#5a5a5a"


def f(value: float) -> str:
    """A coordinate: one decimal, no exponent."""
    return f"{value:.1f}"


def document(kind: str, width: float, height: float, label: str, body: Iterable[str]) -> str:
    """An ``<svg>`` of class ``chart <kind>`` with `label` as its accessible name and tooltip."""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart {text(kind)}" width="{f(width)}" height="{f(height)}" '
        f'viewBox="0 0 {f(width)} {f(height)}" role="img" aria-label="{text(label)}" font-family="{FONT}" '
        f'font-size="11" fill="{INK}"><title>{text(label)}</title>' + "".join(body) + "</svg>"
    )


def label(x: float, y: float, content: str, *, anchor: str = "start", size: float | None = None, weight: str | None = None,
          fill: str | None = None, rotate: float | None = None, css: str | None = None, limit: int | None = None) -> str:
    """A ``<text>`` at (x, y), vertically centred on y; `rotate` degrees about (x, y)."""
    attributes = [f'x="{f(x)}"', f'y="{f(y)}"', 'dy="0.35em"', f'text-anchor="{anchor}"']
    if size is not None:
        attributes.append(f'font-size="{f(size)}"')
    if weight:
        attributes.append(f'font-weight="{weight}"')
    if fill:
        attributes.append(f'fill="{fill}"')
    if rotate is not None:
        attributes.append(f'transform="rotate({f(rotate)} {f(x)} {f(y)})"')
    if css:
        attributes.append(f'class="{text(css)}"')
    return f"<text {' '.join(attributes)}>{text(content, limit)}</text>"


def line(x1: float, y1: float, x2: float, y2: float, stroke: str, *, width: float = 1, dash: str | None = None) -> str:
    dashed = f' stroke-dasharray="{dash}"' if dash else ""
    return f'<line x1="{f(x1)}" y1="{f(y1)}" x2="{f(x2)}" y2="{f(y2)}" stroke="{stroke}" stroke-width="{f(width)}"{dashed}/>'


def polyline(points: Sequence[tuple[float, float]], stroke: str, *, width: float = 2, dash: str | None = None, css: str | None = None) -> str:
    dashed = f' stroke-dasharray="{dash}"' if dash else ""
    named = f' class="{text(css)}"' if css else ""
    coordinates = " ".join(f"{f(x)},{f(y)}" for x, y in points)
    return f'<polyline points="{coordinates}" fill="none" stroke="{stroke}" stroke-width="{f(width)}"{dashed}{named}/>'


def circle(x: float, y: float, r: float, fill: str, stroke: str, tooltip: str | None = None) -> str:
    inner = f"<title>{text(tooltip)}</title>" if tooltip else ""
    return f'<circle cx="{f(x)}" cy="{f(y)}" r="{f(r)}" fill="{fill}" stroke="{stroke}" stroke-width="1.2">{inner}</circle>'


def rect(x: float, y: float, width: float, height: float, fill: str, stroke: str = "none", stroke_width: float = 1) -> str:
    return (f'<rect x="{f(x)}" y="{f(y)}" width="{f(width)}" height="{f(height)}" fill="{fill}" '
            f'stroke="{stroke}" stroke-width="{f(stroke_width)}"/>')


def unavailable(kind: str, title: str, message: str) -> str:
    """A small chart that says why it has nothing to show (older version, no calibration, …)."""
    lines = textwrap.wrap(message, 52) or [""]
    height = 44 + 16 * len(lines)
    body = [rect(0.5, 0.5, 339, height - 1, "#fafafa", "#d0d0d0"), label(12, 18, title, weight="600")]
    body += [label(12, 40 + 16 * i, content, fill=MUTED, css="note") for i, content in enumerate(lines)]
    return document(f"{kind} unavailable", 340, height, f"{title}: {message}", body)


@dataclass(frozen=True)
class Frame:
    """A plot area: data (x0..x1, y0..y1) mapped onto pixels (left, top, width, height), y up."""

    left: float
    top: float
    width: float
    height: float
    x0: float = 0.0
    x1: float = 1.0
    y0: float = 0.0
    y1: float = 1.0

    def x(self, value: float) -> float:
        share = (min(max(value, self.x0), self.x1) - self.x0) / (self.x1 - self.x0)
        return self.left + share * self.width

    def y(self, value: float) -> float:
        share = (min(max(value, self.y0), self.y1) - self.y0) / (self.y1 - self.y0)
        return self.top + (1 - share) * self.height

    @property
    def bottom(self) -> float:
        return self.top + self.height

    @property
    def right(self) -> float:
        return self.left + self.width

    def axes(self, x_ticks: Sequence[float], y_ticks: Sequence[float], x_title: str, y_title: str, tick_format: str = "{:g}") -> list[str]:
        """Grid lines, tick labels, the frame and both axis titles."""
        parts = []
        for tick in x_ticks:
            parts += [line(self.x(tick), self.top, self.x(tick), self.bottom, GRID),
                      label(self.x(tick), self.bottom + 10, tick_format.format(tick), anchor="middle", fill=MUTED, size=10)]
        for tick in y_ticks:
            parts += [line(self.left, self.y(tick), self.right, self.y(tick), GRID),
                      label(self.left - 5, self.y(tick), tick_format.format(tick), anchor="end", fill=MUTED, size=10)]
        parts.append(rect(self.left, self.top, self.width, self.height, "none", AXIS))
        parts.append(label(self.left + self.width / 2, self.bottom + 26, x_title, anchor="middle"))
        parts.append(label(self.left - 32, self.top + self.height / 2, y_title, anchor="middle", rotate=-90))
        return parts
