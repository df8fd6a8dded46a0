"""Inline SVG plots for the run report: strings in, a self-contained ``<svg>`` out.

No plotting library and no JavaScript: a plot is a few hundred elements built
here, so the report opens offline and the builders are tested as plain strings.
Every piece of text that reaches the SVG (a fault's name, a reason an agent
sent, a scenario name) goes through :func:`esc`: the report shows what the agent
said, it never runs it.

Each plot carries ``data-plot`` (its name) and each drawn datum a ``data-n``
count on its group, so a test (or a person reading the source) can tell an
empty plot from a full one without parsing coordinates.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from loadcaller.printable import printable

WIDTH, HEIGHT = 860, 300
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 64, 16, 14, 38
MAX_CDF_POINTS = 200  # a CDF line is drawn through at most this many quantiles
SERIES_CLASSES = 8  # CSS classes s0..s7 colour the series


def esc(text: object) -> str:
    """``text`` safe inside an element or a quoted attribute (``<``, ``&``, quotes), its
    control characters and lone surrogates shown as escapes (:func:`printable`)."""
    return html.escape(printable(text), quote=True)


def fmt_num(v: float) -> str:
    """A tick label: 1,500 / 12.5 / 0.25, without trailing noise."""
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.0f}" if v == int(v) else f"{v:.1f}"
    return f"{v:.2f}".rstrip("0").rstrip(".")


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (1, 2, 5 x 10^k steps)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else [0.0]
    raw = (hi - lo) / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    out: list[float] = []
    v = first
    while v <= hi + step * 1e-9 and len(out) < 50:
        out.append(round(v, 10))
        v += step
    return out


@dataclass(frozen=True)
class Scale:
    """A linear map from data values [lo, hi] to pixels [a, b]."""

    lo: float
    hi: float
    a: float
    b: float

    def __call__(self, v: float) -> float:
        span = self.hi - self.lo
        if span <= 0:
            return (self.a + self.b) / 2
        return self.a + (v - self.lo) / span * (self.b - self.a)


def span_of(values: Sequence[float], *, zero: bool = False, pad: float = 0.05) -> tuple[float,
                                                                                        float]:
    """[lo, hi] around ``values`` (from 0 when ``zero``); a flat or empty set gets width."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    lo, hi = min(finite), max(finite)
    if zero:
        lo = min(0.0, lo)
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    return lo, hi + (hi - lo) * pad


