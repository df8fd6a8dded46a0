"""The report's plots, from a :class:`~loadcaller.report.data.RunData`.

Time on every x axis is seconds since the run's first call started. The chaos
windows are read off the turns themselves (each turn lists the faults active
while it ran), per fault name: a window runs from the first to the last turn a
fault touched, and ends where a turn without it comes between. That is the same
evidence summary.json's ``phases`` come from, so shading and phase table agree.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from loadcaller.report.data import RunData, Turn
from loadcaller.report.svg import Chart, cdf_chart, empty_plot, esc, fmt_num, span_of

MAX_POINTS = 3000  # latency-over-time dots drawn; more are thinned evenly
ROLLING_STEPS = 120  # evaluation points of the rolling p50/p95 lines
MAX_SERIES = 8  # CDF lines per plot; further turn indices are merged
MERGE_GAP_S, MERGE_GAP_SHARE = 1.0, 0.01  # a fault's windows closer than this are one
MAX_WINDOWS = 40  # chaos windows shaded at most (the earliest)


@dataclass(frozen=True)
class Window:
    """A stretch of the run during which one fault was active."""

    name: str
    t0: float
    t1: float


def chaos_windows(turns: Sequence[Turn]) -> list[Window]:
    """Per fault, the stretches of consecutive turns (in time) that it touched."""
    ordered = sorted(turns, key=lambda t: t.t)
    open_: dict[str, list[float]] = {}
    out: list[Window] = []
    for turn in ordered:
        active = set(turn.faults)
        for name in [n for n in open_ if n not in active]:
            t0, t1 = open_.pop(name)
            out.append(Window(name, t0, t1))
        for name in active:
            if name in open_:
                open_[name][1] = turn.t
            else:
                open_[name] = [turn.t, turn.t]
    out.extend(Window(n, t0, t1) for n, (t0, t1) in open_.items())
    if ordered:  # turns that straddle a fault's start or end interleave: close the gaps
        span = ordered[-1].t - ordered[0].t
        out = merge_windows(out, max(MERGE_GAP_S, span * MERGE_GAP_SHARE))
    return sorted(out, key=lambda w: (w.t0, w.name))[:MAX_WINDOWS]


SATURATED = "generator saturated"


def saturated_stretches(summary: dict[str, Any]) -> list[Window]:
    """summary.json's saturated stretches of the generator (instants as turns'), as windows."""
    gen = summary.get("generator")
    rows = gen.get("saturated_windows") if isinstance(gen, dict) else None
    out = []
    for w in rows if isinstance(rows, list) else []:
        a, b = (w.get("from"), w.get("to")) if isinstance(w, dict) else (None, None)
        if isinstance(a, int | float) and isinstance(b, int | float) and a <= b:
            out.append(Window(SATURATED, float(a), float(b)))
    return out[:MAX_WINDOWS]


def merge_windows(windows: Sequence[Window], gap_s: float) -> list[Window]:
    """Windows of the same fault less than ``gap_s`` apart, joined into one."""
    out: list[Window] = []
    last: dict[str, int] = {}  # fault -> its latest window's index in out
    for w in sorted(windows, key=lambda w: w.t0):
        i = last.get(w.name)
        if i is not None and w.t0 - out[i].t1 < gap_s:
            out[i] = Window(w.name, out[i].t0, max(out[i].t1, w.t1))
        else:
            last[w.name] = len(out)
            out.append(w)
    return out


def percentile(ordered: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of sorted values, nearest rank."""
    k = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[k]


