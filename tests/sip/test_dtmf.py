"""RFC 4733 telephone-events: the packets of a digit, reporting each digit once."""

from __future__ import annotations

import struct

import pytest
from aiortc.rtp import RtpPacket

from loadcaller.errors import LocalError
from loadcaller.sip.dtmf import EVENTS, DtmfReceiver, DtmfSender, event_payload
from loadcaller.sip.rtp import Codec, RtpReceiver, RtpSender

MS = 1_000_000
ADDR = ("192.0.2.10", 40000)
T0 = 10**12


def drain(dtmf: DtmfSender) -> list[bytes]:
    packets = []
    while (p := dtmf.tick()) is not None:
        packets.append(p)
    return packets


def test_packets_of_a_100_ms_digit_parse_with_aiortc():
    rtp = RtpSender(0, ssrc=0xCAFE, seq=65533, timestamp=8000)
    dtmf = DtmfSender(rtp, 101)
    rtp.audio(b"\xff" * 160)  # audio before: seq 65533, ts 8000
    dtmf.start("5", duration_ms=100)
    assert dtmf.busy
    packets = [RtpPacket.parse(p) for p in drain(dtmf)]
    assert not dtmf.busy
    fields = [struct.unpack("!BBH", p.payload) for p in packets]
    assert [f[0] for f in fields] == [5] * 7
    assert [f[1] & 0x3F for f in fields] == [10] * 7  # volume -10 dBm0
    assert [f[1] >> 7 for f in fields] == [0, 0, 0, 0, 1, 1, 1]  # E bit on the last three
    assert [f[2] for f in fields] == [160, 320, 480, 640, 800, 800, 800]
    assert [p.marker for p in packets] == [1, 0, 0, 0, 0, 0, 0]
    assert {p.timestamp for p in packets} == {8160}  # one timestamp: the start of the event
    assert {p.payload_type for p in packets} == {101}
    assert {p.ssrc for p in packets} == {0xCAFE}
    # the sequence runs on from the audio, across the wrap, and on into the audio after
    assert [p.sequence_number for p in packets] == [65534, 65535, 0, 1, 2, 3, 4]
    after = RtpPacket.parse(rtp.audio(b"\xff" * 160))
    assert after.sequence_number == 5
    assert after.timestamp == 8160 + 7 * 160  # the clock went on during the digit
    assert rtp.stats().packets == 9


def test_a_digit_shorter_than_a_tick_is_its_own_end():
    dtmf = DtmfSender(RtpSender(0, ssrc=1, seq=0, timestamp=0))
    dtmf.start("#", duration_ms=10)
    packets = [RtpPacket.parse(p) for p in drain(dtmf)]
    assert [p.marker for p in packets] == [1, 0, 0]
    assert [struct.unpack("!BBH", p.payload) for p in packets] == [(11, 0x8A, 80)] * 3


def test_uneven_duration_ends_on_the_exact_length():
    dtmf = DtmfSender(RtpSender(0, ssrc=1, seq=0, timestamp=0))
    dtmf.start("1", duration_ms=50)
    durations = [struct.unpack("!BBH", RtpPacket.parse(p).payload)[2] for p in drain(dtmf)]
    assert durations == [160, 320, 400, 400, 400]


def test_bad_digits_and_misuse_are_local_errors():
    dtmf = DtmfSender(RtpSender(0, ssrc=1, seq=0, timestamp=0))
    for bad in ("E", "", "12", "x"):
        with pytest.raises(LocalError):
            dtmf.start(bad)
    with pytest.raises(LocalError):
        dtmf.start("1", duration_ms=9000)  # beyond the 16-bit duration field
    dtmf.start("1")
    with pytest.raises(LocalError):
        dtmf.start("2")
    with pytest.raises(LocalError):
        DtmfSender(RtpSender(0, 1, 0, 0), volume=64)


