"""The media clock: one timer per process sends every call's 20 ms frames.

How this works: ticks fall on absolute deadlines (start + k * 20 ms), never
"20 ms after the last tick", so lateness does not accumulate. The event loop's
timers are millisecond-grained and may fire early, so the clock sleeps until
shortly before the deadline and yields the loop until it has passed. On each
tick every registered member's :meth:`ClockMember.tick` runs: it sends one
frame and collects what the caller heard.

The clock measures itself: lag is how late the tick began after its deadline,
and spread is how long the tick took, so the last call served in a tick was
``lag + spread`` late. When either grows (lag p99 over a few ms) the generator,
not the agent, is the bottleneck, and :meth:`MediaClock.saturated` says so.
A clock that falls more than ``max_catchup`` ticks behind skips ahead and counts
the skipped ticks rather than bursting stale audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from loadcaller.calls.histogram import Histogram
from loadcaller.media.frames import FRAME_NS
from loadcaller.timebase import NS_PER_MS, now_ns

log = logging.getLogger(__name__)

SATURATION_LAG_MS = 5.0


class ClockMember(Protocol):
    def tick(self, deadline_ns: int) -> None: ...


class MediaClock:
    """Drives all members every 20 ms on absolute deadlines."""

    def __init__(self, *, frame_ns: int = FRAME_NS, spin_ns: int = NS_PER_MS,
                 max_catchup: int = 10) -> None:
        self.frame_ns = frame_ns
        self.spin_ns = spin_ns
        self.max_catchup = max_catchup
        self.members: dict[int, ClockMember] = {}
        self.lag = Histogram()
        self.spread = Histogram()
        self.ticks = 0
        self.skipped = 0
        self.member_errors = 0
        self._task: asyncio.Task[None] | None = None

    def add(self, member: ClockMember) -> None:
        self.members[id(member)] = member

    def remove(self, member: ClockMember) -> None:
        self.members.pop(id(member), None)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="media-clock")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def saturated(self, threshold_ms: float = SATURATION_LAG_MS) -> bool:
        """True when lag p99 exceeds ``threshold_ms`` or ticks were skipped."""
        if self.skipped:
            return True
        return self.lag.count > 0 and self.lag.percentile_ms(99) > threshold_ms

    async def _run(self) -> None:
        deadline = now_ns() + self.frame_ns
        sleep = asyncio.sleep
        while True:
            remaining = deadline - now_ns()
            if remaining > self.spin_ns:
                await sleep((remaining - self.spin_ns) / 1e9)
            while now_ns() < deadline:
                await sleep(0)
            start = now_ns()
            late = start - deadline
            if late > self.max_catchup * self.frame_ns:
                skip = late // self.frame_ns
                self.skipped += skip
                deadline += skip * self.frame_ns
                late = start - deadline
            self.lag.record_ns(late)
            for member in list(self.members.values()):
                try:
                    member.tick(deadline)
                except Exception:  # one broken call must not stop every call's audio
                    self.member_errors += 1
                    log.exception("media clock member failed; removing it")
                    self.remove(member)
            self.spread.record_ns(now_ns() - start)
            self.ticks += 1
            deadline += self.frame_ns
