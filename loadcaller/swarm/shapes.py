"""Load shapes as pure functions of run time (Locust ``LoadTestShape`` style).

No Locust and no gevent here: ``tick(t)`` takes the seconds since the run
started and returns ``(users, spawn_rate)`` or ``None`` when the run is over.
:class:`loadcaller.swarm.environment.ProfileShape` adapts a shape to Locust.

The open model (:class:`Open`) keeps ``max_concurrency`` users alive, and each
user places calls on its own fixed schedule so that together they arrive at
``rate`` calls per second whatever the agent does. A user still busy with its
previous call when its next start time has passed by more than ``late_after_s``
skips that start and counts it as *missed* (:class:`OpenPacing`): those are the
calls a closed model would silently never have made (coordinated omission).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Tick = tuple[int, float] | None


@dataclass(frozen=True, slots=True)
class Constant:
    """``users`` callers for ``duration_s``."""

    users: int
    spawn_rate: float
    duration_s: float

    def tick(self, t: float) -> Tick:
        return None if t >= self.duration_s else (self.users, self.spawn_rate)


@dataclass(frozen=True, slots=True)
class Ramp:
    """From ``start_users`` to ``end_users`` linearly over ``ramp_s``, then hold."""

    start_users: int
    end_users: int
    ramp_s: float
    duration_s: float

    def tick(self, t: float) -> Tick:
        if t >= self.duration_s:
            return None
        frac = 1.0 if self.ramp_s <= 0 else min(1.0, t / self.ramp_s)
        users = round(self.start_users + (self.end_users - self.start_users) * frac)
        slope = abs(self.end_users - self.start_users) / max(self.ramp_s, 1e-9)
        return users, max(1.0, slope * 2)  # fast enough to keep up with the line


@dataclass(frozen=True, slots=True)
class Step:
    """``start_users``, plus ``step_users`` every ``step_s``, up to ``max_users``."""

    start_users: int
    step_users: int
    step_s: float
    max_users: int
    spawn_rate: float
    duration_s: float

    def tick(self, t: float) -> Tick:
        if t >= self.duration_s:
            return None
        steps = int(t // self.step_s) if self.step_s > 0 else 0
        return min(self.max_users, self.start_users + steps * self.step_users), self.spawn_rate


@dataclass(frozen=True, slots=True)
class Spike:
    """``users`` callers, jumping to ``spike_users`` from ``at_s`` for ``for_s``."""

    users: int
    spike_users: int
    at_s: float
    for_s: float
    spawn_rate: float
    duration_s: float

    def tick(self, t: float) -> Tick:
        if t >= self.duration_s:
            return None
        if self.at_s <= t < self.at_s + self.for_s:
            return self.spike_users, max(self.spawn_rate, float(self.spike_users))
        return self.users, max(self.spawn_rate, float(self.spike_users))


@dataclass(frozen=True, slots=True)
class Soak:
    """A gentle ramp to ``users`` over ``ramp_s``, then a long hold."""

    users: int
    ramp_s: float
    duration_s: float

    def tick(self, t: float) -> Tick:
        if t >= self.duration_s:
            return None
        return self.users, max(0.1, self.users / max(self.ramp_s, 1e-9))


@dataclass(frozen=True, slots=True)
class Open:
    """Calls arrive at ``rate`` per second, served by up to ``max_concurrency`` users."""

    rate: float
    max_concurrency: int
    duration_s: float
    late_after_s: float = 0.5

    def tick(self, t: float) -> Tick:
        if t >= self.duration_s:
            return None
        return self.max_concurrency, float(self.max_concurrency)  # the pool is there at once

    @property
    def per_user_interval_s(self) -> float:
        """Each user's spacing between call starts."""
        return self.max_concurrency / self.rate


Shape = Constant | Ramp | Step | Spike | Soak | Open


class OpenPacing:
    """One open-model user's start times (pure: the caller passes ``now``).

    ``next_start(now)`` says when to start the next call and how many
    scheduled starts were missed because the user was still busy.
    """

    def __init__(self, interval_s: float, late_after_s: float, first_s: float) -> None:
        self.interval_s = interval_s
        self.late_after_s = late_after_s
        self.due = first_s

    def overdue(self, now: float) -> int:
        """Starts already missed at ``now`` (the user is still busy), not yet counted."""
        late = now - self.due
        if late <= self.late_after_s:
            return 0
        return math.ceil((late - self.late_after_s) / self.interval_s)

    def next_start(self, now: float) -> tuple[float, int]:
        """(start time, starts missed); the caller waits until the start time."""
        missed = self.overdue(now)
        self.due += missed * self.interval_s
        start = self.due
        self.due += self.interval_s
        return start, missed
