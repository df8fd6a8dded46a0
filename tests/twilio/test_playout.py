"""Twilio playout emulation: 8000 bytes/s, marks, clear, silence grid."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loadcaller.twilio.playout import FRAME_NS, NS_PER_BYTE, Playout, PlayoutOverflow

MS = 1_000_000


def test_audio_sent_faster_than_real_time_plays_at_8000_bytes_per_second():
    p = Playout(0)
    p.push(b"\x01" * 8000, now_ns=0)  # one second of audio, all at once
    frames, _ = p.advance(500 * MS)
    # frames whose playout began by 500 ms: 0, 20, ..., 500 ms
    assert [f.t_ns for f in frames] == [i * FRAME_NS for i in range(26)]
    assert all(f.audio == b"\x01" * 160 for f in frames)
    assert p.queued_bytes == 8000 - 26 * 160


def test_audio_after_idle_plays_on_arrival_exactly():
    p = Playout(0)
    frames, _ = p.advance(100 * MS)
    assert [f.audio for f in frames] == [b""] * 5  # silence heard on the grid
    p.push(b"\x02" * 320, now_ns=107 * MS + 3)
    frames, _ = p.advance(200 * MS)
    assert frames[0].t_ns == 107 * MS + 3  # onset exact to the receive instant
    assert frames[1].t_ns == 127 * MS + 3
    assert frames[1].audio == b"\x02" * 160


def test_mark_echoed_only_when_the_audio_before_it_has_played():
    p = Playout(0)
    p.push(b"\x01" * 800, now_ns=0)  # 100 ms
    p.mark("end-of-reply", now_ns=0)
    _, marks = p.advance(60 * MS)
    assert marks == []
    _, marks = p.advance(99 * MS)
    assert marks == []
    _, marks = p.advance(100 * MS)
    assert marks == ["end-of-reply"]
    _, marks = p.advance(200 * MS)
    assert marks == []  # echoed once


def test_marks_passed_in_one_advance_come_out_in_stream_order():
    p = Playout(0)
    for name in "abcd":  # 20 ms of audio before each
        p.push(b"\x01" * 160, now_ns=0)
        p.mark(name, now_ns=0)
    p.mark("e", now_ns=0)  # a second mark where "d" stands
    _, marks = p.advance(79 * MS)  # a, b, c passed (20, 40, 60 ms); d not yet (80 ms)
    assert marks == ["a", "b", "c"]
    _, marks = p.advance(80 * MS)
    assert marks == ["d", "e"]


def test_mark_on_an_empty_queue_is_echoed_at_once():
    p = Playout(0)
    p.mark("m", now_ns=5 * MS)
    _, marks = p.advance(5 * MS)
    assert marks == ["m"]


def test_clear_empties_the_queue_and_echoes_pending_marks():
    p = Playout(0)
    p.push(b"\x01" * 1600, now_ns=0)
    p.mark("a", now_ns=0)
    p.push(b"\x01" * 1600, now_ns=0)
    p.mark("b", now_ns=0)
    p.advance(40 * MS)
    assert p.clear(now_ns=45 * MS) == ["a", "b"]
    assert p.queued_bytes == 0
    frames, marks = p.advance(200 * MS)
    assert marks == []
    assert all(f.audio == b"" for f in frames)  # only silence after a clear
    assert frames[0].t_ns >= 45 * MS


def test_a_partial_tail_is_played_once_its_time_has_passed():
    p = Playout(0)
    p.push(b"\x03" * 200, now_ns=0)
    frames, _ = p.advance(21 * MS)
    assert [len(f.audio) for f in frames] == [160]
    frames, _ = p.advance(24 * MS)  # 40 bytes = 5 ms, done at 25 ms
    assert frames == []
    frames, _ = p.advance(25 * MS)
    assert [len(f.audio) for f in frames] == [40]


@given(
    st.lists(
        st.tuples(st.integers(0, 30), st.integers(0, 700), st.booleans()),
        min_size=1,
        max_size=40,
    )
)
def test_no_audio_is_heard_before_it_arrived_or_faster_than_real_time(events):
    p = Playout(0)
    now = 0
    arrivals = []  # (stream offset end, arrival instant)
    pushed = heard = 0
    last_t = -1
    last_end = 0
    for gap_ms, size, clear in events:
        now += gap_ms * MS
        frames, _ = p.advance(now)
        for f in frames:
            assert f.t_ns >= last_t
            assert f.t_ns >= last_end - NS_PER_BYTE  # never overlaps the frame before
            last_t = f.t_ns
            if f.audio:
                # the audio's first byte arrived no later than it started playing
                first = heard
                arrived = next(t for end, t in arrivals if end > first)
                assert arrived <= f.t_ns
                heard += len(f.audio)
                last_end = f.t_ns + len(f.audio) * NS_PER_BYTE
        if clear:
            p.clear(now)
            heard = pushed  # dropped audio counts as gone
            last_end = min(last_end, now)  # the frame playing is cut short
        if size:
            p.push(b"\x05" * size, now)
            pushed += size
            arrivals.append((pushed, now))
    frames, _ = p.advance(now + 10**12)
    heard += sum(len(f.audio) for f in frames)
    assert heard == pushed


def test_audio_beyond_the_queue_limit_is_refused_not_held():
    p = Playout(0, max_bytes=8000)  # one second
    p.push(b"\x01" * 6000, now_ns=0)
    with pytest.raises(PlayoutOverflow, match=r"real time: 1\.5 s queued for playout .limit 1 s"):
        p.push(b"\x01" * 6000, now_ns=0)
    assert p.queued_bytes == 6000  # what was refused was not queued
    p.advance(500 * MS)  # 26 frames have begun to play by 500 ms: room again
    p.push(b"\x01" * 4000, now_ns=500 * MS)
    assert p.queued_bytes == 6000 - 26 * 160 + 4000


def test_the_default_limit_is_a_minute_of_audio():
    p = Playout(0)
    p.push(b"\x01" * 60 * 8000, now_ns=0)
    with pytest.raises(PlayoutOverflow):
        p.push(b"\x01", now_ns=0)


def test_pending_marks_are_bounded_by_count_and_by_the_size_of_their_names():
    p = Playout(0, max_marks=3, max_mark_bytes=10)
    p.push(b"\x01" * 800, now_ns=0)
    for name in ("a", "b", "c"):
        p.mark(name, now_ns=0)
    with pytest.raises(PlayoutOverflow, match="over 3 marks"):
        p.mark("d", now_ns=0)
    _, marks = p.advance(100 * MS)
    assert marks == ["a", "b", "c"]  # played: no longer pending
    p.push(b"\x01" * 800, now_ns=100 * MS)
    p.mark("x" * 10, now_ns=100 * MS)
    with pytest.raises(PlayoutOverflow, match="over 10 bytes"):
        p.mark("y", now_ns=100 * MS)
    assert p.clear(100 * MS) == ["x" * 10]
    p.mark("z" * 10, now_ns=100 * MS)  # clear freed the names' room


def _reference_advance(p: Playout, now_ns: int) -> tuple[list, list[str]]:
    """Playout.advance as first written: one frame at a time, the rules spelled out."""
    from loadcaller.media.frames import FRAME_BYTES, SILENT, PlayedFrame

    buf, frames = p._buf, []
    while p._t_next <= now_ns:
        if buf:
            n = min(FRAME_BYTES, len(buf))
            if n < FRAME_BYTES and p._t_next + n * NS_PER_BYTE > now_ns:
                break
            frames.append(PlayedFrame(p._t_next, bytes(buf[:n])))
            del buf[:n]
            p._played += n
            p._t_next += n * NS_PER_BYTE
        else:
            if p._t_next + FRAME_NS > now_ns:
                break
            frames.append(PlayedFrame(p._t_next, SILENT))
            p._t_next += FRAME_NS
    finished = p._played - max(0, -((now_ns - p._t_next) // NS_PER_BYTE))
    marks = []
    while p._marks and p._marks[0][0] <= finished:
        name = p._marks.popleft()[1]
        p._mark_bytes -= len(name)
        marks.append(name)
    return frames, marks


@given(
    st.lists(
        # ticks a byte apart or whole frames apart (the clock's), on the edge or 1 ns off
        st.tuples(st.one_of(st.integers(0, 720), st.integers(0, 4).map(lambda k: k * 160)),
                  st.integers(-1, 1), st.integers(0, 500),
                  st.integers(0, 3)),
        min_size=1,
        max_size=60,
    )
)
def test_advance_hears_what_the_rules_say_frame_for_frame(events):
    # advance() takes shortcuts (a quiet queue's silence at once, locals in the loop):
    # it must give what the one-frame-at-a-time rules give, for any arrivals and ticks
    fast, ref = Playout(0), Playout(0)
    now = 0
    for i, (bytes_, off, size, op) in enumerate(events):
        now = max(now, now + bytes_ * NS_PER_BYTE + off)  # on a byte's edge, or 1 ns off it
        assert fast.advance(now) == _reference_advance(ref, now)
        for p in (fast, ref):
            if size:
                p.push(b"\x05" * size, now)
            if op == 1:
                p.mark(f"m{i}", now)
        if op == 2:
            assert fast.clear(now) == ref.clear(now)
    assert fast.advance(now + 10**10) == _reference_advance(ref, now + 10**10)


def test_a_clear_keeps_heard_only_what_began_to_play_before_it():
    p = Playout(now_ns=0)
    p.push(bytes(range(160)) * 2, now_ns=10 * MS)  # plays 10-50 ms
    p.mark("a", now_ns=10 * MS)
    frames, marks = p.cut(now_ns=35 * MS)  # 25 ms in: the second frame 5 ms (40 bytes) in
    assert [(f.t_ns, f.audio) for f in frames if f.audio] == [
        (10 * MS, bytes(range(160))), (30 * MS, bytes(range(40)))]
    assert marks == ["a"] and p.queued_bytes == 0
    p.push(bytes(160), now_ns=60 * MS)
    frames, _ = p.cut(now_ns=60 * MS)  # arrived and cleared at once: never heard
    assert [f for f in frames if f.audio] == []
    p.push(bytes(160), now_ns=70 * MS)
    frames, _ = p.cut(now_ns=70 * MS + 1)  # its first byte began: one byte heard
    assert [len(f.audio) for f in frames if f.audio] == [1]
