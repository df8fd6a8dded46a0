"""The media clock's phases and sub-tick schedule, on a fake clock (no timing)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence

import pytest

from loadcaller.audio.vad import ulaw_frame_dbfs, ulaw_frames_dbfs
from loadcaller.calls.clock import MediaClock
from loadcaller.media.frames import FRAME_NS, PlayedFrame
from loadcaller.timebase import NS_PER_MS


class FakeTime:
    def __init__(self, t: int = 0) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t


class Member:
    """Sends at the fake clock's instant plus ``cost``; hears ``heard`` every time."""

    def __init__(self, time: FakeTime, cost: int = 0, heard: list[PlayedFrame] | None = None,
                 fail: bool = False) -> None:
        self.time, self.cost, self.heard, self.fail = time, cost, heard or [], fail
        self.deadlines: list[int] = []
        self.sent: list[int] = []
        self.levels: list[list[float]] = []

    def send(self, deadline_ns: int) -> tuple[int, list[PlayedFrame]] | None:
        if self.fail:
            raise RuntimeError("broken")
        self.time.t += self.cost
        self.deadlines.append(deadline_ns)
        self.sent.append(self.time.t)
        return self.time.t, list(self.heard)

    def take(self, now_ns: int, heard: list[PlayedFrame], levels: Sequence[float]) -> None:
        self.levels.append(list(levels))


def clock_at(t: int = 0, per_phase: int = 1) -> tuple[MediaClock, FakeTime]:
    time = FakeTime(t)
    clock = MediaClock(clock=time, per_phase=per_phase)
    clock.base_ns = 1_000_000_000
    return clock, time


def test_members_spread_evenly_over_the_phases() -> None:
    clock, time = clock_at()
    members = [Member(time) for _ in range(45)]
    for m in members:
        clock.add(m)
    sizes = [len(s) for s in clock.slots]
    assert len(sizes) == FRAME_NS // NS_PER_MS == 20
    assert sorted(sizes) == [2] * 15 + [3] * 5
    assert [clock.phase(m) for m in members[:20]] == clock.order  # least loaded, spread
    assert clock.order[:4] == [0, 10, 5, 15] and sorted(clock.order) == list(range(20))


def test_few_calls_share_a_few_phases_and_many_spread_over_all() -> None:
    clock, time = clock_at(per_phase=25)
    members = [Member(time) for _ in range(1000)]
    for m in members[:100]:
        clock.add(m)
    assert {i: len(s) for i, s in enumerate(clock.slots) if s} == {0: 25, 5: 25, 10: 25, 15: 25}
    for m in members[100:]:
        clock.add(m)
    assert [len(s) for s in clock.slots] == [50] * 20
    for m in members[:30]:  # calls end in slots 0 and 10: the next calls fill those first
        clock.remove(m)
    for m in members[:30]:
        clock.add(m)
    assert [len(s) for s in clock.slots] == [50] * 20


def test_a_removed_member_frees_its_phase_for_the_next() -> None:
    clock, time = clock_at()
    members = [Member(time) for _ in range(40)]
    for m in members:
        clock.add(m)
    gone = members[7]
    slot = clock.phase(gone)
    clock.remove(gone)
    clock.remove(gone)  # twice is harmless
    assert clock.phase(gone) is None and id(gone) not in clock.members
    newcomer = Member(time)
    clock.add(newcomer)
    assert clock.phase(newcomer) == slot
    assert all(len(s) == 2 for s in clock.slots)


def test_next_subtick_skips_empty_phases() -> None:
    clock, time = clock_at()
    assert clock.next_subtick(-1) == 19  # nobody: sleep a period
    a, b = Member(time), Member(time)
    clock.add(a)
    clock.add(b)  # slots 0 and 10
    assert [clock.next_subtick(n) for n in (-1, 0, 1, 10, 19, 20)] == [0, 10, 10, 20, 20, 30]


def test_each_frame_is_sent_at_its_phase_and_period() -> None:
    clock, time = clock_at()
    members = [Member(time) for _ in range(3)]
    for m in members:
        clock.add(m)
    n = -1
    for _ in range(9):  # three periods of three busy sub-ticks
        n = clock.next_subtick(n)
        time.t = clock.ideal_ns(n)
        n = clock.run_subtick(n, time.t)
    assert [clock.phase(m) for m in members] == [0, 10, 5]
    for m in members:
        base = clock.base_ns + (clock.phase(m) or 0) * NS_PER_MS
        assert m.deadlines == [base, base + FRAME_NS, base + 2 * FRAME_NS]
    assert clock.ticks == 9 and clock.skipped == 0


