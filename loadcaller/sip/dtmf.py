"""RFC 4733 telephone-events (DTMF digits in the RTP stream), sans-I/O.

How this works: a digit is one event with one RTP timestamp, the instant it
began. While the key is down the sender repeats the event every 20 ms (one
media clock tick) with the duration so far; the first packet has the marker
bit; the last one has the E bit and is sent three times in all (RFC 4733
2.5.1.4), each with a new sequence number but the same timestamp and duration.
A 100 ms digit is therefore seven packets over seven ticks: durations 160, 320,
480, 640, 800 (E), 800 (E), 800 (E).

:class:`DtmfSender` borrows the call's :class:`~loadcaller.sip.rtp.RtpSender`
so audio and events share one SSRC and sequence space, and advances the
stream's timestamp by a frame on every tick it takes: audio after the digit
carries on where the wall clock is. The glue sends ``dtmf.tick()`` instead of an
audio frame while :attr:`DtmfSender.busy`.

:class:`DtmfReceiver` reports each digit once, when its first end packet
arrives (retransmitted end packets are recognised by their timestamp), or when
a newer event starts or nothing more arrives for ``timeout_ns`` after its end
packets were lost (``ended=False`` then).
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from loadcaller.errors import LocalError
from loadcaller.media.frames import FRAME_SAMPLES, SAMPLE_RATE
from loadcaller.timebase import NS_PER_MS

if TYPE_CHECKING:
    from loadcaller.sip.rtp import RtpSender

__all__ = [
    "DEFAULT_PAYLOAD_TYPE",
    "EVENTS",
    "DtmfDigit",
    "DtmfReceiver",
    "DtmfSender",
    "event_payload",
]

EVENTS: Final = "0123456789*#ABCD"
"""The DTMF events of RFC 4733 section 3.2; the event code is the index."""
DEFAULT_PAYLOAD_TYPE: Final = 101  # the customary dynamic type for telephone-event/8000
END_REPEATS: Final = 3
MAX_DURATION: Final = 0xFFFF  # the 16-bit duration field, in timestamp units

_EVENT: Final = struct.Struct("!BBH")  # event, E|R|volume, duration


def event_payload(event: int, *, end: bool, volume: int, duration: int) -> bytes:
    """The 4-byte telephone-event payload (volume in -dBm0, 0-63; duration in samples)."""
    return _EVENT.pack(event, (0x80 if end else 0) | (volume & 0x3F), duration)


@dataclass(frozen=True, slots=True)
class DtmfDigit:
    """A digit heard: its event timestamp, when its first packet arrived, how long it lasted.

    ``ended`` is False when its end packets never came (a newer event or the
    timeout closed it); ``duration_ms`` is then the last duration reported.
    """

    digit: str
    duration_ms: float
    timestamp: int
    t_ns: int
    ended: bool
    volume: int


class DtmfSender:
    """Telephone-event packets for one digit at a time, paced by the media clock."""

    __slots__ = (
        "_duration",
        "_ends_left",
        "_event",
        "_sent",
        "_timestamp",
        "clock_rate",
        "frame_samples",
        "payload_type",
        "rtp",
        "volume",
    )

    def __init__(
        self,
        rtp: RtpSender,
        payload_type: int = DEFAULT_PAYLOAD_TYPE,
        *,
        volume: int = 10,
        clock_rate: int = SAMPLE_RATE,
        frame_samples: int = FRAME_SAMPLES,
    ) -> None:
        if not 0 <= volume <= 63:
            raise LocalError(f"DTMF volume {volume} is not in 0-63 (-dBm0)")
        self.rtp = rtp
        self.payload_type = payload_type
        self.volume = volume
        self.clock_rate = clock_rate
        self.frame_samples = frame_samples
        self._event = -1
        self._timestamp = 0
        self._duration = 0  # of the whole tone, in samples
        self._sent = 0  # duration reported so far
        self._ends_left = 0

    @property
    def busy(self) -> bool:
        """Whether a digit is still being sent (send :meth:`tick` instead of audio)."""
        return self._event >= 0

    def start(self, digit: str, duration_ms: int = 100) -> None:
        """Begin sending ``digit`` (0-9, *, #, A-D) for ``duration_ms`` of tone."""
        if self.busy:
            raise LocalError("a DTMF digit is already being sent")
        event = EVENTS.find(digit.upper()) if len(digit) == 1 else -1
        if event < 0:
            raise LocalError(f"{digit!r} is not a DTMF digit (0-9, *, #, A-D)")
        duration = duration_ms * self.clock_rate // 1000
        if not 0 < duration <= MAX_DURATION:
            raise LocalError(f"DTMF duration {duration_ms} ms is not in 1-8191 ms")
        self._event = event
        self._timestamp = self.rtp.timestamp
        self._duration = duration
        self._sent = 0
        self._ends_left = END_REPEATS

    def tick(self) -> bytes | None:
        """The packet for this 20 ms tick, or None when no digit is being sent."""
        if self._event < 0:
            return None
        first = self._sent == 0
        self._sent = min(self._sent + self.frame_samples, self._duration)
        end = self._sent >= self._duration
        payload = event_payload(self._event, end=end, volume=self.volume, duration=self._sent)
        data = self.rtp.packet(self.payload_type, payload, timestamp=self._timestamp, marker=first)
        self.rtp.advance(self.frame_samples)  # the tick's time passed in the stream too
        if end:
            self._ends_left -= 1
            if self._ends_left == 0:
                self._event = -1
        return data


class DtmfReceiver:
    """Digits from telephone-event payloads (see the module docstring)."""

    __slots__ = (
        "_done",
        "_duration",
        "_event",
        "_last_ns",
        "_start_ns",
        "_ts",
        "_volume",
        "clock_rate",
        "malformed",
        "timeout_ns",
        "unknown_events",
    )

    def __init__(self, *, clock_rate: int = SAMPLE_RATE, timeout_ns: int = 250 * NS_PER_MS):
        self.clock_rate = clock_rate
        self.timeout_ns = timeout_ns
        self._ts: int | None = None  # timestamp of the event in progress
        self._event = 0
        self._volume = 0
        self._duration = 0
        self._start_ns = 0
        self._last_ns = 0
        self._done: deque[int] = deque(maxlen=8)  # timestamps of events already reported
        self.malformed = 0
        self.unknown_events = 0

    def receive(self, payload: bytes, timestamp: int, now_ns: int) -> list[DtmfDigit]:
        """Take one telephone-event payload; return the digits it completes (usually none)."""
        if len(payload) < 4:
            self.malformed += 1
            return []
        event, flags, duration = _EVENT.unpack_from(payload)
        if event >= len(EVENTS):
            self.unknown_events += 1  # flash, tones: not digits
            return []
        if timestamp in self._done:
            return []  # a retransmitted end, or a straggler of a reported digit
        digits: list[DtmfDigit] = []
        if self._ts is not None and timestamp != self._ts:
            digits.append(self._finish(ended=False))
        if self._ts is None:
            self._ts = timestamp
            self._event = event
            self._start_ns = now_ns
            self._duration = 0
        self._volume = flags & 0x3F
        self._duration = max(self._duration, duration)
        self._last_ns = now_ns
        if flags & 0x80:
            digits.append(self._finish(ended=True))
        return digits

    def expire(self, now_ns: int) -> DtmfDigit | None:
        """Close an event whose end packets never came, ``timeout_ns`` after its last packet."""
        if self._ts is not None and now_ns - self._last_ns >= self.timeout_ns:
            return self._finish(ended=False)
        return None

    def _finish(self, *, ended: bool) -> DtmfDigit:
        assert self._ts is not None
        digit = DtmfDigit(
            digit=EVENTS[self._event],
            duration_ms=self._duration * 1000 / self.clock_rate,
            timestamp=self._ts,
            t_ns=self._start_ns,
            ended=ended,
            volume=self._volume,
        )
        self._done.append(self._ts)
        self._ts = None
        return digit
