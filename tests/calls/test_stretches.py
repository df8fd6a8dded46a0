"""The media clock judged per window: which windows saturate, where they begin and end."""

from __future__ import annotations

import random

import pytest

from loadcaller.calls import stretches as st
from loadcaller.calls.stretches import (
    MAX_STRETCHES,
    Stretch,
    WindowedLag,
    lag_p99_ns,
    merge_stretches,
)
from loadcaller.timebase import NS_PER_MS, NS_PER_S, to_monotonic_s

MS = NS_PER_MS
TICK = 20 * MS
T0 = 1_000 * NS_PER_S  # an arbitrary first tick instant


def feed(judge: WindowedLag, lags_ms: list[float], *, start: int = T0,
         skipped: dict[int, int] | None = None) -> int:
    """Ticks every 20 ms from ``start`` with these lags; returns the next tick's instant."""
    t = start
    for i, lag in enumerate(lags_ms):
        judge.tick(t, int(lag * MS), (skipped or {}).get(i, 0))
        t += TICK
    return t


def test_p99_is_the_nearest_rank():
    assert lag_p99_ns([]) == 0
    assert lag_p99_ns(list(range(1, 101))) == 99
    assert lag_p99_ns(list(range(1, 251))) == 248  # ceil(0.99 * 250) = 248th
    assert lag_p99_ns([7]) == 7


def test_only_the_late_window_saturates_with_its_exact_bounds():
    judge = WindowedLag(threshold_ms=5.0, window_s=1.0)  # 50 ticks a window
    lags = [0.2] * 50 + [0.2] * 30 + [9.0] * 20 + [0.2] * 50  # window 1 has 20 late ticks
    t = feed(judge, lags)
    judge.tick(t, 0)  # closes window 2
    assert judge.judged == 3 and judge.saturated_windows == 1
    assert judge.stretches == [Stretch(T0 + NS_PER_S, T0 + 2 * NS_PER_S, 9 * MS, 1)]
    assert not judge.saturated_now()  # the last closed window was fine, the open one too
    assert judge.saturated_between(T0 + NS_PER_S, T0 + NS_PER_S)  # its first instant
    assert not judge.saturated_between(T0 + 2 * NS_PER_S, T0 + 3 * NS_PER_S)  # end excluded
    assert judge.saturated_between(T0, T0 + 3 * NS_PER_S)  # a span across it
    assert not judge.saturated_between(T0, T0 + NS_PER_S - 1)


def test_a_hiccup_is_not_saturation_ten_late_ticks_are():
    judge = WindowedLag(threshold_ms=5.0, window_s=1.0)
    t = feed(judge, [0.2] * 41 + [30.0] * 9)  # p99 over, 9 late ticks: a hiccup
    t = feed(judge, [0.2] * 40 + [30.0] * 10, start=t)  # 10 late ticks
    judge.tick(t, 0)
    assert judge.judged == 2
    assert [s.start_ns for s in judge.stretches] == [T0 + NS_PER_S]


def test_ten_late_ticks_under_one_percent_are_not_saturation():
    judge = WindowedLag(threshold_ms=5.0, window_s=30.0)  # 1500 ticks: p99 stays low
    t = feed(judge, [0.2] * 1490 + [9.0] * 10)
    judge.tick(t, 0)
    assert judge.judged == 1 and judge.stretches == []