def test_send_jitter_is_each_frames_distance_from_its_ideal_instant() -> None:
    clock, time = clock_at()
    fast = [Member(time, cost=100_000) for _ in range(20)]  # 0.1 ms per send
    slow = [Member(time, cost=400_000) for _ in range(20)]
    for m in fast + slow:
        clock.add(m)  # each slot holds one fast member, then one slow
    for n in range(20):
        time.t = clock.ideal_ns(n) + 300_000  # woken 0.3 ms late
        clock.run_subtick(n, time.t)
    # per sub-tick: fast left 0.4 ms late, slow 0.8 ms late
    jitter = clock.send_jitter
    assert jitter.count == 40
    assert jitter.percentile_ms(50) == pytest.approx(0.4, abs=0.001)
    assert jitter.percentile_ms(100) == pytest.approx(0.8, abs=0.001)
    assert clock.lag.percentile_ms(100) == pytest.approx(0.3, abs=0.001)


def test_an_early_wake_is_jitter_too() -> None:
    clock, time = clock_at()
    clock.add(Member(time))
    time.t = clock.ideal_ns(0) - 450_000
    clock.run_subtick(0, time.t)
    assert clock.send_jitter.percentile_ms(100) == pytest.approx(0.45, abs=0.001)
    assert clock.lag.percentile_ms(100) <= 0.001  # early is not late


def test_a_clock_far_behind_skips_whole_periods() -> None:
    clock, time = clock_at()
    m = Member(time)
    clock.add(m)
    time.t = clock.ideal_ns(0) + 15 * FRAME_NS + 5 * NS_PER_MS
    served = clock.run_subtick(0, time.t)
    assert served == 15 * 20 and clock.skipped == 15
    assert m.deadlines == [clock.ideal_ns(served)]


def test_levels_of_every_heard_frame_with_audio_come_from_one_batch() -> None:
    time = FakeTime()
    clock = MediaClock(sub_ns=FRAME_NS, clock=time)  # one phase: all four in one sub-tick
    loud = [PlayedFrame(1, os.urandom(160)), PlayedFrame(2, b""), PlayedFrame(3, os.urandom(160))]
    quiet = [PlayedFrame(3, bytes([0x7E]) * 160)]
    hush = [PlayedFrame(4, b""), PlayedFrame(5, b"")]
    a, b, c, d = (Member(time, heard=loud), Member(time), Member(time, heard=hush),
                  Member(time, heard=quiet))
    for m in (a, b, c, d):
        clock.add(m)
    clock.run_subtick(0, clock.ideal_ns(0))
    exact = pytest.approx  # numpy sums a batch in another order: the last bit may differ
    # one level per frame with audio, in order; silence (empty audio) has none
    assert a.levels == [exact([ulaw_frame_dbfs(loud[0].audio), ulaw_frame_dbfs(loud[2].audio)],
                              rel=1e-12)]
    assert b.levels == [[]]
    assert c.levels == [[]]
    assert d.levels == [exact([ulaw_frame_dbfs(quiet[0].audio)], rel=1e-12)]


def test_batched_levels_equal_one_at_a_time() -> None:
    frames = [os.urandom(160) for _ in range(30)] + [b"", bytes([0xFF]) * 160, os.urandom(80)]
    assert ulaw_frames_dbfs(frames) == pytest.approx([ulaw_frame_dbfs(f) for f in frames],
                                                     rel=1e-12)


def test_a_broken_member_is_dropped_and_the_others_served() -> None:
    time = FakeTime()
    clock = MediaClock(sub_ns=FRAME_NS, clock=time)
    bad, good = Member(time, fail=True), Member(time)
    clock.add(bad)
    clock.add(good)
    clock.run_subtick(0, clock.ideal_ns(0))
    assert clock.member_errors == 1 and clock.phase(bad) is None
    assert good.deadlines == [clock.ideal_ns(0)]


