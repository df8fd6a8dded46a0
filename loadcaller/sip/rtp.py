"""RTP audio for SIP callers, sans-I/O: packets out, played frames in.

How this works:

- :class:`RtpSender` turns the media clock's 20 ms mu-law frames into RTP
  packets of one stream: sequence +1 and timestamp +160 per frame, the marker
  bit on the first packet of a talk spurt, A-law by a 256-byte table
  (:meth:`bytes.translate`) when PCMA was negotiated. RFC 4733 telephone-events
  (:class:`~loadcaller.sip.dtmf.DtmfSender`) borrow the same sender, so one
  SSRC, sequence and timestamp space runs across audio and DTMF.
- :class:`RtpReceiver` takes each datagram with its source address and the
  instant it arrived (``time.perf_counter_ns()``, taken by the glue first thing)
  and returns the frames now playable, each stamped with its arrival instant
  (raised to the previous frame's stamp when a reordered packet was held, so
  stamps never go backwards). A small reorder window holds packets that arrive
  ahead of a gap: at most ``reorder_packets`` (3) or ``reorder_ns`` (60 ms),
  whichever comes first, then the gap is given up and played over; a packet for
  a slot already played over is dropped and counted ``late``. The glue calls
  :meth:`RtpReceiver.flush` on the clock tick to release held packets whose wait
  has expired, or arms a timer from :meth:`RtpReceiver.next_timer`.
- Statistics follow RFC 3550: extended sequence numbers and the restart rule of
  A.1, loss as extended highest minus base (A.3), interarrival jitter of A.8
  (``J += (|D| - J) / 16`` in timestamp units) on audio packets only, since a
  telephone event keeps one timestamp for its whole duration.
- Everything else that can arrive on the port is counted, never played and never
  raised: RTCP multiplexed on the RTP port (RFC 5761: second byte 192-223),
  telephone-events (routed to :class:`~loadcaller.sip.dtmf.DtmfReceiver`),
  unknown payload types (comfort noise; or an agent sending a codec its answer
  did not name: :attr:`RtpReceiver.unknown_payload_types` says which),
  garbage (``malformed``). A new SSRC or
  a new source address is counted and followed; whether that is an error is the
  glue's decision (:attr:`RtpReceiver.remote_addr` is the latest source).

Why a hand-written header and not :class:`aiortc.rtp.RtpPacket`: 1,000 calls
per process move 50,000 packets a second each way, and this is the inner loop.
Measured here (CPython 3.11, one core, ``timeit`` best of 5): packing the
12-byte header with a precompiled :class:`struct.Struct` plus the payload
concatenation costs 0.10 us against 0.39 us for ``RtpPacket.serialize`` (plus
0.33 us to build the object); unpacking the header costs 0.09 us against
1.05 us for ``RtpPacket.parse``, which also raises on every garbage datagram.
Whole per-packet costs of this module, bookkeeping included:
:meth:`RtpSender.audio` 0.25 us (PCMU) / 0.34 us (PCMA);
:meth:`RtpReceiver.receive` of an in-order packet 1.1 us (PCMU) / 1.2 us (PCMA),
of which 0.27 us is building the frozen :class:`PlayedFrame`; 1.9 us on average
when every pair arrives swapped; an idle :meth:`RtpReceiver.flush` 0.09 us.
So 1,000 calls cost about 7 % of a core in RTP, both directions. The tests
check our bytes against aiortc both ways.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, TypeAlias

from loadcaller.audio.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from loadcaller.errors import LocalError
from loadcaller.media.frames import FRAME_BYTES, FRAME_NS, SAMPLE_RATE, PlayedFrame
from loadcaller.media.quality import MediaStats
from loadcaller.sip.dtmf import DtmfDigit, DtmfReceiver
from loadcaller.timebase import NS_PER_MS, NS_PER_S

__all__ = [
    "ALAW_TO_ULAW",
    "STATIC_PAYLOAD_TYPES",
    "ULAW_TO_ALAW",
    "Addr",
    "Codec",
    "ReceiverStats",
    "RtpReceiver",
    "RtpSender",
    "SenderStats",
    "is_rtcp",
    "media_stats",
    "random_start",
]

Addr: TypeAlias = tuple[Any, ...]
"""A datagram's source address as asyncio gives it: (host, port) or the IPv6 4-tuple."""


