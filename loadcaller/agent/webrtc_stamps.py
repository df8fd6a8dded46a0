"""The reference agent's exact instants over aiortc: when a frame left, when one arrived.

The ground truth is only as good as where its clock is read. Over SIP the agent
stamps a packet first thing in ``datagram_received`` and a reply frame right
after ``sendto``; these make the WebRTC side do the same through aiortc's layers
(a sender task between a push and the socket, a DTLS task between the socket
and the receiver), which otherwise put scheduling delay into the agent's
figures, growing with the number of calls sharing its loop: the reply frames
are sent in the session's own step (:class:`WebRtcLine`), and each datagram is
stamped as aioice queues it (:class:`ArrivalQueue`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from loadcaller.timebase import now_ns
from loadcaller.webrtc.media import AudioCodec, ClockTrack, TrackTap
from loadcaller.webrtc.rtpsend import DirectRtp


class SentTrack(ClockTrack):
    """A :class:`ClockTrack` that tells when the sender has taken a frame.

    aiortc's sender turns the packet :meth:`recv` returns into RTP, protects it
    and hands it to the socket in the same step of its task, so a waiter woken
    here runs after the frame has left: that is the instant the ground truth
    records as sent (after ``sendto``, as over SIP; after ``ws.send`` over
    Twilio), not the earlier push.
    """

    def __init__(self, codec: AudioCodec = "PCMU") -> None:
        super().__init__(codec)
        self.reading = False  # the sender waits in recv(): a push goes out at once
        self._sent: list[asyncio.Future[None]] = []

    def when_sent(self) -> asyncio.Future[None] | None:
        """A future done once the sender has taken what was pushed (None: it is not reading)."""
        if not self.reading:
            return None
        fut = asyncio.get_running_loop().create_future()
        self._sent.append(fut)
        return fut

    async def recv(self) -> Any:
        self.reading = True
        try:
            packet = await super().recv()
        finally:
            self.reading = False
            sent, self._sent = self._sent, []
            for fut in sent:
                if not fut.done():
                    fut.set_result(None)
        return packet


class ArrivalQueue(asyncio.Queue):  # type: ignore[type-arg]
    """aioice's queue of received datagrams, each stamped the instant it was queued.

    aioice queues a datagram in ``datagram_received``'s own call; the DTLS task
    takes it later, decrypts it and only then hands the RTP to the receiver, a
    task switch that grows with the number of calls sharing the loop (a
    millisecond or more at 20 calls). The ground truth's receive instant is
    :attr:`last_arrival`, the stamp of the datagram being handled: first thing
    on receive, as over SIP. (One DTLS task per connection takes one datagram at
    a time and handles it to the end before the next, so it is always the one.)
    """

    def _init(self, maxsize: int) -> None:
        self._queue: deque[tuple[int, Any]] = deque()
        self.last_arrival = 0

    def _put(self, item: Any) -> None:
        self._queue.append((now_ns(), item))

    def _get(self) -> Any:
        self.last_arrival, item = self._queue.popleft()
        return item


def stamp_arrivals(transceiver: Any, tap: TrackTap) -> bool:
    """Stamp ``tap``'s packets at datagram arrival (see :class:`ArrivalQueue`).

    Reaches into aiortc and aioice; returns False (the tap keeps stamping after
    decryption) when their insides are not as expected.
    """
    connection = getattr(getattr(getattr(transceiver.receiver, "transport", None),
                                 "transport", None), "_connection", None)
    old = getattr(connection, "_queue", None)
    if not isinstance(old, asyncio.Queue) or not old.empty():
        return False
    queue = ArrivalQueue()
    connection._queue = queue  # type: ignore[union-attr]

    async def on_rtp(packet: Any, arrival_time_ms: int = 0) -> None:
        tap.on_packet(packet.payload_type, packet.sequence_number, packet.payload,
                      queue.last_arrival or now_ns())

    transceiver.receiver._handle_rtp_packet = on_rtp  # aiortc calls the instance's
    return True


class WebRtcLine:
    """A session's outbound side: RTP sent in the session's own step, else via aiortc.

    Once the call is connected, :attr:`direct` (the callers' own
    :class:`~loadcaller.webrtc.rtpsend.DirectRtp`) sends each frame with one
    ``sendto`` inside :meth:`send_audio`, so the instant the session reads after
    it is the send instant, exactly as over SIP. Until then, or where DirectRtp
    cannot attach, frames go through aiortc's sender and :class:`SentTrack`.
    """

    def __init__(self, track: SentTrack) -> None:
        self.track = track
        self.direct: DirectRtp | None = None

    async def send_audio(self, frame: bytes) -> None:
        """Send one frame; return once it has left (see the class docstring)."""
        direct = self.direct
        if direct is not None:
            for payload, samples in self.track.payloads(frame):
                if not direct.send(payload, samples):
                    self.direct = None  # closing: aiortc's sender from the next frame on
            return
        self.track.push(frame)
        sent = self.track.when_sent()
        if sent is not None:
            await sent

    async def clear(self) -> None:
        """Nothing to clear: frames go out as they are sent."""

    async def mark(self, name: str) -> None:
        """WebRTC has no marks."""
