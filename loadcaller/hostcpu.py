"""How busy the machine's CPUs are while callers run on it (from /proc/stat).

The media clock's lag says when a caller process cannot keep up. It cannot say
when the callers take CPU from an agent (or its backend, or the chaos proxy)
on the same machine: the callers then keep their clock, the agent answers
late, and the latency looks like the agent's. So each caller process reads the
machine's CPU counters as it reports: all CPUs busy for a stretch of the run is
stated beside the numbers (``generator.host_cpu`` in summary.json, the console
and the report), with the share the hypervisor stole (``steal``) on a VM.

Busy is everything but idle and I/O wait, steal included: time the hypervisor
gave another guest was not this machine's to give the agent either.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_S = 5.0  # the peak is the busiest whole window (as the processes' own CPU)
BUSY_WARN = 0.9  # a window with the CPUs this busy: the agent on this machine competed


@dataclass(frozen=True, slots=True)
class CpuTimes:
    """The machine's CPU counters (clock ticks, summed over CPUs)."""

    busy: int
    total: int
    steal: int


def parse_proc_stat(text: str) -> tuple[CpuTimes, int] | None:
    """(the counters of every CPU together, the number of CPUs) from /proc/stat's text;
    None when it has no aggregate ``cpu`` line with at least the four classic fields."""
    times: CpuTimes | None = None
    cpus = 0
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if name == "cpu":
            try:
                fields = [int(v) for v in rest.split()]
            except ValueError:
                return None
            if len(fields) < 4:
                return None
            # user nice system idle iowait irq softirq steal guest guest_nice: guest time is
            # already in user (and guest_nice in nice)
            fields = fields[:8] + [0] * (8 - min(8, len(fields)))
            total = sum(fields)
            idle = fields[3] + fields[4]
            times = CpuTimes(busy=total - idle, total=total, steal=fields[7])
        elif name.startswith("cpu") and name[3:].isdigit():
            cpus += 1
    return None if times is None else (times, max(1, cpus))


def _read() -> str | None:
    try:
        with open("/proc/stat", encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError:  # not Linux, or /proc not mounted: nothing to say
        return None


class HostCpu:
    """The machine's CPU busy ratio (1 = every CPU busy): the run's mean, and the peak
    and steal peak over whole :data:`WINDOW_S` windows. Call :meth:`sample` now and
    then (each report); windows close at the first sample after they are due."""

    def __init__(self, read: Callable[[], str | None] = _read,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._read, self._clock = read, clock
        self.cpus: int | None = None
        self._start: CpuTimes | None = None
        self._mark: tuple[float, CpuTimes] | None = None
        self._last: CpuTimes | None = None
        self.peak: float | None = None
        self.steal_peak: float | None = None
        self.sample()

    def sample(self) -> None:
        text = self._read()
        parsed = parse_proc_stat(text) if text is not None else None
        if parsed is None:
            return
        now, (times, self.cpus) = self._clock(), parsed
        if self._start is None or self._mark is None:
            self._start, self._mark = times, (now, times)
        elif now - self._mark[0] >= WINDOW_S:
            busy, steal = _ratios(self._mark[1], times)
            if busy is not None:
                self.peak = max(self.peak or 0.0, busy)
                self.steal_peak = max(self.steal_peak or 0.0, steal or 0.0)
            self._mark = (now, times)
        self._last = times

    def ratios(self) -> dict[str, float | int] | None:
        """``busy_mean``, ``busy_peak`` (the mean until a window closed), ``steal_peak``
        and ``cpus``; None when the counters cannot be read or have not moved."""
        if self._start is None or self._last is None or self.cpus is None:
            return None
        mean, steal = _ratios(self._start, self._last)
        if mean is None:
            return None
        peak = max(mean, self.peak) if self.peak is not None else mean
        steal_peak = max(steal or 0.0, self.steal_peak or 0.0)
        return {"busy_mean": round(mean, 3), "busy_peak": round(peak, 3),
                "steal_peak": round(steal_peak, 3), "cpus": self.cpus}


def _ratios(a: CpuTimes, b: CpuTimes) -> tuple[float | None, float | None]:
    total = b.total - a.total
    if total <= 0:
        return None, None
    clamp = lambda v: min(1.0, max(0.0, v / total))  # noqa: E731 (counters never run back)
    return clamp(b.busy - a.busy), clamp(b.steal - a.steal)
