"""The media clock: one timer per process sends every call's 20 ms frames.

How this works: each member (a call) gets a phase, one of ``frame_ns //
sub_ns`` slots of the 20 ms period (1 ms sub-ticks by default), the
least-loaded slot when it joins, so calls stay spread evenly over the period.
A slot opens only when the open ones hold ``per_phase`` members each, and
slots open in an order that keeps them spread over the period (0, 10, 5, 15,
...): 100 calls wake the clock 200 times a second, not 1,000 (each wake-up costs
the loop about 40 us). The clock wakes once per sub-tick whose slot has members
and serves only that slot: a call's frames leave at its ideal instants ``start + slot * sub_ns +
k * 20 ms``. One tick that sent every call's frame at once took longer than
the period at 700 calls, and its last calls' frames left up to a tick late;
a sub-tick holds 1/20 of the calls, so its work stays well under a period.

Deadlines are absolute, never "1 ms after the last sub-tick", so lateness
does not accumulate. The loop's timers are millisecond-grained and fire up to
about half a millisecond early or late; the clock sleeps to the deadline
(less ``wake_margin_ns``) and serves the slot when it wakes, early or late,
rather than spinning the loop to the exact instant (a 1 ms spin before every
deadline cost about 4 % of a core with one call). The sub-millisecond error
is measured: it is in ``send_jitter``.

A sub-tick runs in two passes: every member sends its frame and hands back
what its caller heard (:meth:`ClockMember.send`); the level of every heard
frame with audio (silence has none to compute) is then computed in one numpy
call (:func:`ulaw_frames_dbfs`, six times cheaper per frame than one call per
frame); then each member steps its script (:meth:`ClockMember.take`).

The clock measures itself: ``lag`` is how late a sub-tick began after its
deadline, ``spread`` how long it took, and ``send_jitter`` how far each frame
left from its ideal instant (early or late: the instant the member reports,
taken right after its send). When lag grows (p99 over a few ms) the generator,
not the agent, is the bottleneck, and :meth:`MediaClock.saturated` says so.
A clock that falls more than ``max_catchup`` periods behind skips ahead and
counts the skipped periods rather than bursting stale audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from loadcaller.audio.vad import ulaw_frames_dbfs
from loadcaller.calls.histogram import Histogram
from loadcaller.calls.stretches import WindowedLag
from loadcaller.media.frames import FRAME_NS, PlayedFrame
from loadcaller.timebase import NS_PER_MS, now_ns

log = logging.getLogger(__name__)

SATURATION_LAG_MS = 5.0
SUB_NS = NS_PER_MS
PER_PHASE = 25  # members a slot takes before another opens: ~0.5 ms of sends
FLUSH = 4096  # values kept before they go into their histogram at once
TURN_NS = 300_000  # the loop time one call's set-up or tear-down step is granted
NO_LEVELS: tuple[float, ...] = ()  # a member that heard only silence


class ClockMember(Protocol):
    def send(self, deadline_ns: int) -> tuple[int, list[PlayedFrame]] | None:
        """Send this period's frame: (the instant it left, frames heard), or None."""
        ...

    def take(self, now_ns: int, heard: list[PlayedFrame], levels: Sequence[float]) -> None:
        """Step with the frames heard and the levels (dBFS) of those with audio, in order
        (silence, a frame with empty audio, has none)."""
        ...


class Batched:
    """Values (ns) kept in a list and recorded into a :class:`Histogram` in bulk.

    HdrHistogram's record is pure Python (a few microseconds); a list append is
    about 30 ns. A flush records them all in one numpy pass
    (:meth:`Histogram.record_many_ns`). ``absolute``: record how far from zero
    (early or late).

    A reader in another thread (the swarm's once-a-second snapshot) takes the
    values recorded since it last asked with :meth:`take_new`, which only swaps
    lists: flushing, copying or encoding the histogram in the loop thread took
    3-7 ms at once every second, and every frame due meanwhile left late.
    """

    __slots__ = ("_handed", "_hist", "_tap", "absolute", "values")

    def __init__(self, *, absolute: bool = False) -> None:
        self._hist = Histogram()
        self.values: list[int] = []
        self.absolute = absolute
        self._tap: list[list[int]] | None = None  # flushed values the reader has not had
        self._handed = 0  # values[:_handed] the reader has had already

    @property
    def hist(self) -> Histogram:
        self.flush()
        return self._hist

    @hist.setter
    def hist(self, hist: Histogram) -> None:
        self.values.clear()
        self._handed = 0
        self._hist = hist

    def take_new(self, fresh: bool = False) -> tuple[Histogram | None, list[list[int]]]:
        """For a reader keeping its own copy: (on the first call, or ``fresh``, a copy of
        the histogram, else None; the values recorded since, raw as :attr:`values`)."""
        values = self.values
        if self._tap is None or fresh:  # what the histogram holds, once
            self._tap, self._handed = [], len(values)
            return self._hist.copy(), [values.copy()]
        out, self._tap = self._tap, []
        out.append(values[self._handed:])
        self._handed = len(values)
        return None, out

    def absorb(self, into: Histogram, new: list[list[int]]) -> None:
        """Record what :meth:`take_new` gave into the reader's copy (the reader's thread)."""
        for chunk in new:
            self._record(into, chunk)

    def _record(self, into: Histogram, values: list[int]) -> None:
        if values:
            ns = np.array(values, dtype=np.int64)
            into.record_many_ns(np.abs(ns) if self.absolute else ns)

    def flush(self) -> None:
        values = self.values
        if not values:
            return
        if self._tap is not None:
            self._tap.append(values[self._handed:])
        self._handed = 0
        self._record(self._hist, values)
        values.clear()