class Codec(StrEnum):
    """The audio codecs a SIP caller offers, named as in SDP ``a=rtpmap``."""

    PCMU = "PCMU"
    PCMA = "PCMA"


STATIC_PAYLOAD_TYPES: Final[Mapping[Codec, int]] = {Codec.PCMU: 0, Codec.PCMA: 8}

_CODES = bytes(range(256))
ULAW_TO_ALAW: Final = alaw_encode(ulaw_decode(_CODES))
"""Mu-law code -> A-law code, through the linear sample (for :meth:`bytes.translate`)."""
ALAW_TO_ULAW: Final = ulaw_encode(alaw_decode(_CODES))
"""A-law code -> mu-law code, through the linear sample (for :meth:`bytes.translate`)."""

_HEADER: Final = struct.Struct("!BBHII")  # V/P/X/CC, M/PT, sequence, timestamp, SSRC
HEADER_BYTES: Final = 12
_V2: Final = 0x80  # version 2, no padding, no extension, no CSRC
MAX_DROPOUT: Final = 3000  # RFC 3550 A.1: a forward jump this large is suspect
MAX_MISORDER: Final = 100  # RFC 3550 A.1: a backward step this large is suspect
_SEEN_BITS: Final = 128  # duplicate window, > MAX_MISORDER
_SEEN_MASK: Final = (1 << _SEEN_BITS) - 1


def is_rtcp(datagram: bytes) -> bool:
    """Whether a datagram on an rtcp-mux port is RTCP (RFC 5761 section 4: PT 64-95 with M)."""
    return len(datagram) >= 2 and 192 <= datagram[1] <= 223


def random_start(rng: random.Random) -> tuple[int, int, int]:
    """Random initial (SSRC, sequence, timestamp), as RFC 3550 asks, from a seeded generator."""
    return rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(32)


@dataclass(frozen=True, slots=True)
class SenderStats:
    """What one :class:`RtpSender` sent: packets and payload octets (as in an RTCP SR)."""

    packets: int
    octets: int


class RtpSender:
    """One outgoing RTP stream (see the module docstring)."""

    __slots__ = (
        "_table",
        "codec",
        "octets_sent",
        "packets_sent",
        "payload_type",
        "seq",
        "ssrc",
        "timestamp",
    )

    def __init__(
        self,
        payload_type: int,
        ssrc: int,
        seq: int,
        timestamp: int,
        codec: Codec = Codec.PCMU,
    ) -> None:
        if not 0 <= payload_type <= 127:
            raise LocalError(f"RTP payload type {payload_type} is not in 0-127")
        if not (0 <= ssrc < 1 << 32 and 0 <= seq < 1 << 16 and 0 <= timestamp < 1 << 32):
            raise LocalError("RTP SSRC, sequence or timestamp out of range")
        self.payload_type = payload_type
        self.ssrc = ssrc
        self.seq = seq
        self.timestamp = timestamp
        self.codec = codec
        self._table = ULAW_TO_ALAW if codec is Codec.PCMA else None
        self.packets_sent = 0
        self.octets_sent = 0

    @classmethod
    def random(cls, rng: random.Random, payload_type: int, codec: Codec = Codec.PCMU) -> RtpSender:
        """A sender with random SSRC, sequence and timestamp drawn from ``rng``."""
        ssrc, seq, timestamp = random_start(rng)
        return cls(payload_type, ssrc, seq, timestamp, codec)

    def audio(self, frame_ulaw: bytes, spurt_start: bool = False) -> bytes:
        """The packet for one mu-law frame; the timestamp advances by its samples (160)."""
        payload = frame_ulaw if self._table is None else frame_ulaw.translate(self._table)
        seq = self.seq
        ts = self.timestamp
        pt = self.payload_type
        data = _HEADER.pack(_V2, pt | 0x80 if spurt_start else pt, seq, ts, self.ssrc) + payload
        self.seq = (seq + 1) & 0xFFFF
        self.timestamp = (ts + len(payload)) & 0xFFFFFFFF
        self.packets_sent += 1
        self.octets_sent += len(payload)
        return data

    def switch(self, payload_type: int, codec: Codec) -> None:
        """Send ``codec`` as ``payload_type`` from the next packet on (a re-INVITE or
        UPDATE changed the codec): the same stream, SSRC, sequence and timestamp go on."""
        if not 0 <= payload_type <= 127:
            raise LocalError(f"RTP payload type {payload_type} is not in 0-127")
        self.payload_type = payload_type
        self.codec = codec
        self._table = ULAW_TO_ALAW if codec is Codec.PCMA else None

    def packet(
        self, payload_type: int, payload: bytes, *, timestamp: int, marker: bool = False
    ) -> bytes:
        """Another packet of this stream (a telephone-event): the next sequence number,
        the given timestamp; the stream's timestamp does not move (see :meth:`advance`)."""
        seq = self.seq
        m_pt = payload_type | 0x80 if marker else payload_type
        data = _HEADER.pack(_V2, m_pt, seq, timestamp & 0xFFFFFFFF, self.ssrc) + payload
        self.seq = (seq + 1) & 0xFFFF
        self.packets_sent += 1
        self.octets_sent += len(payload)
        return data

    def advance(self, samples: int) -> None:
        """Move the stream's timestamp on by ``samples`` sent as something else, or not sent."""
        self.timestamp = (self.timestamp + samples) & 0xFFFFFFFF

    def stats(self) -> SenderStats:
        """Packets and payload octets sent so far."""
        return SenderStats(self.packets_sent, self.octets_sent)


