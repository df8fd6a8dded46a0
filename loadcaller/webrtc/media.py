"""Audio in and out of an aiortc peer connection, paced by the media clock.

:class:`ClockTrack` is the track we send. aiortc's own tracks pace themselves
(one ``asyncio.sleep`` per frame per call); this one hands the sender whatever
the media clock pushed, already encoded: an ``av.Packet`` goes through the
codec's ``pack()`` (no executor hop, no resampler), where a raw ``AudioFrame``
would be encoded in a thread-pool job per frame.

- PCMU: the clock's mu-law frame is the RTP payload, as is.
- Opus: encoded here by libopus at 8 kHz mono (Opus carries any rate on its
  48 kHz RTP clock), 20 ms per packet, synchronously in the tick.

:class:`TrackTap` is the track we hear. It replaces the receiver's
``_handle_rtp_packet`` with a hook that stamps each packet with the instant its
datagram reached us (aioice's queue stamps it in ``datagram_received``, before
the DTLS task's hop; :class:`ArrivalQueue`) and keeps the payload;
:meth:`TrackTap.drain` turns them into 20 ms mu-law frames. aiortc's own path
(jitter buffer, a decoder thread, one ``run_coroutine_threadsafe`` per frame) is
skipped: it would add its buffering delay to every reply onset.
PCMU payloads are the frames; Opus is decoded (libopus always gives 48 kHz),
then downmixed and decimated to 8 kHz once by a polyphase FIR and mu-law encoded.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from loadcaller.audio.g711 import ulaw_decode, ulaw_encode
from loadcaller.media.frames import FRAME_BYTES, FRAME_NS, FRAME_SAMPLES, PlayedFrame
from loadcaller.timebase import now_ns
from loadcaller.webrtc.resample import OPUS_RATE, Decimator, downmix

log = logging.getLogger(__name__)

AudioCodec = Literal["PCMU", "opus"]
CODECS: Final[tuple[str, ...]] = ("PCMU", "opus")

PCMU_TIME_BASE: Final = fractions.Fraction(1, 8000)
DECIMATION: Final = OPUS_RATE // 8000
MAX_QUEUED: Final = 25  # frames kept for a sender that is not reading (500 ms); older dropped
MAX_PENDING: Final = 500  # packets kept between two drains (10 s); a stalled reader drops


class ClockTrack(MediaStreamTrack):
    """The caller's outgoing audio: what the media clock pushes, nothing more (see module)."""

    kind = "audio"

    def __init__(self, codec: AudioCodec = "PCMU") -> None:
        super().__init__()
        if codec not in CODECS:
            raise ValueError(f"codec {codec!r}: one of {', '.join(CODECS)}")
        self.codec = codec
        self._queue: deque[av.Packet] = deque(maxlen=MAX_QUEUED)
        self._waiter: asyncio.Future[av.Packet] | None = None
        self._pts = 0
        self._encoder: Any = None
        self._first_pts: int | None = None
        self.frames_pushed = 0
        self.octets_sent = 0
        if codec == "opus":
            enc = av.CodecContext.create("libopus", "w")
            enc.sample_rate = 8000
            enc.layout = "mono"
            enc.format = "s16"
            enc.bit_rate = 32000
            enc.time_base = PCMU_TIME_BASE
            # complexity 2 of 10: 85 us a frame instead of 115; speech at 32 kb/s keeps well
            enc.options = {"application": "voip", "compression_level": "2"}
            enc.open()
            self._encoder = enc

    def push(self, ulaw_frame: bytes) -> None:
        """Queue one 160-byte 20 ms mu-law frame for the sender (never blocks)."""
        if self.readyState != "live":
            return
        self.frames_pushed += 1
        if self._encoder is None:
            packet = av.Packet(ulaw_frame)
            packet.pts = self._pts
            packet.time_base = PCMU_TIME_BASE
            self._pts += FRAME_SAMPLES
            self._deliver(packet)
            return
        for packet in self._opus(ulaw_frame):
            self._deliver(packet)

    def payloads(self, ulaw_frame: bytes) -> list[tuple[bytes, int]]:
        """``ulaw_frame`` as RTP payloads, each with its length on the RTP clock.

        For a sender that bypasses aiortc's (:class:`~loadcaller.webrtc.rtpsend.DirectRtp`):
        the same encoding as :meth:`push`, nothing queued.
        """
        self.frames_pushed += 1
        if self._encoder is None:
            self.octets_sent += len(ulaw_frame)
            return [(ulaw_frame, FRAME_SAMPLES)]
        out = [(bytes(p), FRAME_SAMPLES * DECIMATION) for p in self._opus(ulaw_frame)]
        self.octets_sent += sum(len(p) for p, _ in out)
        return out

    def _opus(self, ulaw_frame: bytes) -> list[av.Packet]:
        frame = av.AudioFrame.from_ndarray(
            ulaw_decode(ulaw_frame).reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 8000
        frame.pts = self._pts
        frame.time_base = PCMU_TIME_BASE
        self._pts += FRAME_SAMPLES
        packets = list(self._encoder.encode(frame))
        for packet in packets:
            if self._first_pts is None:
                self._first_pts = packet.pts  # libopus starts at minus its pre-skip
            packet.pts -= self._first_pts
            packet.time_base = PCMU_TIME_BASE
        return packets

    def _deliver(self, packet: av.Packet) -> None:
        self.octets_sent += packet.size
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            self._waiter = None
            waiter.set_result(packet)
        else:
            self._queue.append(packet)

    async def recv(self) -> av.Packet:  # type: ignore[override]
        """The next pushed packet (the sender's loop awaits this)."""
        if self._queue:
            return self._queue.popleft()
        if self.readyState != "live":
            raise MediaStreamError
        self._waiter = asyncio.get_running_loop().create_future()
        return await self._waiter

    def stop(self) -> None:
        super().stop()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(MediaStreamError())


class ArrivalQueue(asyncio.Queue):  # type: ignore[type-arg]
    """aioice's queue of received datagrams, each stamped the instant it was queued.

    aioice queues a datagram in ``datagram_received`` itself; the DTLS task takes
    it later, decrypts it and only then hands the RTP to the receiver: a task
    switch that grows with the calls sharing the loop. :attr:`last_arrival` is
    the stamp of the datagram being handled (one DTLS task per connection takes
    one datagram at a time and handles it to the end before the next).
    """

    def _init(self, maxsize: int) -> None:
        self._queue: deque[tuple[int, Any]] = deque()
        self.last_arrival = 0
        self.fast: Callable[[bytes, int], bool] | None = None

    def put_nowait(self, item: Any) -> None:
        """Queue a datagram, unless :attr:`fast` takes it here and now (it returns True).

        While datagrams wait in the queue (the DTLS handshake's last flight, RTP that
        came before it was done) they all go the queue's way, so none overtakes another.
        """
        fast = self.fast
        if fast is not None and item is not None and not self._queue and fast(item[0], now_ns()):
            return
        super().put_nowait(item)

    def _put(self, item: Any) -> None:
        self._queue.append((now_ns(), item))

    def _get(self) -> Any:
        self.last_arrival, item = self._queue.popleft()
        return item

    @classmethod
    def install(cls, receiver: Any) -> ArrivalQueue | None:
        """Put one in place of ``receiver``'s ICE connection's queue (None: not as expected)."""
        connection = getattr(getattr(getattr(receiver, "transport", None), "transport", None),
                             "_connection", None)
        old = getattr(connection, "_queue", None)
        if isinstance(old, ArrivalQueue):
            return old
        if not isinstance(old, asyncio.Queue) or not old.empty():
            return None
        queue = cls()
        connection._queue = queue  # type: ignore[union-attr]
        return queue


@dataclass(slots=True)
class TapStats:
    """What a tap counted: RTP packets, by the sequence numbers' extended range."""

    received: int = 0
    expected: int = 0
    duplicates_or_late: int = 0
    undecodable: int = 0
    dropped_backlog: int = 0
    jitter_ms: float = 0.0  # RFC 3550 A.8 interarrival jitter

    @property
    def lost(self) -> int:
        return max(0, self.expected - self.received)


class TrackTap:
    """The agent's audio as the caller hears it, from one remote audio track (see module).

    ``payload_types`` maps the answer's audio payload types to their codec;
    packets of any other type (comfort noise, telephone-event) are counted and
    not heard.
    """

    def __init__(self, track: MediaStreamTrack, receiver: Any,
                 payload_types: dict[int, AudioCodec]) -> None:
        self.track = track
        self.receiver = receiver
        self.payload_types = dict(payload_types)
        self.stats = TapStats()
        self.ended = False
        self.on_first_packet: Callable[[], None] | None = None
        self._pending: deque[tuple[int, int, bytes]] = deque()
        self._last_stamp = 0
        self._base_seq: int | None = None
        self._ext_max = 0
        self._decoder: Any = None
        self._decimator: Decimator | None = None
        self._last_arrival: int | None = None
        self._last_ts = 0
        self.other_payload = 0
        self.fast_packets = 0  # taken by the fast path (_fast_rtp)
        self._arrivals: ArrivalQueue | None = None
        self._dtls: Any = None
        if receiver is not None:
            receiver._handle_rtp_packet = self._on_rtp  # aiortc calls the instance's
            self._arrivals = ArrivalQueue.install(receiver)
            self._dtls = getattr(receiver, "transport", None)
            if self._arrivals is not None and hasattr(self._dtls, "_rx_srtp"):
                self._arrivals.fast = self._fast_rtp

    def _fast_rtp(self, data: bytes, t_ns: int) -> bool:
        """An SRTP packet taken as it arrives: decrypted and heard without the DTLS task.

        aiortc's path is a task switch per packet (the DTLS transport's reader),
        an ``RtpPacket`` with parsed header extensions, and the receiver's
        coroutine; here it is one ``unprotect`` and a header read. RTCP, DTLS
        and the data channel's SCTP still go the DTLS task's way. This runs in
        aioice's ``datagram_received``, so ``t_ns`` is the arrival instant.
        """
        if len(data) < 12 or not 127 < data[0] < 192 or 192 <= data[1] <= 208:
            return False
        srtp = self._dtls._rx_srtp
        if srtp is None:
            return False  # DTLS not done yet: aiortc's path
        try:
            plain = srtp.unprotect(data)
        except Exception:  # pylibsrtp.Error: replayed, forged or garbled: dropped
            self.stats.undecodable += 1
            return True
        b0 = plain[0]
        pos = 12 + 4 * (b0 & 0x0F)
        if b0 & 0x10 and len(plain) >= pos + 4:
            pos += 4 + 4 * int.from_bytes(plain[pos + 2:pos + 4], "big")
        end = len(plain) - (plain[-1] if b0 & 0x20 else 0)
        if pos > end:
            self.stats.undecodable += 1
            return True
        self.fast_packets += 1
        self.on_packet(plain[1] & 0x7F, int.from_bytes(plain[2:4], "big"), plain[pos:end],
                       t_ns, int.from_bytes(plain[4:8], "big"))
        return True

    async def _on_rtp(self, packet: Any, arrival_time_ms: int = 0) -> None:
        arrivals = self._arrivals
        t = arrivals.last_arrival if arrivals is not None and arrivals.last_arrival else now_ns()
        self.on_packet(packet.payload_type, packet.sequence_number, packet.payload, t,
                       packet.timestamp)

    def on_packet(self, pt: int, seq: int, payload: bytes, t_ns: int,
                  timestamp: int | None = None) -> None:
        """One RTP packet's payload that arrived at ``t_ns`` (the hook's synchronous part)."""
        st = self.stats
        codec = self.payload_types.get(pt)
        if timestamp is not None and codec is not None:
            rate = 8000 if codec == "PCMU" else OPUS_RATE
            if self._last_arrival is not None:
                dts = ((timestamp - self._last_ts + 0x80000000) & 0xFFFFFFFF) - 0x80000000
                dev = abs((t_ns - self._last_arrival) * rate / 1e9 - dts) * 1000 / rate
                st.jitter_ms += (dev - st.jitter_ms) / 16
            self._last_arrival, self._last_ts = t_ns, timestamp
        if self._base_seq is None:
            self._base_seq = self._ext_max = seq
            if self.on_first_packet is not None:
                self.on_first_packet()
        else:
            d = ((seq - self._ext_max + 0x8000) & 0xFFFF) - 0x8000
            if d <= 0:
                st.duplicates_or_late += 1
                st.received += 1
                return  # late or repeated: its slot was heard already
            self._ext_max += d
        st.received += 1
        st.expected = self._ext_max - self._base_seq + 1
        if pt not in self.payload_types:
            self.other_payload += 1
            return
        if len(self._pending) >= MAX_PENDING:
            self._pending.popleft()
            st.dropped_backlog += 1
        self._pending.append((t_ns, pt, payload))

    def drain(self, now_ns: int) -> list[PlayedFrame]:
        """Frames that arrived since the last drain, stamped with their arrival."""
        if not self.ended:
            self._check_ended()
        out: list[PlayedFrame] = []
        pending = self._pending
        while pending:
            t, pt, payload = pending.popleft()
            if self.payload_types[pt] == "PCMU":
                audio_frames = [payload[i:i + FRAME_BYTES]
                                for i in range(0, len(payload), FRAME_BYTES)]
            else:
                audio_frames = self._decode_opus(payload)
            if not audio_frames:
                continue
            stamp = t if t > self._last_stamp else self._last_stamp
            for i, audio in enumerate(audio_frames):  # a 40 ms packet is heard as two frames
                out.append(PlayedFrame(stamp + i * FRAME_NS, audio))
            self._last_stamp = stamp + (len(audio_frames) - 1) * FRAME_NS
        return out

    def _decode_opus(self, payload: bytes) -> list[bytes]:
        if self._decoder is None:
            dec = av.CodecContext.create("libopus", "r")
            dec.sample_rate = OPUS_RATE
            dec.layout = "mono"  # libopus downmixes a stereo stream itself
            dec.format = "s16"
            self._decoder = dec
            self._decimator = Decimator()
        try:
            frames = self._decoder.decode(av.Packet(payload))
        except av.FFmpegError as exc:  # a damaged packet is one frame of silence
            self.stats.undecodable += 1
            log.debug("undecodable Opus packet: %s", exc)
            return []
        assert self._decimator is not None
        out: list[bytes] = []
        for frame in frames:
            pcm = frame.to_ndarray().reshape(-1)
            mono = downmix(pcm, len(frame.layout.channels)) if pcm.size != frame.samples else pcm
            pcm8 = self._decimator.process(mono)
            ulaw = ulaw_encode(pcm8)
            out.extend(ulaw[i:i + FRAME_BYTES] for i in range(0, len(ulaw), FRAME_BYTES))
        return out

    def _check_ended(self) -> None:
        """The remote track ended: aiortc puts None on its queue (RTCP BYE, receiver stop)."""
        if self.track.readyState != "live":
            self.ended = True
            return
        queue = getattr(self.track, "_queue", None)
        while queue is not None and not queue.empty():
            if queue.get_nowait() is None:
                self.ended = True
                return