class BatchedHistogram:
    """A :class:`Batched` attribute of the clock read as its Histogram (flushed first) and
    replaced by assigning a Histogram (a benchmark's fresh window)."""

    def __init__(self, attr: str, doc: str) -> None:
        self.attr = attr
        self.__doc__ = doc

    def __get__(self, obj: object, owner: type | None = None) -> Histogram:
        if obj is None:  # on the class (help(), introspection): the descriptor itself
            return self  # type: ignore[return-value]
        batched: Batched = getattr(obj, self.attr)
        return batched.hist

    def __set__(self, obj: object, hist: Histogram) -> None:
        batched: Batched = getattr(obj, self.attr)
        batched.hist = hist


def spread_order(count: int) -> list[int]:
    """Slots in the order they open: each the farthest (circularly) from those before."""
    order = [0]
    while len(order) < count:
        def gap(i: int) -> int:
            return min(min(abs(i - o), count - abs(i - o)) for o in order)
        order.append(max((i for i in range(count) if i not in order), key=lambda i: (gap(i), -i)))
    return order


class MediaClock:
    """Drives every member once per 20 ms at its phase, on absolute deadlines."""

    def __init__(self, *, frame_ns: int = FRAME_NS, sub_ns: int = SUB_NS,
                 wake_margin_ns: int = 0, max_catchup: int = 10, per_phase: int = PER_PHASE,
                 clock: Callable[[], int] = now_ns) -> None:
        if sub_ns <= 0 or frame_ns % sub_ns:
            raise ValueError(f"sub-tick {sub_ns} ns must divide the period {frame_ns} ns")
        self.frame_ns = frame_ns
        self.sub_ns = sub_ns
        self.wake_margin_ns = wake_margin_ns
        self.max_catchup = max_catchup
        self.now = clock
        self.members: dict[int, ClockMember] = {}
        self.slots: list[dict[int, ClockMember]] = [{} for _ in range(frame_ns // sub_ns)]
        self.per_phase = per_phase
        self.order = spread_order(len(self.slots))
        self._phase: dict[int, int] = {}
        self.base_ns = 0  # sub-tick n's deadline is base_ns + n * sub_ns (set by start)
        self._lag, self._spread = Batched(), Batched()
        self._jitter = Batched(absolute=True)
        self.ticks = 0
        self.skipped = 0
        self.member_errors = 0
        # the verdict per stretch of time (calls/stretches.py); the engine sets it
        self.windows: WindowedLag | None = None
        self._task: asyncio.Task[None] | None = None
        self._turns: deque[asyncio.Future[None]] = deque()
        self.turn_ns = TURN_NS

    # ---- membership and phases ------------------------------------------------------

    def add(self, member: ClockMember) -> None:
        """Join the least-loaded open phase, or open one; a member joins once.

        Open: a slot with members but fewer than ``per_phase``. When there is
        none, the least-loaded slot of all, first in :attr:`order` (an empty
        slot while there is one).
        """
        key = id(member)
        if key in self.members:
            return
        slots, cap = self.slots, self.per_phase
        loads = [len(slots[i]) for i in self.order]
        open_ = [(n, j) for j, n in enumerate(loads) if 0 < n < cap]
        _, j = min(open_) if open_ else min((n, j) for j, n in enumerate(loads))
        slot = self.order[j]
        slots[slot][key] = member
        self._phase[key] = slot
        self.members[key] = member

    def remove(self, member: ClockMember) -> None:
        key = id(member)
        if self.members.pop(key, None) is not None:
            del self.slots[self._phase.pop(key)][key]

    def phase(self, member: ClockMember) -> int | None:
        """The member's slot within the period, None when it is not a member."""
        return self._phase.get(id(member))

    def ideal_ns(self, n: int) -> int:
        """Sub-tick ``n``'s deadline: its slot's members' frames should leave then."""
        return self.base_ns + n * self.sub_ns

    def next_subtick(self, n: int) -> int:
        """The first sub-tick after ``n`` whose slot has members (n + a period if none)."""
        slots = self.slots
        count = len(slots)
        for step in range(1, count + 1):
            if slots[(n + step) % count]:
                return n + step
        return n + count

    # ---- the clock's own figures ----------------------------------------------------

    send_jitter = BatchedHistogram("_jitter", "How far each frame left from its ideal instant "
                                   "(early or late).")
    lag = BatchedHistogram("_lag", "How late each served sub-tick began (an early wake-up "
                           "counts as on time).")
    spread = BatchedHistogram("_spread", "How long each served sub-tick took.")

    def health_batches(self) -> dict[str, Batched]:
        """The figures a reader in another thread copies with :meth:`Batched.take_new`."""
        return {"media_clock_lag": self._lag, "send_jitter": self._jitter}

    # ---- running ------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            # Everything alive now (imports, Locust, the compiled profile's audio) lives
            # as long as the run: out of the cyclic collector's sight, a full collection
            # during the run took 8-40 ms instead of 70-120 ms at 500 calls (gc.freeze;
            # refcounting still frees these objects).
            gc.collect()
            gc.freeze()
            self.base_ns = self.now() + self.sub_ns
            self._task = asyncio.get_running_loop().create_task(self._run(), name="media-clock")

    async def turn(self) -> None:
        """Wait until the media can spare the loop for one set-up or tear-down step.

        Calls that start or end together (a slot's members run the same script in
        step; a swarm's users dial again at once) would otherwise run their
        set-ups and hang-ups back to back between two sub-ticks: 25 of them took
        3-13 ms of the loop at once, and every frame due meanwhile left late. The
        clock hands out turns after each sub-tick, as many as the time to the next
        one allows at ``turn_ns`` each (at least one), so that work runs in the
        gaps. Returns at once when no call is on the clock.
        """
        if not self.members or self._task is None:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._turns.append(waiter)
        await waiter

    def _grant_turns(self, slack_ns: int) -> None:
        turns = self._turns
        grants = max(1, slack_ns // self.turn_ns)
        while turns and grants > 0:
            waiter = turns.popleft()
            if not waiter.done():
                waiter.set_result(None)
                grants -= 1

    async def stop(self) -> None:
        self._grant_turns(1 << 62)
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
        sleep, now = asyncio.sleep, self.now
        n = -1
        while True:
            n = self.next_subtick(n)
            remaining = self.ideal_ns(n) - now() - self.wake_margin_ns
            if self._turns:
                self._grant_turns(remaining)
            # behind, still yield once: the calls' reads and set-ups interleave with
            # the catch-up rather than wait for all of it
            await sleep(max(0, remaining) / 1e9)
            n = self.run_subtick(n, now())

    def run_subtick(self, n: int, start: int) -> int:
        """Serve sub-tick ``n`` (or skip ahead when too late), woken at ``start``.

        Sans-I/O apart from the members' sends: the loop and the tests call it.
        Returns the sub-tick actually served (later than ``n`` after a skip).
        """
        late = start - self.ideal_ns(n)
        skipped = 0
        if late > self.max_catchup * self.frame_ns:
            skipped = late // self.frame_ns
            self.skipped += skipped
            n += skipped * len(self.slots)
            late = start - self.ideal_ns(n)
        members = self.slots[n % len(self.slots)]
        if self.windows is not None and (members or skipped):
            self.windows.tick(start, late, skipped)
        if not members:  # its calls ended while the clock slept
            return n
        self._lag.values.append(late)
        self._serve(list(members.values()), self.ideal_ns(n))
        spread = self._spread.values
        spread.append(self.now() - start)
        if len(spread) >= FLUSH:
            self._lag.flush()
            self._spread.flush()
        self.ticks += 1
        return n

    def _serve(self, members: list[ClockMember], deadline: int) -> None:
        # (member, sent at, heard, its levels' slice of the batch: first, end)
        sent: list[tuple[ClockMember, int, list[PlayedFrame], int, int]] = []
        audio: list[bytes] = []  # only frames with sound: silence needs no level
        jitter = self._jitter.values
        for member in members:
            try:
                out = member.send(deadline)
            except Exception:  # one broken call must not stop every call's audio
                self._failed(member)
                continue
            if out is None:
                continue
            t_sent, heard = out
            jitter.append(t_sent - deadline)
            first = len(audio)
            for frame in heard:
                if frame.audio:
                    audio.append(frame.audio)
            sent.append((member, t_sent, heard, first, len(audio)))
        levels = ulaw_frames_dbfs(audio) if audio else []
        for member, t_sent, heard, first, end in sent:
            try:
                member.take(t_sent, heard, levels[first:end] if end > first else NO_LEVELS)
            except Exception:
                self._failed(member)
        if len(jitter) >= FLUSH:
            self._jitter.flush()

    def _failed(self, member: ClockMember) -> None:
        self.member_errors += 1
        log.exception("media clock member failed; removing it")
        self.remove(member)