@dataclass
class Chart:
    """One plot: axes, shaded windows, series; :meth:`render` gives the ``<svg>``."""

    name: str
    title: str
    x: Scale
    y: Scale
    width: int = WIDTH
    height: int = HEIGHT
    parts: list[str] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)  # (css class, label)

    @classmethod
    def over(cls, name: str, title: str, xspan: tuple[float, float],
             yspan: tuple[float, float], *, width: int = WIDTH, height: int = HEIGHT) -> Chart:
        x = Scale(xspan[0], xspan[1], MARGIN_L, width - MARGIN_R)
        y = Scale(yspan[0], yspan[1], height - MARGIN_B, MARGIN_T)
        return cls(name, title, x, y, width, height)

    def axes(self, xlabel: str, ylabel: str, *,
             xfmt: Callable[[float], str] = fmt_num,
             yfmt: Callable[[float], str] = fmt_num, ygrid: bool = True) -> None:
        """Grid lines, tick labels and the axis titles (no y ticks without ``ygrid``)."""
        x0, x1 = self.x.a, self.x.b
        y0, y1 = self.y.a, self.y.b
        out = ['<g class="axes">']
        for v in nice_ticks(self.y.lo, self.y.hi) if ygrid else []:
            py = self.y(v)
            out.append(f'<line class="grid" x1="{x0:.1f}" x2="{x1:.1f}" y1="{py:.1f}" '
                       f'y2="{py:.1f}"/><text class="tick" x="{x0 - 6:.1f}" y="{py + 4:.1f}" '
                       f'text-anchor="end">{esc(yfmt(v))}</text>')
        for v in nice_ticks(self.x.lo, self.x.hi, 8):
            px = self.x(v)
            out.append(f'<line class="tickmark" x1="{px:.1f}" x2="{px:.1f}" y1="{y0:.1f}" '
                       f'y2="{y0 + 4:.1f}"/><text class="tick" x="{px:.1f}" y="{y0 + 16:.1f}" '
                       f'text-anchor="middle">{esc(xfmt(v))}</text>')
        out.append(f'<line class="axis" x1="{x0:.1f}" x2="{x1:.1f}" y1="{y0:.1f}" '
                   f'y2="{y0:.1f}"/><line class="axis" x1="{x0:.1f}" x2="{x0:.1f}" '
                   f'y1="{y0:.1f}" y2="{y1:.1f}"/>')
        out.append(f'<text class="label" x="{(x0 + x1) / 2:.1f}" y="{self.height - 4}" '
                   f'text-anchor="middle">{esc(xlabel)}</text>')
        out.append(f'<text class="label" transform="translate(14 {(y0 + y1) / 2:.1f}) '
                   f'rotate(-90)" text-anchor="middle">{esc(ylabel)}</text></g>')
        self.parts.append("".join(out))

    def band(self, x0: float, x1: float, label: str, css: str = "band", *, row: int = 0) -> None:
        """A shaded vertical window (a chaos fault active), named at its top (on
        label row ``row``, so that neighbouring windows' names do not overlap)."""
        a, b = self.x(max(x0, self.x.lo)), self.x(min(x1, self.x.hi))
        w = max(2.0, b - a)
        top, bottom = self.y.b, self.y.a
        self.parts.append(
            f'<g class="{esc(css)}"><title>{esc(label)}</title><rect x="{a:.1f}" '
            f'y="{top:.1f}" width="{w:.1f}" height="{bottom - top:.1f}"/>'
            f'<text class="bandlabel" x="{a + 3:.1f}" y="{top + 11 + 12 * row:.1f}">{esc(label)}'
            '</text></g>')

    def points(self, xs: Sequence[float], ys: Sequence[float], css: str, label: str,
               *, r: float = 2.2) -> None:
        """One circle per datum (the caller thins large sets first)."""
        dots = "".join(f'<circle cx="{self.x(x):.1f}" cy="{self.y(y):.1f}" r="{r}"/>'
                       for x, y in zip(xs, ys, strict=True))
        self.parts.append(f'<g class="series {esc(css)}" data-series="{esc(label)}" '
                          f'data-n="{len(xs)}">{dots}</g>')
        self.legend.append((css, label))

    def line(self, xs: Sequence[float], ys: Sequence[float], css: str, label: str,
             *, step: bool = False) -> None:
        """A polyline through the data (a step line for CDFs)."""
        pts: list[str] = []
        prev_y: float | None = None
        for x, y in zip(xs, ys, strict=True):
            px, py = self.x(x), self.y(y)
            if step and prev_y is not None:
                pts.append(f"{px:.1f},{prev_y:.1f}")
            pts.append(f"{px:.1f},{py:.1f}")
            prev_y = py
        self.parts.append(f'<g class="series {esc(css)}" data-series="{esc(label)}" '
                          f'data-n="{len(xs)}"><polyline points="{" ".join(pts)}"/></g>')
        self.legend.append((css, label))

    def note(self, text: str) -> None:
        """A line of text in the plot area (``no data``, say)."""
        cx, cy = (self.x.a + self.x.b) / 2, (self.y.a + self.y.b) / 2
        self.parts.append(f'<text class="note" x="{cx:.1f}" y="{cy:.1f}" '
                          f'text-anchor="middle">{esc(text)}</text>')

    def render(self) -> str:
        legend = "".join(f'<span class="key {esc(c)}" data-series="{esc(label)}">'
                         f'<i></i>{esc(label)}</span>' for c, label in self.legend)
        return (f'<figure class="plot" data-plot="{esc(self.name)}">'
                f'<figcaption>{esc(self.title)}</figcaption>'
                f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {self.width} '
                f'{self.height}" role="img" aria-label="{esc(self.title)}">'
                + "".join(self.parts) + f'</svg><div class="legend">{legend}</div></figure>')