def test_idle_sender_ticks_nothing():
    rtp = RtpSender(0, ssrc=1, seq=0, timestamp=0)
    assert DtmfSender(rtp).tick() is None
    assert (rtp.seq, rtp.timestamp) == (0, 0)


def test_receiver_reports_each_digit_once_with_its_duration():
    rtp = RtpSender(0, ssrc=1, seq=0, timestamp=1000)
    dtmf = DtmfSender(rtp)
    dtmf.start("9", duration_ms=100)
    rx = DtmfReceiver()
    digits = []
    for i, data in enumerate(drain(dtmf)):
        p = RtpPacket.parse(data)
        digits += rx.receive(p.payload, p.timestamp, T0 + i * 20 * MS)
    [d] = digits
    assert (d.digit, d.duration_ms, d.timestamp, d.t_ns, d.ended, d.volume) == (
        "9",
        100.0,
        1000,
        T0,
        True,
        10,
    )
    assert rx.expire(T0 + 10**9) is None


def test_every_digit_round_trips_through_the_rtp_receiver():
    rtp = RtpSender(0, ssrc=7, seq=100, timestamp=0)
    dtmf = DtmfSender(rtp, 96)
    rx = RtpReceiver({0: Codec.PCMU}, dtmf_payload_type=96)
    t = T0
    frames = []
    for digit in EVENTS:
        frames += rx.receive(rtp.audio(b"\x7f" * 160), ADDR, t)
        dtmf.start(digit, duration_ms=80)
        for data in drain(dtmf):
            t += 20 * MS
            frames += rx.receive(data, ADDR, t)
        t += 20 * MS
    digits = rx.take_dtmf()
    assert "".join(d.digit for d in digits) == EVENTS
    assert {d.duration_ms for d in digits} == {80.0}
    assert all(d.ended for d in digits)
    assert len(frames) == len(EVENTS)  # only the audio frames
    assert rx.stats().lost == 0


def test_lost_end_packets_end_the_digit_by_timeout_or_by_the_next_event():
    rx = DtmfReceiver(timeout_ns=200 * MS)
    assert rx.receive(event_payload(1, end=False, volume=10, duration=160), 500, T0) == []
    assert rx.receive(event_payload(1, end=False, volume=10, duration=320), 500, T0 + 20 * MS) == []
    assert rx.expire(T0 + 219 * MS) is None
    d = rx.expire(T0 + 220 * MS)
    assert d is not None and (d.digit, d.duration_ms, d.ended) == ("1", 40.0, False)
    # a straggler of the closed event is not a new digit
    assert rx.receive(event_payload(1, end=True, volume=10, duration=800), 500, T0 + 300 * MS) == []

    rx.receive(event_payload(2, end=False, volume=10, duration=160), 2000, T0)
    [d2] = rx.receive(event_payload(3, end=False, volume=10, duration=160), 3000, T0 + MS)
    assert (d2.digit, d2.ended) == ("2", False)
    [d3] = rx.receive(event_payload(3, end=True, volume=10, duration=320), 3000, T0 + 2 * MS)
    assert (d3.digit, d3.ended, d3.duration_ms) == ("3", True, 40.0)


def test_end_packet_first_still_reports_once():
    rx = DtmfReceiver()
    [d] = rx.receive(event_payload(0, end=True, volume=10, duration=800), 42, T0)
    assert (d.digit, d.duration_ms) == ("0", 100.0)
    assert rx.receive(event_payload(0, end=True, volume=10, duration=800), 42, T0 + MS) == []
    assert rx.receive(event_payload(0, end=False, volume=10, duration=640), 42, T0 + MS) == []


def test_short_and_unknown_events_are_counted():
    rx = DtmfReceiver()
    assert rx.receive(b"\x01\x02", 1, T0) == []
    assert rx.receive(event_payload(16, end=True, volume=10, duration=800), 1, T0) == []  # flash
    assert (rx.malformed, rx.unknown_events) == (1, 1)
