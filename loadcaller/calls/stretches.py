"""The generator's verdict per stretch of time: media clock lag judged over windows.

Why windows: a whole-run lag p99 hides a saturated stretch. A run whose first
40 s saturated and whose next 5 minutes did not has a run p99 under any
threshold, yet every turn measured in those 40 s carries the generator's lag,
not the agent's. So each caller process judges its own media clock over
consecutive windows (default 5 s) with the rule the run used to get: lag p99
over the threshold with at least :data:`MIN_LATE_TICKS` late ticks (one
scheduling hiccup is not saturation), or any skipped tick.

How this works, sans-I/O: the clock hands :meth:`WindowedLag.tick` the instant
each tick began, its lag and the ticks it skipped. Windows sit on a grid that
starts at the first tick (``start + k * window``); a tick past the open
window's end closes it (its lags sorted once for the p99: a few hundred
integers every few seconds). Consecutive saturated windows are kept as one
:class:`Stretch`, so a long run holds a short list; only the open window keeps
per-tick state. The first window counts like any other: the clock starts with
the first call, so its warm-up is calls being set up while others already
speak, and turns measured in a slow start are as wrong as any others.

:func:`merge_stretches` is the master's half: each process's stretches, on the
machine's monotonic clock (as turns.jsonl's instants), unioned into the run's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from loadcaller.timebase import NS_PER_MS, NS_PER_S, to_monotonic_s

WINDOW_S = 5.0
MIN_LATE_TICKS = 10  # late ticks a window needs (200 ms of audio) besides its p99
MAX_STRETCHES = 1000  # per process; beyond it the last stretch grows (never forgotten)
P99_REFRESH = 1000  # ticks (about a second) a live p99 of the open window may lag behind


@dataclass(frozen=True, slots=True)
class Stretch:
    """Consecutive saturated windows of one process: [start_ns, end_ns)."""

    start_ns: int
    end_ns: int
    lag_p99_ns: int  # the worst window's
    windows: int


def lag_p99_ns(lags: list[int]) -> int:
    """The 99th percentile of ``lags`` (nearest rank); 0 for none."""
    if not lags:
        return 0
    ordered = sorted(lags)
    rank = max(1, -(-99 * len(ordered) // 100))  # ceil(0.99 n)
    return ordered[rank - 1]


class WindowedLag:
    """Judges one media clock over consecutive windows (see the module docstring)."""

    def __init__(self, *, threshold_ms: float, window_s: float = WINDOW_S,
                 min_late: int = MIN_LATE_TICKS) -> None:
        if window_s <= 0:
            raise ValueError("the saturation window must be longer than 0 s")
        self.window_ns = round(window_s * NS_PER_S)
        self.threshold_ns = threshold_ms * NS_PER_MS
        self.min_late = min_late
        self.stretches: list[Stretch] = []
        self.judged = 0  # windows closed
        self.saturated_windows = 0
        self.last_saturated = False  # the last closed window's verdict
        self._start: int | None = None  # the open window's start
        self._lags: list[int] = []
        self._late = 0
        self._skipped = 0
        self._p99_cache = (-1, 0)  # (ticks, p99) of the open window

    # ---- input ------------------------------------------------------------------

    def tick(self, t_ns: int, lag_ns: int, skipped: int = 0) -> None:
        """One tick that began at ``t_ns``, ``lag_ns`` after its deadline."""
        if self._start is None:
            self._start = t_ns
        elif t_ns >= self._start + self.window_ns:
            self._close()
            # a stall longer than a window leaves empty windows: the next one holds t_ns
            self._start += (t_ns - self._start) // self.window_ns * self.window_ns
        self._lags.append(lag_ns)
        if lag_ns > self.threshold_ns:
            self._late += 1
        self._skipped += skipped

    def _saturated(self) -> bool:
        """The open window's verdict so far, without sorting: its p99 is over the
        threshold exactly when more lags than its top 1 % (nearest rank) are."""
        if self._skipped:
            return True
        n = len(self._lags)
        over_p99 = n - max(1, -(-99 * n // 100)) + 1
        return n > 0 and self._late >= max(self.min_late, over_p99)

    def _verdict(self, exact: bool = True) -> tuple[bool, int]:
        """(saturated, lag p99). Not ``exact`` (the live questions, asked at every call's
        end): the open window's p99 as of up to ``P99_REFRESH`` ticks ago, since sorting
        a saturated window's lags at each of 50 call ends a second cost 2-7 % of a core
        just when the generator had none to spare."""
        if not self._saturated():
            return False, 0
        n = len(self._lags)
        cached_n, p99 = self._p99_cache
        if cached_n < 0 or (cached_n != n and (exact or n - cached_n >= P99_REFRESH)):
            p99 = lag_p99_ns(self._lags)
            self._p99_cache = (n, p99)
        return True, p99

    def _close(self) -> None:
        assert self._start is not None
        saturated, p99 = self._verdict()
        self.judged += 1
        self.last_saturated = saturated
        if saturated:
            self.saturated_windows += 1
            self._add(self.stretches, Stretch(self._start, self._start + self.window_ns, p99, 1))
        self._lags, self._late, self._skipped = [], 0, 0
        self._p99_cache = (-1, 0)

    @staticmethod
    def _add(out: list[Stretch], s: Stretch) -> None:
        last = out[-1] if out else None
        if last is not None and (s.start_ns <= last.end_ns or len(out) >= MAX_STRETCHES):
            out[-1] = Stretch(last.start_ns, max(last.end_ns, s.end_ns),
                              max(last.lag_p99_ns, s.lag_p99_ns), last.windows + s.windows)
        else:
            out.append(s)

    # ---- questions ----------------------------------------------------------------

    def open_window(self) -> Stretch | None:
        """The open window so far, as a stretch when it is saturated already."""
        if self._start is None or not self._lags:
            return None
        saturated, p99 = self._verdict(exact=False)
        return Stretch(self._start, self._start + self.window_ns, p99, 1) if saturated else None

    def saturated_now(self) -> bool:
        """The live verdict: the open window so far, or the last closed one, saturated."""
        return self.last_saturated or self.open_window() is not None

    def all_stretches(self) -> list[Stretch]:
        """The closed windows' stretches plus the open window's, if saturated so far."""
        out = list(self.stretches)
        current = self.open_window()
        if current is not None:
            self._add(out, current)
        return out

    def saturated_between(self, t0_ns: int, t1_ns: int,
                          stretches: list[Stretch] | None = None) -> bool:
        """Was any window overlapping [t0_ns, t1_ns] saturated (the open one: so far)?

        ``stretches``: :meth:`all_stretches`, when the caller asks for many spans at once.
        """
        lo, hi = min(t0_ns, t1_ns), max(t0_ns, t1_ns)
        found = self.all_stretches() if stretches is None else stretches
        return any(s.start_ns <= hi and lo < s.end_ns for s in found)


def merge_stretches(by_process: Mapping[str, Iterable[Stretch]]) -> list[dict[str, object]]:
    """The run's saturated stretches: every process's, overlapping ones unioned.

    Each is ``{from, to, processes, lag_p99_ms}`` with instants in seconds on the
    machine's monotonic clock (turns.jsonl's); ``processes`` names the processes
    saturated in it, ``lag_p99_ms`` is the worst window's.
    """
    items = sorted((s.start_ns, s.end_ns, s.lag_p99_ns, p)
                   for p, ss in by_process.items() for s in ss)
    merged: list[tuple[int, int, int, set[str]]] = []
    for start, end, p99, proc in items:
        if merged and start <= merged[-1][1]:
            a, b, worst, procs = merged[-1]
            merged[-1] = (a, max(b, end), max(worst, p99), procs | {proc})
        else:
            merged.append((start, end, p99, {proc}))
    return [{"from": round(to_monotonic_s(a), 3), "to": round(to_monotonic_s(b), 3),
             "processes": sorted(procs), "lag_p99_ms": round(worst / NS_PER_MS, 3)}
            for a, b, worst, procs in merged]
