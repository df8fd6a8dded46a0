"""One clock for every timestamp the tool takes.

All instants are integers of nanoseconds from :func:`time.perf_counter_ns`, taken
first thing on receive and right after a send. On Linux ``perf_counter`` and
``monotonic`` read the same CLOCK_MONOTONIC, so results files state instants in
seconds on ``time.monotonic()``'s clock and other processes on the machine can
line them up with their own logs. Where the two clocks differ (other platforms)
the offset between them is measured once and applied.
"""

from __future__ import annotations

import time

now_ns = time.perf_counter_ns

_OFFSET_NS = time.monotonic_ns() - time.perf_counter_ns()
if abs(_OFFSET_NS) < 1_000_000:  # same clock; the difference is the two reads' gap
    _OFFSET_NS = 0

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000


def to_monotonic_s(t_ns: int) -> float:
    """An instant from :func:`now_ns` in seconds on ``time.monotonic()``'s clock."""
    return (t_ns + _OFFSET_NS) / NS_PER_S


def ms(delta_ns: int) -> float:
    """A duration in nanoseconds as milliseconds."""
    return delta_ns / NS_PER_MS