@dataclass(frozen=True, slots=True)
class ReceiverStats:
    """One :class:`RtpReceiver`'s counters (RFC 3550 A.3 and A.8, plus what it dropped).

    ``lost`` is the network's loss (expected minus received, duplicates not
    counted); ``late`` packets arrived but after their slot was played over;
    ``skipped`` is the slots played over (lost or late as the listener heard it)
    in ``loss_bursts`` runs.
    """

    received: int
    expected: int
    lost: int
    fraction_lost: float
    out_of_order: int
    duplicates: int
    late: int
    skipped: int
    loss_bursts: int
    jitter_ms: float
    malformed: int
    rtcp: int
    unknown_payload_type: int
    ssrc_changes: int
    addr_changes: int
    seq_jumps: int


# A packet waiting in the reorder window: (arrival ns, payload type, payload, timestamp).
_Held: TypeAlias = tuple[int, int, bytes, int]


class RtpReceiver:
    """One incoming RTP stream and everything else that arrives on its port."""

    __slots__ = (
        "_addr",
        "_bad_seq",
        "_base",
        "_digits",
        "_dtmf_pt",
        "_expected_prior",
        "_ext_max",
        "_held",
        "_jitter",
        "_last_arrival_ns",
        "_last_stamp",
        "_last_ts",
        "_max_held",
        "_next",
        "_received",
        "_report_expected",
        "_report_received",
        "_seen",
        "_ssrc",
        "_tables",
        "_window_ns",
        "addr_changes",
        "clock_rate",
        "dtmf",
        "duplicates",
        "late",
        "loss_bursts",
        "malformed",
        "out_of_order",
        "rtcp",
        "seq_jumps",
        "skipped",
        "ssrc_changes",
        "unknown_payload_type",
        "unknown_payload_types",
    )

    def __init__(
        self,
        codecs: Mapping[int, Codec],
        *,
        dtmf_payload_type: int | None = None,
        clock_rate: int = SAMPLE_RATE,
        reorder_packets: int = 3,
        reorder_ns: int = 60 * NS_PER_MS,
    ) -> None:
        """``codecs`` maps each audio payload type the answer allows to its codec."""
        if not codecs:
            raise LocalError("an RTP receiver needs at least one audio payload type")
        if dtmf_payload_type is not None and dtmf_payload_type in codecs:
            raise LocalError(f"payload type {dtmf_payload_type} is both audio and DTMF")
        self._tables: dict[int, bytes | None] = {
            pt: (ALAW_TO_ULAW if c is Codec.PCMA else None) for pt, c in codecs.items()
        }
        self._dtmf_pt = -1 if dtmf_payload_type is None else dtmf_payload_type
        self.clock_rate = clock_rate
        self._max_held = reorder_packets
        self._window_ns = reorder_ns
        self.dtmf = DtmfReceiver(clock_rate=clock_rate)
        self._digits: list[DtmfDigit] = []
        self._addr: Addr | None = None
        self._ssrc: int | None = None
        # Sequence state of the current source (RFC 3550 A.1, extended numbers).
        self._base = 0
        self._ext_max = 0
        self._bad_seq = -1
        self._seen = 0  # bit i: extended sequence _ext_max - i was received
        self._received = 0
        self._expected_prior = 0  # expected/received of earlier sources (SSRC change, restart)
        self._report_expected = 0  # A.3 interval fraction: totals at the last report
        self._report_received = 0
        # Playout: the next extended sequence to play, packets held ahead of a gap.
        self._next = 0
        self._held: dict[int, _Held] = {}
        self._last_stamp = 0
        # Jitter (A.8), in timestamp units.
        self._jitter = 0.0
        self._last_arrival_ns: int | None = None
        self._last_ts = 0
        self.out_of_order = 0
        self.duplicates = 0
        self.late = 0
        self.skipped = 0
        self.loss_bursts = 0
        self.malformed = 0
        self.rtcp = 0
        self.unknown_payload_type = 0
        self.unknown_payload_types: dict[int, int] = {}  # payload type -> packets (<= 128 keys)
        self.ssrc_changes = 0
        self.addr_changes = 0
        self.seq_jumps = 0

    def accept(self, payload_type: int, codec: Codec, *, dtmf_payload_type: int | None) -> None:
        """Also play ``payload_type`` as ``codec`` (a new SDP answer chose it), and take
        telephone-events on ``dtmf_payload_type``; what was accepted before stays so,
        for packets of the old codec still on their way."""
        if payload_type == self._dtmf_pt:
            self._dtmf_pt = -1
        self._tables[payload_type] = ALAW_TO_ULAW if codec is Codec.PCMA else None
        if dtmf_payload_type is not None and dtmf_payload_type not in self._tables:
            self._dtmf_pt = dtmf_payload_type

    @property
    def remote_addr(self) -> Addr | None:
        """The source address of the latest RTP packet (symmetric RTP sends back to it)."""
        return self._addr

    @property
    def ssrc(self) -> int | None:
        """The SSRC of the stream being played."""
        return self._ssrc

    def receive(self, datagram: bytes, addr: Addr, now_ns: int) -> list[PlayedFrame]:
        """Take one datagram that arrived at ``now_ns``; return the frames now playable."""
        n = len(datagram)
        if n < HEADER_BYTES:
            if n >= 8 and datagram[0] & 0xC0 == _V2 and 192 <= datagram[1] <= 223:
                self.rtcp += 1  # an RTCP RR without report blocks is 8 bytes
            else:
                self.malformed += 1
            return []
        b0, m_pt, seq, ts, ssrc = _HEADER.unpack_from(datagram)
        if b0 & 0xC0 != _V2:
            self.malformed += 1
            return []
        if 192 <= m_pt <= 223:
            self.rtcp += 1
            return []
        if b0 == _V2:
            payload = datagram[HEADER_BYTES:]
        else:
            parsed = _payload(datagram, b0)
            if parsed is None:
                self.malformed += 1
                return []
            payload = parsed

        out: list[PlayedFrame] = []
        if addr != self._addr:
            if self._addr is not None:
                self.addr_changes += 1
            self._addr = addr
        if ssrc != self._ssrc:
            if self._ssrc is not None:
                self.ssrc_changes += 1
                self._end_source(out)
            self._start_source(ssrc, seq)
            ext = seq
        else:
            # Signed distance from the highest sequence so far, modulo 2**16.
            d = ((seq - self._ext_max + 0x8000) & 0xFFFF) - 0x8000
            if 0 < d < MAX_DROPOUT:
                ext = self._ext_max + d
                self._ext_max = ext
                self._seen = ((self._seen << d) | 1) & _SEEN_MASK
            elif -MAX_MISORDER <= d <= 0:
                ext = self._ext_max + d
                if ext < self._base:
                    self.late += 1  # older than the first packet we played
                    return out
                bit = 1 << -d
                if self._seen & bit:
                    self.duplicates += 1
                    return out
                self._seen |= bit
                self.out_of_order += 1
            elif seq == self._bad_seq:
                # Two in a row after a jump: the sender restarted its sequence (A.1).
                self._end_source(out)
                self._start_source(ssrc, seq)
                ext = seq
            else:
                self._bad_seq = (seq + 1) & 0xFFFF
                self.seq_jumps += 1
                return out
        self._received += 1
        pt = m_pt & 0x7F

        tables = self._tables
        audio = pt in tables
        if audio:
            last = self._last_arrival_ns
            if last is not None:
                dts = ((ts - self._last_ts + 0x80000000) & 0xFFFFFFFF) - 0x80000000
                dev = (now_ns - last) * self.clock_rate / NS_PER_S - dts
                self._jitter += ((dev if dev >= 0 else -dev) - self._jitter) / 16
            self._last_arrival_ns = now_ns
            self._last_ts = ts

        nxt = self._next
        if ext == nxt and not self._held:
            self._next = ext + 1
            if audio and len(payload) == FRAME_BYTES:  # the common case, inline
                table = tables[pt]
                last_stamp = self._last_stamp
                t = now_ns if now_ns > last_stamp else last_stamp
                self._last_stamp = t
                out.append(PlayedFrame(t, payload if table is None else payload.translate(table)))
            else:
                self._play(out, (now_ns, pt, payload, ts))
            return out
        if ext < nxt:
            self.late += 1  # its slot was already played over
            return out
        self._held[ext] = (now_ns, pt, payload, ts)
        self._drain(out, now_ns)
        return out

    def flush(self, now_ns: int) -> list[PlayedFrame]:
        """Frames held in the reorder window whose wait has expired by ``now_ns``."""
        out: list[PlayedFrame] = []
        if self._held:
            self._drain(out, now_ns)
        digit = self.dtmf.expire(now_ns)
        if digit is not None:
            self._digits.append(digit)
        return out

    def next_timer(self) -> int | None:
        """When :meth:`flush` will next release something, if anything is held."""
        if not self._held:
            return None
        return min(h[0] for h in self._held.values()) + self._window_ns

    def take_dtmf(self) -> list[DtmfDigit]:
        """The telephone-event digits completed since the last call, each reported once."""
        digits = self._digits
        self._digits = []
        return digits

    def stats(self) -> ReceiverStats:
        """The counters so far (RFC 3550 A.3 cumulative loss, A.8 jitter in ms)."""
        expected = self._expected_total()
        received = self._received_total()
        lost = max(0, expected - received)
        return ReceiverStats(
            received=received,
            expected=expected,
            lost=lost,
            fraction_lost=lost / expected if expected else 0.0,
            out_of_order=self.out_of_order,
            duplicates=self.duplicates,
            late=self.late,
            skipped=self.skipped,
            loss_bursts=self.loss_bursts,
            jitter_ms=self._jitter * 1000 / self.clock_rate,
            malformed=self.malformed,
            rtcp=self.rtcp,
            unknown_payload_type=self.unknown_payload_type,
            ssrc_changes=self.ssrc_changes,
            addr_changes=self.addr_changes,
            seq_jumps=self.seq_jumps,
        )

    def interval_fraction_lost(self) -> float:
        """Fraction lost since the previous call, as an RTCP receiver report states it (A.3)."""
        expected = self._expected_total()
        received = self._received_total()
        exp_int = expected - self._report_expected
        lost_int = exp_int - (received - self._report_received)
        self._report_expected = expected
        self._report_received = received
        return lost_int / exp_int if exp_int > 0 and lost_int > 0 else 0.0

    # -- internals ---------------------------------------------------------------

    def _expected_total(self) -> int:
        current = self._ext_max - self._base + 1 if self._ssrc is not None else 0
        return self._expected_prior + current

    def _received_total(self) -> int:
        return self._received  # cumulative across sources

    def _start_source(self, ssrc: int, seq: int) -> None:
        self._ssrc = ssrc
        self._base = self._ext_max = self._next = seq
        self._bad_seq = -1
        self._seen = 1
        self._last_arrival_ns = None  # transit times of two sources do not compare

    def _end_source(self, out: list[PlayedFrame]) -> None:
        """Play out what is held and fold the source's counts into the totals."""
        while self._held:
            first = min(self._held)
            self._skip_to(first)
            self._play(out, self._held.pop(first))
            self._next = first + 1
        self._expected_prior += self._ext_max - self._base + 1

    def _drain(self, out: list[PlayedFrame], now_ns: int) -> None:
        held = self._held
        while held:
            entry = held.pop(self._next, None)
            if entry is not None:
                self._play(out, entry)
                self._next += 1
                continue
            # A gap at _next: wait for it, unless the window is full or has expired.
            if len(held) <= self._max_held and (
                min(h[0] for h in held.values()) + self._window_ns > now_ns
            ):
                return
            self._skip_to(min(held))

    def _skip_to(self, ext: int) -> None:
        if ext > self._next:
            self.skipped += ext - self._next
            self.loss_bursts += 1
            self._next = ext

    def _play(self, out: list[PlayedFrame], entry: _Held) -> None:
        arrival, pt, payload, ts = entry
        tables = self._tables
        if pt in tables:
            if payload:
                table = tables[pt]
                t = arrival if arrival > self._last_stamp else self._last_stamp
                audio = payload if table is None else payload.translate(table)
                # a packet of another ptime (SIPp's pcaps: 30 ms) is heard as 20 ms frames,
                # so that VAD hangovers, counted in frames, stay true in time
                for i in range(0, len(audio), FRAME_BYTES):
                    out.append(PlayedFrame(t + (i // FRAME_BYTES) * FRAME_NS,
                                           audio[i : i + FRAME_BYTES]))
                self._last_stamp = t + ((len(audio) - 1) // FRAME_BYTES) * FRAME_NS
        elif pt == self._dtmf_pt:
            self._digits.extend(self.dtmf.receive(payload, ts, arrival))
        else:
            self.unknown_payload_type += 1
            seen = self.unknown_payload_types
            seen[pt] = seen.get(pt, 0) + 1


def _payload(datagram: bytes, b0: int) -> bytes | None:
    """The payload of a version-2 packet with CSRCs, an extension or padding; None if bad."""
    n = len(datagram)
    pos = HEADER_BYTES + 4 * (b0 & 0x0F)
    if b0 & 0x10:
        if n < pos + 4:
            return None
        pos += 4 + 4 * int.from_bytes(datagram[pos + 2 : pos + 4], "big")
    if pos > n:
        return None
    end = n
    if b0 & 0x20:
        pad = datagram[-1]
        if pad == 0 or pad > n - pos:
            return None
        end -= pad
    return datagram[pos:end]


def media_stats(
    sender: RtpSender | None, receiver: RtpReceiver, *, delay_ms: float = 0.0
) -> MediaStats:
    """A call's :class:`MediaStats` for calls.jsonl, with its E-model MOS."""
    r = receiver.stats()
    sent = sender.stats() if sender is not None else SenderStats(0, 0)
    return MediaStats.build(
        packets_sent=sent.packets,
        octets_sent=sent.octets,
        packets_received=r.received,
        packets_expected=r.expected,
        lost=r.lost,
        late=r.late,
        skipped=r.skipped,
        loss_bursts=r.loss_bursts,
        jitter_ms=r.jitter_ms,
        out_of_order=r.out_of_order,
        duplicates=r.duplicates,
        malformed=r.malformed,
        rtcp=r.rtcp,
        delay_ms=delay_ms,
    )