def test_a_skipped_tick_saturates_its_window_whatever_the_threshold():
    judge = WindowedLag(threshold_ms=1000.0, window_s=1.0)
    t = feed(judge, [0.1] * 100, skipped={75: 15})  # skipped in window 1
    judge.tick(t, 0)
    assert [(s.start_ns - T0) // NS_PER_S for s in judge.stretches] == [1]


def test_consecutive_saturated_windows_are_one_stretch_with_the_worst_p99():
    judge = WindowedLag(threshold_ms=5.0, window_s=1.0)
    t = feed(judge, [0.2] * 50 + [8.0] * 50 + [12.0] * 50 + [0.2] * 50 + [7.0] * 50)
    judge.tick(t, 0)
    assert judge.saturated_windows == 3 and judge.judged == 5
    assert judge.stretches == [Stretch(T0 + NS_PER_S, T0 + 3 * NS_PER_S, 12 * MS, 2),
                               Stretch(T0 + 4 * NS_PER_S, T0 + 5 * NS_PER_S, 7 * MS, 1)]
    assert judge.saturated_now()  # the last closed window saturated


def test_the_open_window_counts_so_far_live_and_for_tags():
    judge = WindowedLag(threshold_ms=5.0, window_s=5.0)
    feed(judge, [0.2] * 20)
    assert judge.open_window() is None and not judge.saturated_now()
    assert judge.all_stretches() == []
    t = feed(judge, [40.0] * 12, start=T0 + 20 * TICK)
    assert judge.judged == 0 and judge.stretches == []  # still open
    assert judge.saturated_now()
    assert judge.all_stretches() == [Stretch(T0, T0 + 5 * NS_PER_S, 40 * MS, 1)]
    assert judge.saturated_between(t, t)


def test_the_first_window_counts_like_any_other():
    judge = WindowedLag(threshold_ms=5.0, window_s=1.0)
    t = feed(judge, [60.0] * 12 + [0.2] * 38 + [0.2] * 50)  # a slow start only
    judge.tick(t, 0)
    assert [s.start_ns for s in judge.stretches] == [T0]


def test_a_stall_longer_than_a_window_lands_on_the_grid():
    judge = WindowedLag(threshold_ms=5.0, window_s=1.0)
    feed(judge, [0.2] * 10)
    judge.tick(T0 + 3 * NS_PER_S + 500 * MS, 0, 120)  # stopped for 3 s: skipped ticks
    judge.tick(T0 + 4 * NS_PER_S + 10 * MS, 0)  # closes the window the stall landed in
    assert judge.judged == 2
    assert judge.stretches == [Stretch(T0 + 3 * NS_PER_S, T0 + 4 * NS_PER_S, 0, 1)]


def test_stretches_are_bounded_by_growing_the_last():
    judge = WindowedLag(threshold_ms=5.0, window_s=0.2)  # 10 ticks a window
    t = T0
    for _ in range(MAX_STRETCHES + 5):  # saturated, fine, saturated, ...
        t = feed(judge, [0.1] * 10, start=t, skipped={0: 1})
        t = feed(judge, [0.1] * 10, start=t)
    judge.tick(t, 0)
    assert len(judge.stretches) == MAX_STRETCHES
    assert judge.saturated_windows == MAX_STRETCHES + 5
    assert judge.stretches[-1].windows == 6 and judge.stretches[-1].end_ns <= t


def test_bad_window():
    with pytest.raises(ValueError, match="longer than 0"):
        WindowedLag(threshold_ms=5.0, window_s=0)


def test_merge_unions_processes_and_keeps_the_worst():
    s = NS_PER_S
    out = merge_stretches({
        "0": [Stretch(T0, T0 + 5 * s, 9 * MS, 1), Stretch(T0 + 20 * s, T0 + 25 * s, 7 * MS, 1)],
        "1": [Stretch(T0 + 3 * s, T0 + 8 * s, 30 * MS, 1)],
        "2": [Stretch(T0 + 8 * s, T0 + 9 * s, 6 * MS, 1)],  # touches: the same stretch
        "3": [],
    })
    assert out == [
        {"from": round(to_monotonic_s(T0), 3), "to": round(to_monotonic_s(T0 + 9 * s), 3),
         "processes": ["0", "1", "2"], "lag_p99_ms": 30.0},
        {"from": round(to_monotonic_s(T0 + 20 * s), 3),
         "to": round(to_monotonic_s(T0 + 25 * s), 3), "processes": ["0"], "lag_p99_ms": 7.0},
    ]
    assert merge_stretches({}) == []


def test_the_open_windows_fast_verdict_is_the_p99_rule():
    rng = random.Random(7)
    for _ in range(300):
        n = rng.randint(1, 400)
        share = rng.choice((0.0, 0.005, 0.01, 0.02, 0.1))
        lags = [int((9.0 if rng.random() < share else 0.3) * MS) for _ in range(n)]
        judge = WindowedLag(threshold_ms=5.0, window_s=60.0)
        feed(judge, [lag / MS for lag in lags])
        late = sum(lag > 5 * MS for lag in lags)
        expected = lag_p99_ns(lags) > 5 * MS and late >= 10
        assert (judge.open_window() is not None) == expected, (n, late)


def test_the_live_p99_of_a_saturated_window_is_refreshed_not_resorted_at_every_question() -> None:
    """Every call's end asks for the stretches; a saturated open window's p99 is sorted
    again only every P99_REFRESH ticks, and exactly when the window closes."""
    w = st.WindowedLag(window_s=5.0, threshold_ms=5.0)
    t = 0
    for _ in range(200):
        w.tick(t, 50_000_000)  # 50 ms late: saturated
        t += 1_000_000
    first = w.all_stretches()[-1].lag_p99_ns
    for _ in range(200):
        w.tick(t, 90_000_000)
        t += 1_000_000
    assert w.all_stretches()[-1].lag_p99_ns == first  # within P99_REFRESH ticks: cached
    for _ in range(st.P99_REFRESH):
        w.tick(t, 90_000_000)
        t += 1_000_000
    assert w.all_stretches()[-1].lag_p99_ns == 90_000_000  # refreshed
    for _ in range(100):
        w.tick(t, 200_000_000)
        t += 1_000_000
    assert w.all_stretches()[-1].lag_p99_ns == 90_000_000  # cached again
    w.tick(t + 10 * st.NS_PER_S, 0)  # the window closes: its p99 exact
    assert w.stretches[-1].lag_p99_ns == 200_000_000
