"""Faults switched on and off over a run.

A fault's `Schedule` says when it is on, relative to the moment it was added
(proxy start for faults in the config, the POST for faults added live):
`at` (start), `for` (length, open-ended when absent), and an optional `Ramp`
that moves a number (the probability, or a magnitude such as a latency) from
one value to another over time. Everything takes `now` as an argument, so the
tests drive it with a fake clock and a run replays identically.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Ramp:
    """Move `field` linearly from `start` to `end` over `over` seconds."""

    field: str
    start: float
    end: float
    over: float

    def value(self, elapsed: float) -> float:
        """The ramped value `elapsed` seconds after the schedule began."""
        if self.over <= 0 or elapsed >= self.over:
            return self.end
        if elapsed <= 0:
            return self.start
        return self.start + (self.end - self.start) * (elapsed / self.over)


@dataclass(frozen=True)
class Schedule:
    """When a fault is on: [start, start + length) seconds after `origin`."""

    start: float = 0.0
    length: float | None = None
    ramp: Ramp | None = None

    @property
    def end(self) -> float | None:
        """Offset at which the fault switches off, None when it never does."""
        return None if self.length is None else self.start + self.length

    def active(self, elapsed: float) -> bool:
        """Is the fault on `elapsed` seconds after its origin?"""
        end = self.end
        return elapsed >= self.start and (end is None or elapsed < end)

    def ramped(self, elapsed: float) -> tuple[str, float] | None:
        """(field, value) of the ramp at `elapsed`, None without a ramp."""
        if self.ramp is None:
            return None
        return self.ramp.field, self.ramp.value(elapsed - self.start)


@dataclass(frozen=True)
class Entry:
    """One named fault on a timeline, with the clock reading it counts from."""

    name: str
    origin: float
    schedule: Schedule


class Timeline:
    """The schedules of several faults; answers which are on at a given `now`."""

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}

    def add(self, name: str, schedule: Schedule, origin: float) -> None:
        """Put a fault on the timeline, counting from `origin`."""
        self._entries[name] = Entry(name, origin, schedule)

    def remove(self, name: str) -> None:
        """Take a fault off the timeline (no error when absent)."""
        self._entries.pop(name, None)

    def clear(self) -> None:
        """Take every fault off."""
        self._entries.clear()

    def active(self, now: float) -> list[str]:
        """Names of the faults on at `now`, in the order they were added."""
        return [e.name for e in self._entries.values() if e.schedule.active(now - e.origin)]

    def next_change(self, now: float) -> float | None:
        """The next clock reading after `now` at which some fault switches on or off."""
        times: list[float] = []
        for e in self._entries.values():
            for offset in (e.schedule.start, e.schedule.end):
                if offset is not None and e.origin + offset > now:
                    times.append(e.origin + offset)
        return min(times) if times else None