def rolling(points: Sequence[tuple[float, float]], steps: int = ROLLING_STEPS
            ) -> list[tuple[float, float, float]]:
    """(t, p50, p95) over a sliding window of turns, at most ``steps`` points.

    The window holds a fixed number of turns (a 50th of the run, at least 20), not
    a fixed time, so a quiet stretch does not turn into noise.
    """
    pts = sorted(points)
    n = len(pts)
    if n < 5:
        return []
    half = max(10, n // 50) // 2
    out = []
    for i in sorted({round(k * (n - 1) / max(1, steps - 1)) for k in range(steps)}):
        window = sorted(lat for _, lat in pts[max(0, i - half): i + half + 1])
        out.append((pts[i][0], percentile(window, 50), percentile(window, 95)))
    return out


def thin(items: Sequence[Any], limit: int) -> list[Any]:
    """At most ``limit`` of ``items``, evenly spaced (first and last kept)."""
    n = len(items)
    if n <= limit:
        return list(items)
    return [items[round(i * (n - 1) / (limit - 1))] for i in range(limit)]


def latency_over_time(data: RunData, windows: Sequence[Window],
                      saturated: Sequence[Window] = ()) -> tuple[str, int]:
    """Each turn a dot at (end of speech, latency), rolling p50/p95, chaos shaded, and
    the generator's saturated stretches shaded in another colour.

    Unanswered turns sit on the top edge in red. Returns the SVG and the number of
    dots drawn (fewer than the turns when thinned).
    """
    origin = data.t_origin or 0.0
    turns = sorted(data.turns.items, key=lambda t: t.t)
    if not turns:
        return empty_plot("latency-over-time", "Turn latency over time", "no turns measured"), 0
    answered = [(t.t - origin, t.latency_ms) for t in turns if t.latency_ms is not None]
    missed = [t.t - origin for t in turns if t.latency_ms is None]
    shaded = [*windows, *saturated]
    ts = [t.t - origin for t in turns] + [w.t0 - origin for w in shaded] + [
        w.t1 - origin for w in shaded]
    xspan = span_of(ts, zero=True, pad=0.02)
    yspan = span_of([lat for _, lat in answered], zero=True, pad=0.1)
    chart = Chart.over("latency-over-time", "Turn latency over time (each dot a turn, at the "
                       "end of the caller's speech)", xspan, yspan)
    for i, w in enumerate(windows):
        chart.band(w.t0 - origin - 0.25, w.t1 - origin + 0.25, w.name, row=i % 3)
    for w in saturated:  # exact window bounds, on the label row below the faults'
        chart.band(w.t0 - origin, w.t1 - origin, w.name, "band sat", row=3)
    chart.axes("seconds since the first call", "turn latency (ms)")
    shown = thin(answered, MAX_POINTS)
    if shown:
        chart.points([x for x, _ in shown], [y for _, y in shown], "s0", "answered turn",
                     r=2.8)
    if missed:
        top = yspan[1]
        few = thin(missed, MAX_POINTS // 4)
        chart.points(few, [top] * len(few), "miss", "no reply (drawn on top)", r=3)
    roll = rolling(answered)
    if roll:
        chart.line([r[0] for r in roll], [r[1] for r in roll], "p50", "rolling p50")
        chart.line([r[0] for r in roll], [r[2] for r in roll], "p95", "rolling p95")
    return chart.render(), len(shown) + (min(len(missed), MAX_POINTS // 4) if missed else 0)


def phase_label(faults: tuple[str, ...]) -> str:
    return "+".join(faults) if faults else "no fault"


def cdf_by_turn(data: RunData) -> str:
    """Latency CDF per turn index (turn 0, 1, ...; the last line merges the rest)."""
    groups: dict[int, list[float]] = defaultdict(list)
    for t in data.turns.items:
        if t.latency_ms is not None:
            groups[min(t.turn, MAX_SERIES - 1)].append(t.latency_ms)
    series = [(f"turn {k}" + ("+" if k == MAX_SERIES - 1 else ""), v)
              for k, v in sorted(groups.items())]
    return cdf_chart("cdf-by-turn", "Latency distribution by turn", series)


def cdf_by_phase(data: RunData) -> str:
    """Latency CDF per fault set (``no fault`` for turns no fault touched)."""
    groups: dict[tuple[str, ...], list[float]] = defaultdict(list)
    for t in data.turns.items:
        if t.latency_ms is not None:
            groups[t.faults].append(t.latency_ms)
    ordered = sorted(groups.items(), key=lambda kv: (kv[0] != (), kv[0]))[:MAX_SERIES]
    return cdf_chart("cdf-by-phase", "Latency distribution by chaos phase",
                     [(phase_label(k), v) for k, v in ordered])


def setup_greeting_cdf(data: RunData) -> str:
    return cdf_chart("cdf-setup-greeting", "Call setup and greeting latency",
                     [("greeting", data.greeting_ms.items), ("setup", data.setup_ms.items)])


def call_timeline(call: dict[str, Any], turns: Sequence[Turn],
                  windows: Sequence[Window]) -> str:
    """Who spoke when in one call: the caller's and the agent's lanes, faults, outcome.

    Drawn from what the results hold: the end of each utterance, the reply onset
    (the silence between is the turn's latency), the greeting's onset, and where
    newer results record them, the utterance's start and the reply's end.
    """
    t0 = _f(call.get("t_start"))
    t1 = max(_f(call.get("t_end")), t0)
    for t in turns:
        t1 = max(t1, t.t, t.t_reply_onset or t0, t.t_reply_end or t0)
    lanes = ("call", "caller", "agent", "faults")
    height = 50 + 26 * len(lanes)
    chart = Chart.over("timeline", "", (0.0, max(0.5, t1 - t0) * 1.02), (0, len(lanes)),
                       height=height)
    x = chart.x
    parts: list[str] = []

    def lane_y(i: int) -> int:
        return 10 + 26 * i

    for i, name in enumerate(lanes):
        parts.append(f'<text class="tick" x="{x.a - 6:.1f}" y="{lane_y(i) + 14}" '
                     f'text-anchor="end">{name}</text>')

    def bar(lane: int, a: float, b: float, css: str, tip: str, text: str = "") -> None:
        pa, pb = x(max(0.0, a - t0)), x(max(0.0, b - t0))
        w = max(2.0, pb - pa)
        label = (f'<text class="barlabel" x="{pa + 2:.1f}" y="{lane_y(lane) + 13}">'
                 f'{esc(text)}</text>') if text and w > 40 else ""
        parts.append(f'<g class="tl {css}"><title>{esc(tip)}</title><rect x="{pa:.1f}" '
                     f'y="{lane_y(lane)}" width="{w:.1f}" height="18"/>{label}</g>')

    setup = call.get("setup_ms")
    setup_s = _f(setup) / 1000
    outcome = str(call.get("outcome", "?"))
    if isinstance(setup, int | float):
        bar(0, t0, t0 + setup_s, "setup", f"setup {fmt_num(float(setup))} ms", "setup")
        bar(0, t0 + setup_s, t1, "connected" if outcome == "completed" else "connected bad",
            f"{outcome}: {call.get('reason', '')}", outcome)
    else:
        bar(0, t0, t1, "setup bad", f"{outcome}: {call.get('reason', '')}", outcome)
    greeting = call.get("greeting_ms")
    if isinstance(greeting, int | float) and isinstance(setup, int | float):
        g = t0 + setup_s + greeting / 1000
        bar(2, g, g + 0.05, "onset", f"greeting heard after {fmt_num(greeting)} ms", "")
    for t in sorted(turns, key=lambda t: t.t):
        if t.t_speech_start is not None:
            bar(1, t.t_speech_start, t.t, "speech", f"turn {t.turn}: caller speaking",
                f"turn {t.turn}")
        else:
            bar(1, t.t - 0.04, t.t, "speech", f"turn {t.turn}: caller stopped speaking")
        if t.t_reply_onset is not None:
            bar(2, t.t, t.t_reply_onset, "wait", f"turn {t.turn}: {fmt_num(t.latency_ms or 0)}"
                f" ms until the reply ({t.outcome})", f"{fmt_num(t.latency_ms or 0)} ms")
            end = t.t_reply_end if t.t_reply_end is not None else t.t_reply_onset + 0.05
            bar(2, t.t_reply_onset, end, "reply", f"turn {t.turn}: agent replies")
        else:
            bar(2, t.t, t.t + 0.3, "wait bad", f"turn {t.turn}: {t.outcome}", t.outcome)
    for w in windows:
        if w.t1 >= t0 and w.t0 <= t1:
            bar(3, max(w.t0, t0), min(w.t1, t1), "fault", f"{w.name} active", w.name)
    chart.parts.append("".join(parts))
    chart.axes("seconds since the call started", "", ygrid=False)
    return chart.render()


def _f(v: Any) -> float:
    return float(v) if isinstance(v, int | float) and math.isfinite(v) else 0.0