def test_a_sub_tick_must_divide_the_period() -> None:
    with pytest.raises(ValueError, match="divide"):
        MediaClock(sub_ns=3 * NS_PER_MS)


def test_the_running_clock_keeps_every_members_period() -> None:
    """On the real loop: deadlines are absolute, whatever the wake-ups' lateness."""

    async def go() -> list[tuple[int | None, list[int]]]:
        clock = MediaClock(per_phase=1)
        members = [Member(FakeTime()) for _ in range(3)]
        for m in members:
            clock.add(m)
        clock.start()
        for _ in range(500):  # bounded: at most 5 s
            if all(len(m.deadlines) >= 5 for m in members):
                break
            await asyncio.sleep(0.01)
        await clock.stop()
        return [(clock.phase(m), m.deadlines[:5]) for m in members]

    runs = asyncio.run(go())
    assert [slot for slot, _ in runs] == [0, 10, 5]
    for slot, deadlines in runs:
        assert len(deadlines) == 5
        assert [d - deadlines[0] for d in deadlines] == [k * FRAME_NS for k in range(5)]
        # the members sit at their phases within the period
        assert (deadlines[0] - runs[0][1][0]) % FRAME_NS == (slot or 0) * NS_PER_MS


def test_a_reader_taking_new_values_keeps_the_same_histogram() -> None:
    """The swarm's snapshot keeps its own copy of the clock's figures from what
    take_new hands it (lists swapped in the loop thread, recorded in its own):
    whatever the order of appends, flushes, takes and fresh starts, the copy equals
    the clock's."""
    import random

    from loadcaller.calls.clock import Batched
    from loadcaller.calls.histogram import Histogram

    rng = random.Random(3)
    batched = Batched(absolute=True)
    copy: Histogram | None = None
    for step in range(400):
        for _ in range(rng.randint(0, 300)):
            batched.values.append(rng.randint(-3_000_000, 30_000_000))
        if rng.random() < 0.3:
            batched.flush()
        if step == 50 or (step > 50 and rng.random() < 0.2):
            # now and then the reader lost a take (its snapshot timed out): start afresh
            fresh = step > 50 and rng.random() < 0.1
            base, new = batched.take_new(fresh=fresh)
            assert (base is not None) == (step == 50 or fresh)
            if base is not None:
                copy = base
            assert copy is not None
            batched.absorb(copy, new)
    assert copy is not None
    base, new = batched.take_new()
    assert base is None
    batched.absorb(copy, new)
    assert copy.count == batched.hist.count > 50_000
    assert copy.summary_ms() == batched.hist.summary_ms()


def test_set_ups_and_hang_ups_take_turns_between_sub_ticks() -> None:
    """Calls that start or end together wait for turns the clock hands out after its
    sub-ticks (at least one each time, as many as the time to the next sub-tick allows),
    so their work runs in the gaps instead of delaying every frame; with no call on the
    clock a turn is immediate, and stopping the clock lets every waiter go."""

    async def go() -> tuple[list[int], int, bool]:
        clock = MediaClock(per_phase=1)
        assert await asyncio.wait_for(clock.turn(), 1.0) is None  # nothing to protect
        clock.add(Member(FakeTime()))
        clock.start()
        clock.turn_ns = 10**12  # every gap is too short: one turn per sub-tick
        waiters = [asyncio.ensure_future(clock.turn()) for _ in range(30)]
        seen: list[int] = []
        for _ in range(400):  # bounded: at most 4 s
            await asyncio.sleep(0.01)
            done = sum(w.done() for w in waiters)
            assert done <= clock.ticks + 1
            seen.append(done)
            if done >= 6:
                break
        clock.turn_ns = 1  # a long gap: all that wait
        late = [asyncio.ensure_future(clock.turn()) for _ in range(5)]
        await asyncio.wait_for(asyncio.gather(*waiters), 2.0)
        extra = asyncio.ensure_future(clock.turn())
        await asyncio.sleep(0)
        await clock.stop()
        await asyncio.wait_for(asyncio.gather(*late, extra), 1.0)
        return seen, clock.ticks, extra.done()

    seen, ticks, released = asyncio.run(go())
    assert seen[-1] >= 6 and ticks >= 5  # one at a time, sub-tick after sub-tick
    assert released