def empty_plot(name: str, title: str, text: str) -> str:
    """A short figure in place of a plot with nothing to draw (``data-n="0"``)."""
    return (f'<figure class="plot empty" data-plot="{esc(name)}"><figcaption>{esc(title)}'
            f'</figcaption><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} 40" '
            f'role="img" aria-label="{esc(title)}"><g class="series" data-n="0"><text '
            f'class="note" x="{WIDTH / 2}" y="24" text-anchor="middle">{esc(text)}</text></g>'
            '</svg></figure>')


def series_class(i: int) -> str:
    return f"s{i % SERIES_CLASSES}"


def quantile_points(values: Sequence[float], limit: int = MAX_CDF_POINTS) -> tuple[list[float],
                                                                                  list[float]]:
    """A CDF of sorted ``values`` as (x, fraction) at most ``limit`` points long.

    Points are taken at evenly spaced ranks, plus the last, so the line keeps the
    tail (the slowest turn is always drawn).
    """
    n = len(values)
    if n == 0:
        return [], []
    if n <= limit:
        idx = list(range(n))
    else:
        idx = sorted({round(i * (n - 1) / (limit - 1)) for i in range(limit)})
    return [values[i] for i in idx], [(i + 1) / n for i in idx]


def cdf_chart(name: str, title: str, series: Sequence[tuple[str, Sequence[float]]],
              xlabel: str = "latency (ms)") -> str:
    """One step line per (label, values) series: the share of turns at or under x."""
    allv = [v for _, vals in series for v in vals if math.isfinite(v)]
    if not allv:
        return empty_plot(name, title, "no data")
    chart = Chart.over(name, title, span_of(allv, zero=True), (0.0, 1.0))
    chart.axes(xlabel, "share at or below", yfmt=lambda v: f"{v:.0%}")
    for i, (label, vals) in enumerate(series):
        ordered = sorted(v for v in vals if math.isfinite(v))
        if ordered:
            xs, ys = quantile_points(ordered)
            chart.line([xs[0], *xs], [0.0, *ys], series_class(i),
                       f"{label} (n={len(ordered)})", step=True)
    return chart.render()


def bar_chart(name: str, title: str, counts: Sequence[tuple[str, int]], *,
              bad: Callable[[str], bool] = lambda _k: False) -> str:
    """Horizontal bars, one per (label, count); ``bad`` labels drawn as failures."""
    rows = [(k, n) for k, n in counts if n > 0]
    height = max(60, 26 * len(rows) + 30)
    top = max((n for _, n in rows), default=1)
    label_w = 190
    x = Scale(0, top, label_w, WIDTH - 70)
    parts = []
    for i, (k, n) in enumerate(rows):
        y = 10 + 26 * i
        css = "bar bad" if bad(k) else "bar"
        w = max(1.0, x(n) - label_w)
        parts.append(f'<g class="{css}"><title>{esc(k)}: {n}</title><text class="tick" '
                     f'x="{label_w - 8}" y="{y + 14}" text-anchor="end">{esc(k)}</text>'
                     f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="18"/>'
                     f'<text class="tick" x="{label_w + w + 6:.1f}" y="{y + 14}">{n:,}</text></g>')
    if not rows:
        parts.append('<text class="note" x="430" y="34" text-anchor="middle">none</text>')
    return (f'<figure class="plot" data-plot="{esc(name)}"><figcaption>{esc(title)}'
            f'</figcaption><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} '
            f'{height}" role="img" aria-label="{esc(title)}"><g class="series" '
            f'data-n="{len(rows)}">{"".join(parts)}</g></svg></figure>')
