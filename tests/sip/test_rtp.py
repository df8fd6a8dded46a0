"""RTP sender and receiver: wire fixtures against aiortc, reordering, loss, jitter."""

from __future__ import annotations

import random
import struct

import numpy as np
import pytest
from aiortc.rtp import (
    RtcpByePacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
    RtpPacket,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from loadcaller.audio.g711 import alaw_decode, ulaw_decode
from loadcaller.errors import LocalError
from loadcaller.media.frames import FRAME_BYTES
from loadcaller.sip.dtmf import DtmfSender
from loadcaller.sip.rtp import (
    ALAW_TO_ULAW,
    ULAW_TO_ALAW,
    Codec,
    RtpReceiver,
    RtpSender,
    is_rtcp,
    media_stats,
    random_start,
)

MS = 1_000_000
ADDR = ("192.0.2.10", 40000)
T0 = 10**12  # perf_counter_ns-sized instants


def frame(i: int) -> bytes:
    """A distinct mu-law frame per index (PCMU passes through unchanged)."""
    return bytes([i % 256]) * FRAME_BYTES


def pkt(seq: int, *, ts: int | None = None, pt: int = 0, ssrc: int = 0x1234, payload=None):
    """A packet built by aiortc (the independent implementation)."""
    return RtpPacket(
        payload_type=pt,
        sequence_number=seq & 0xFFFF,
        timestamp=(seq * 160 if ts is None else ts) & 0xFFFFFFFF,
        ssrc=ssrc,
        payload=frame(seq) if payload is None else payload,
    ).serialize()


def pcmu(**kw) -> RtpReceiver:
    return RtpReceiver({0: Codec.PCMU}, dtmf_payload_type=101, **kw)


# -- sender ----------------------------------------------------------------------


def test_sender_bytes_parse_identically_with_aiortc():
    s = RtpSender(0, ssrc=0xDEADBEEF, seq=1000, timestamp=123456)
    for i in range(3):
        data = s.audio(frame(i), spurt_start=i == 0)
        p = RtpPacket.parse(data)
        assert (p.version, p.payload_type, p.marker) == (2, 0, int(i == 0))
        assert (p.sequence_number, p.timestamp, p.ssrc) == (1000 + i, 123456 + 160 * i, 0xDEADBEEF)
        assert p.payload == frame(i)
        assert p.csrc == [] and p.padding_size == 0
        # and aiortc serialises the same fields to the same bytes
        assert p.serialize() == data
    assert s.stats().packets == 3 and s.stats().octets == 3 * 160


def test_sequence_and_timestamp_wrap():
    s = RtpSender(0, ssrc=1, seq=65534, timestamp=2**32 - 160)
    seqs, stamps = [], []
    for i in range(3):
        p = RtpPacket.parse(s.audio(frame(i)))
        seqs.append(p.sequence_number)
        stamps.append(p.timestamp)
    assert seqs == [65534, 65535, 0]
    assert stamps == [2**32 - 160, 0, 160]


def test_marker_only_on_talk_spurt_start():
    s = RtpSender(0, ssrc=1, seq=0, timestamp=0)
    marks = [RtpPacket.parse(s.audio(frame(i), spurt_start=i in (0, 5))).marker for i in range(8)]
    assert marks == [1, 0, 0, 0, 0, 1, 0, 0]


def test_pcma_sender_transcodes_by_table():
    rng = np.random.default_rng(1)
    ulaw = bytes(rng.integers(0, 256, FRAME_BYTES, dtype=np.uint8))
    s = RtpSender(8, ssrc=1, seq=0, timestamp=0, codec=Codec.PCMA)
    p = RtpPacket.parse(s.audio(ulaw))
    assert p.payload_type == 8
    assert p.payload == ulaw.translate(ULAW_TO_ALAW)
    want = ulaw_decode(ulaw).astype(np.int32)
    got = alaw_decode(p.payload).astype(np.int32)
    # A-law steps are at most twice mu-law's at the same level (1/16 of the level, 1024 at top)
    assert np.all(np.abs(got - want) <= np.maximum(16, np.abs(want) // 8))


def test_random_start_is_seeded_and_in_range():
    a = RtpSender.random(random.Random(7), 0)
    b = RtpSender.random(random.Random(7), 0)
    assert (a.ssrc, a.seq, a.timestamp) == (b.ssrc, b.seq, b.timestamp)
    ssrc, seq, ts = random_start(random.Random(8))
    assert 0 <= ssrc < 2**32 and 0 <= seq < 2**16 and 0 <= ts < 2**32


def test_sender_rejects_bad_values():
    with pytest.raises(LocalError):
        RtpSender(128, 1, 0, 0)
    with pytest.raises(LocalError):
        RtpSender(0, 1, 70000, 0)


# -- receiver: order, loss, duplicates -------------------------------------------


def test_in_order_frames_are_stamped_with_arrival():
    r = pcmu()
    out = []
    for i in range(5):
        out += r.receive(pkt(i), ADDR, T0 + i * 20 * MS + i)  # slightly uneven arrivals
    assert [f.audio for f in out] == [frame(i) for i in range(5)]
    assert [f.t_ns for f in out] == [T0 + i * 20 * MS + i for i in range(5)]
    st_ = r.stats()
    assert (st_.received, st_.expected, st_.lost, st_.out_of_order) == (5, 5, 0, 0)
    assert r.remote_addr == ADDR and r.ssrc == 0x1234
    assert r.next_timer() is None


def test_receiver_reads_aiortc_packets_with_csrc_extension_and_padding():
    p = RtpPacket(payload_type=0, sequence_number=9, timestamp=99, ssrc=5, payload=frame(3))
    p.csrc = [1, 2]
    p.padding_size = 4
    data = bytearray(p.serialize())
    # splice in a one-word header extension (profile 0xBEDE, length 1) after the CSRCs
    data[0] |= 0x10
    data[20:20] = b"\xbe\xde\x00\x01\x10\xff\x00\x00"
    r = pcmu()
    [f] = r.receive(bytes(data), ADDR, T0)
    assert f.audio == frame(3)
    assert RtpPacket.parse(bytes(data)).payload == frame(3)  # aiortc agrees
    assert r.stats().malformed == 0


def test_swapped_pair_comes_out_in_sequence_order():
    r = pcmu()
    assert len(r.receive(pkt(0), ADDR, T0)) == 1
    assert r.receive(pkt(2), ADDR, T0 + 20 * MS) == []  # held: 1 is missing
    assert r.next_timer() == T0 + 80 * MS
    out = r.receive(pkt(1), ADDR, T0 + 25 * MS)
    assert [f.audio for f in out] == [frame(1), frame(2)]
    # stamps never go backwards: 2 arrived first but plays after 1
    assert [f.t_ns for f in out] == [T0 + 25 * MS, T0 + 25 * MS]
    st_ = r.stats()
    assert (st_.out_of_order, st_.late, st_.lost, st_.skipped) == (1, 0, 0, 0)


def test_late_packet_after_the_window_is_dropped_and_counted():
    r = pcmu()
    r.receive(pkt(0), ADDR, T0)
    assert r.receive(pkt(2), ADDR, T0 + 20 * MS) == []
    assert r.flush(T0 + 79 * MS) == []  # still waiting for 1
    [f] = r.flush(T0 + 80 * MS)  # 60 ms after 2 arrived: give up on 1
    assert (f.audio, f.t_ns) == (frame(2), T0 + 20 * MS)
    assert r.receive(pkt(1), ADDR, T0 + 90 * MS) == []  # too late
    out = r.receive(pkt(3), ADDR, T0 + 91 * MS)
    assert [x.audio for x in out] == [frame(3)]
    st_ = r.stats()
    assert (st_.late, st_.skipped, st_.loss_bursts, st_.lost, st_.received) == (1, 1, 1, 0, 4)


def test_window_releases_after_three_held_packets():
    r = pcmu()
    r.receive(pkt(0), ADDR, T0)
    for i in (2, 3, 4):
        assert r.receive(pkt(i), ADDR, T0 + i * MS) == []
    out = r.receive(pkt(5), ADDR, T0 + 5 * MS)  # a fourth: 1 is given up
    assert [f.audio for f in out] == [frame(i) for i in (2, 3, 4, 5)]
    st_ = r.stats()
    assert (st_.lost, st_.skipped, st_.loss_bursts) == (1, 1, 1)


def test_duplicates_are_dropped_and_counted():
    r = pcmu()
    out = []
    for i in (0, 1, 1, 2, 0, 2, 3):
        out += r.receive(pkt(i), ADDR, T0 + i * 20 * MS)
    assert [f.audio for f in out] == [frame(i) for i in range(4)]
    st_ = r.stats()
    assert (st_.duplicates, st_.received, st_.lost, st_.out_of_order) == (3, 4, 0, 0)


def test_duplicate_of_a_held_packet():
    r = pcmu()
    r.receive(pkt(0), ADDR, T0)
    r.receive(pkt(2), ADDR, T0 + MS)
    r.receive(pkt(2), ADDR, T0 + 2 * MS)
    out = r.receive(pkt(1), ADDR, T0 + 3 * MS)
    assert [f.audio for f in out] == [frame(1), frame(2)]
    assert r.stats().duplicates == 1


def test_loss_is_counted_exactly():
    rng = random.Random(3)
    dropped = set(rng.sample(range(1, 199), 17))
    r = pcmu()
    out = []
    t = T0
    for i in range(200):
        t += 20 * MS
        if i not in dropped:
            out += r.receive(pkt(i), ADDR, t)
        out += r.flush(t)
    out += r.flush(t + 100 * MS)
    st_ = r.stats()
    assert (st_.expected, st_.received, st_.lost) == (200, 183, 17)
    assert st_.fraction_lost == pytest.approx(17 / 200)
    assert st_.skipped == 17
    assert [f.audio for f in out] == [frame(i) for i in range(200) if i not in dropped]


def test_sequence_wrap_in_order_and_reordered():
    r = pcmu()
    seqs = [65533, 65534, 0, 65535, 1, 2]  # 65535 and 0 swapped across the wrap
    out = []
    for k, s in enumerate(seqs):
        out += r.receive(pkt(s, ts=k * 160), ADDR, T0 + k * 20 * MS)
    assert [f.audio for f in out] == [frame(s) for s in (65533, 65534, 65535, 0, 1, 2)]
    st_ = r.stats()
    assert (st_.expected, st_.lost, st_.out_of_order, st_.late) == (6, 0, 1, 0)


def test_loss_across_the_wrap():
    r = pcmu()
    for k, s in enumerate([65530, 65531, 65535, 3, 4]):
        r.receive(pkt(s), ADDR, T0 + k * 20 * MS)
    r.flush(T0 + 200 * MS)
    st_ = r.stats()
    assert (st_.expected, st_.received, st_.lost) == (11, 5, 6)


def test_interval_fraction_lost():
    r = pcmu()
    for i in (0, 1, 3):
        r.receive(pkt(i), ADDR, T0 + i * MS)
    assert r.interval_fraction_lost() == pytest.approx(1 / 4)
    for i in range(4, 8):
        r.receive(pkt(i), ADDR, T0 + i * MS)
    assert r.interval_fraction_lost() == 0.0


# -- jitter ----------------------------------------------------------------------


def test_jitter_matches_a_hand_computed_series():
    # 20 ms of timestamp per packet (160 units); arrivals 0, 20, 45, 60, 80 ms:
    # D = 0, +40, -40, 0 units; J = 0, 2.5, 2.5 + 37.5/16, (that) * 15/16
    r = pcmu()
    for i, t in enumerate([0, 20, 45, 60, 80]):
        r.receive(pkt(i), ADDR, T0 + t * MS)
    j_units = (2.5 + 37.5 / 16) * 15 / 16
    assert j_units == 4.541015625
    assert r.stats().jitter_ms == j_units / 8  # exact: 0.567626953125


def test_jitter_is_zero_for_a_perfect_stream_and_ignores_duplicates():
    r = pcmu()
    for i in range(50):
        r.receive(pkt(i), ADDR, T0 + i * 20 * MS)
        r.receive(pkt(i), ADDR, T0 + i * 20 * MS + 7 * MS)  # duplicate, late: ignored
    assert r.stats().jitter_ms == 0.0
    assert r.stats().duplicates == 50


def test_jitter_across_timestamp_wrap():
    r = pcmu()
    base = 2**32 - 320
    for i in range(4):
        r.receive(pkt(i, ts=base + i * 160), ADDR, T0 + i * 20 * MS)
    assert r.stats().jitter_ms == 0.0


# -- receiver: codecs and what is not audio ---------------------------------------


def test_pcma_is_decoded_to_the_same_mu_law():
    rng = np.random.default_rng(2)
    ulaw = bytes(rng.integers(0, 256, FRAME_BYTES, dtype=np.uint8))
    s = RtpSender(8, ssrc=9, seq=0, timestamp=0, codec=Codec.PCMA)
    r = RtpReceiver({8: Codec.PCMA})
    [f] = r.receive(s.audio(ulaw), ADDR, T0)
    assert f.audio == ulaw.translate(ULAW_TO_ALAW).translate(ALAW_TO_ULAW)
    want = ulaw_decode(ulaw).astype(np.int32)
    got = ulaw_decode(f.audio).astype(np.int32)
    assert np.all(np.abs(got - want) <= np.maximum(16, np.abs(want) // 8))
    # A-law has no zero: its silence code (+8) becomes the mu-law code nearest +8
    assert abs(int(ulaw_decode(bytes([ALAW_TO_ULAW[0xD5]]))[0])) == 8


def test_both_audio_payload_types_when_the_answer_allows_both():
    r = RtpReceiver({0: Codec.PCMU, 8: Codec.PCMA})
    s = RtpSender(8, ssrc=0x1234, seq=1, timestamp=160, codec=Codec.PCMA)
    out = r.receive(pkt(0), ADDR, T0) + r.receive(s.audio(b"\xff" * 160), ADDR, T0 + 20 * MS)
    assert [f.audio for f in out] == [
        frame(0),
        (b"\xff" * 160).translate(ULAW_TO_ALAW).translate(ALAW_TO_ULAW),
    ]


def _rtcp_datagrams() -> list[bytes]:
    rr = RtcpRrPacket(
        ssrc=1,
        reports=[
            RtcpReceiverInfo(
                ssrc=2, fraction_lost=0, packets_lost=0, highest_sequence=5, jitter=0, lsr=0, dlsr=0
            )
        ],
    )
    sr = RtcpSrPacket(
        ssrc=1,
        sender_info=RtcpSenderInfo(ntp_timestamp=1, rtp_timestamp=2, packet_count=3, octet_count=4),
    )
    return [bytes(p) for p in (rr, sr, RtcpRrPacket(ssrc=1), RtcpByePacket(sources=[1]))]


def test_rtcp_is_counted_never_audio():
    r = pcmu()
    r.receive(pkt(0), ADDR, T0)
    datagrams = _rtcp_datagrams()
    for d in datagrams:
        assert is_rtcp(d)
        assert r.receive(d, ADDR, T0 + MS) == []
    out = r.receive(pkt(1), ADDR, T0 + 20 * MS)
    assert [f.audio for f in out] == [frame(1)]
    st_ = r.stats()
    assert (st_.rtcp, st_.malformed, st_.lost, st_.received) == (len(datagrams), 0, 0, 2)


def test_telephone_events_are_never_audio():
    s = RtpSender(0, ssrc=0x1234, seq=0, timestamp=0)
    dtmf = DtmfSender(s, 101)
    r = pcmu()
    out = r.receive(s.audio(frame(1)), ADDR, T0)
    dtmf.start("7", 60)
    t = T0
    while (data := dtmf.tick()) is not None:
        t += 20 * MS
        out += r.receive(data, ADDR, t)
    out += r.receive(s.audio(frame(2)), ADDR, t + 20 * MS)
    assert [f.audio for f in out] == [frame(1), frame(2)]
    [digit] = r.take_dtmf()
    assert digit.digit == "7" and digit.ended and digit.duration_ms == 60.0
    assert r.take_dtmf() == []
    st_ = r.stats()
    assert (st_.lost, st_.expected, st_.unknown_payload_type) == (
        0,
        2 + 5,
        0,
    )  # 60 ms: 160, 320, 480 (E) x 3


def test_unknown_payload_type_is_counted_and_keeps_the_sequence():
    r = pcmu()
    r.receive(pkt(0), ADDR, T0)
    assert r.receive(pkt(1, pt=13, payload=b"\x40"), ADDR, T0 + 20 * MS) == []  # comfort noise
    assert len(r.receive(pkt(2), ADDR, T0 + 40 * MS)) == 1  # not held behind a gap
    st_ = r.stats()
    assert (st_.unknown_payload_type, st_.lost) == (1, 0)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80",
        b"\x80\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00",  # 11 bytes
        bytes([0x40, 0]) + bytes(10) + frame(0),  # version 1
        bytes([0x00, 0]) + bytes(10) + frame(0),  # version 0
        bytes([0x83, 0]) + bytes(10) + b"\x00\x00",  # 3 CSRCs, 2 bytes left
        bytes([0x90, 0]) + bytes(10) + b"\xbe\xde",  # extension header truncated
        bytes([0x90, 0]) + bytes(10) + b"\xbe\xde\x00\x09" + bytes(8),  # extension too long
        bytes([0xA0, 0]) + bytes(10) + frame(0)[:-1] + b"\x00",  # padding count 0
        bytes([0xA0, 0]) + bytes(10) + b"\x01\x02\xff",  # padding longer than the payload
    ],
)
def test_garbage_is_counted_as_malformed(data):
    r = pcmu()
    assert r.receive(data, ADDR, T0) == []
    assert r.stats().malformed == 1
    assert r.stats().received == 0


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=20))
def test_garbage_never_raises(datagrams):
    r = pcmu()
    for i, d in enumerate(datagrams):
        frames = r.receive(d, ADDR, T0 + i * MS)
        assert all(isinstance(f.audio, bytes) for f in frames)
    r.flush(T0 + 10**9)
    s = r.stats()
    assert s.lost >= 0 and s.expected >= 0


@settings(max_examples=300, deadline=None)
@given(
    start=st.integers(0, 65535),
    keep=st.lists(st.booleans(), min_size=1, max_size=120),
    swaps=st.lists(st.integers(1, 119), max_size=10),
)
def test_any_loss_and_swaps_play_in_order_and_add_up(start, keep, swaps):
    seqs = [start + i for i, k in enumerate([True, *keep]) if k]
    for j in swaps:  # swap neighbours (the first packet stays first: it sets the base)
        if j + 1 < len(seqs):
            seqs[j], seqs[j + 1] = seqs[j + 1], seqs[j]
    r = pcmu()
    out = []
    t = T0
    for s in seqs:
        t += 20 * MS
        out += r.receive(pkt(s, payload=s.to_bytes(4, "big") * 40), ADDR, t)
        out += r.flush(t)
    out += r.flush(t + 10**9)
    stamps = [f.t_ns for f in out]
    assert stamps == sorted(stamps)
    played = [int.from_bytes(f.audio[:4], "big") for f in out]
    assert played == sorted(set(played))  # in sequence order, each once
    st_ = r.stats()
    assert st_.received + st_.lost == st_.expected == max(seqs) - seqs[0] + 1
    assert len(out) + st_.late == st_.received
    assert st_.skipped == st_.lost + st_.late


def test_a_packet_older_than_the_first_is_late():
    r = pcmu()
    assert len(r.receive(pkt(6), ADDR, T0)) == 1
    assert r.receive(pkt(5), ADDR, T0 + MS) == []
    st_ = r.stats()
    assert (st_.late, st_.received, st_.expected, st_.lost) == (1, 1, 1, 0)


# -- sources ---------------------------------------------------------------------


def test_ssrc_change_is_counted_and_followed():
    r = pcmu()
    out = r.receive(pkt(10, ssrc=1), ADDR, T0) + r.receive(pkt(11, ssrc=1), ADDR, T0 + MS)
    out += r.receive(pkt(500, ssrc=2), ADDR, T0 + 2 * MS)
    out += r.receive(pkt(501, ssrc=2), ADDR, T0 + 3 * MS)
    assert [f.audio for f in out] == [frame(i) for i in (10, 11, 500, 501)]
    st_ = r.stats()
    assert (st_.ssrc_changes, st_.expected, st_.lost) == (1, 4, 0)
    assert r.ssrc == 2


def test_source_address_change_is_counted_and_exposed():
    r = pcmu()
    other = ("198.51.100.7", 5004)
    r.receive(pkt(0), ADDR, T0)
    assert len(r.receive(pkt(1), other, T0 + MS)) == 1
    assert r.remote_addr == other
    assert r.stats().addr_changes == 1


def test_sequence_restart_is_accepted_after_two_in_a_row():
    r = pcmu()
    for i in range(3):
        r.receive(pkt(i), ADDR, T0 + i * MS)
    assert r.receive(pkt(30000), ADDR, T0 + 3 * MS) == []  # one stray jump: dropped
    out = r.receive(pkt(30001), ADDR, T0 + 4 * MS)  # and the next: a restart (RFC 3550 A.1)
    out += r.receive(pkt(30002), ADDR, T0 + 5 * MS)
    assert [f.audio for f in out] == [frame(30001), frame(30002)]
    st_ = r.stats()
    assert (st_.seq_jumps, st_.expected, st_.received, st_.lost) == (1, 5, 5, 0)


def test_media_stats_for_calls_jsonl():
    s = RtpSender(0, ssrc=1, seq=0, timestamp=0)
    for i in range(10):
        s.audio(frame(i))
    r = pcmu()
    for i in (0, 1, 2, 4, 5, 6, 7, 8, 9):
        r.receive(pkt(i), ADDR, T0 + i * 20 * MS)
    m = media_stats(s, r)
    assert (m.packets_sent, m.packets_received, m.packets_expected, m.lost) == (10, 9, 10, 1)
    assert m.loss_ratio == pytest.approx(0.1)
    assert m.mos is not None and 1.0 < m.mos < 4.2
    assert media_stats(None, pcmu()).mos is None


def test_a_30ms_packet_is_heard_as_20ms_frames_on_its_own_grid():
    # SIPp's pcaps carry 30 ms (240 samples) per packet; the ear counts 20 ms frames
    rx = RtpReceiver({0: Codec.PCMU})
    sender = RtpSender(0, 0x1234, 100, 1000)
    frames = rx.receive(sender.packet(0, bytes(range(240)), timestamp=1000), ("h", 1), 5_000)
    assert [(f.t_ns, len(f.audio)) for f in frames] == [(5_000, 160), (5_000 + 20_000_000, 80)]
    assert b"".join(f.audio for f in frames) == bytes(range(240))
    later = rx.receive(sender.packet(0, bytes(160), timestamp=1240), ("h", 1), 10_000_000)
    assert later[0].t_ns == 20_005_000  # never before the frames already heard


def test_unknown_payload_types_are_counted_by_type():
    r = pcmu()  # an agent sending A-law on a call that agreed mu-law, and comfort noise
    for i, pt in enumerate([8, 8, 0, 13, 8]):
        r.receive(pkt(i, pt=pt), ADDR, T0 + i * 20 * MS)
    assert r.unknown_payload_type == 4
    assert r.unknown_payload_types == {8: 3, 13: 1}


def test_a_codec_change_keeps_the_stream_and_is_heard():
    s = RtpSender(0, 0x1234, 10, 1600)
    first = s.audio(frame(0))
    s.switch(8, Codec.PCMA)  # a re-INVITE chose PCMA
    second = s.audio(frame(1))
    assert (first[1], second[1]) == (0, 8)
    assert second[12:] == frame(1).translate(ULAW_TO_ALAW)
    assert struct.unpack("!HII", second[2:12]) == (11, 1760, 0x1234)  # one stream goes on
    r = pcmu()
    r.accept(8, Codec.PCMA, dtmf_payload_type=101)
    heard = r.receive(pkt(0), ADDR, T0) + r.receive(
        pkt(1, pt=8, payload=frame(1).translate(ULAW_TO_ALAW)), ADDR, T0 + 20 * MS)
    back = frame(1).translate(ULAW_TO_ALAW).translate(ALAW_TO_ULAW)
    assert [f.audio for f in heard] == [frame(0), back]  # the old codec still plays too
    assert r.stats().unknown_payload_type == 0
