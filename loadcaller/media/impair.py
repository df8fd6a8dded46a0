"""Packet impairment of the caller's own media path, around any transport.

A profile's ``media:`` section impairs what the caller sends and hears without
placing a proxy: the same packet models the chaos proxy uses on UDP
(:mod:`chaos.packet`: loss, Gilbert-Elliott bursts, delay and jitter,
reordering, corruption, outages), applied to 20 ms frames.
:class:`ImpairedTransport` wraps any :class:`~loadcaller.transports.base.CallTransport`:

- outbound, a frame may be lost, held back (a heap keyed by its send instant,
  drained on each send), duplicated or changed before the wrapped transport
  sends it;
- inbound, a heard frame may be lost (heard as silence), heard later, or changed.
"""

from __future__ import annotations

import asyncio
import heapq

from chaos.packet import Impairment
from loadcaller.media.frames import PlayedFrame
from loadcaller.timebase import NS_PER_S, now_ns
from loadcaller.transports.base import CallEnd, CallTransport

__all__ = ["ImpairedTransport", "Impairment"]


class ImpairedTransport(CallTransport):
    """``inner`` with packet models on its outbound and/or inbound audio."""

    def __init__(self, inner: CallTransport, *, outbound: Impairment | None,
                 inbound: Impairment | None) -> None:
        # no super().__init__(): the call ends when the wrapped transport's call ends
        self.inner = inner
        self.name = inner.name  # type: ignore[misc]  # the record names the real transport
        self.ended: asyncio.Future[CallEnd] = inner.ended
        self.outbound = outbound
        self.inbound = inbound
        self._held: list[tuple[float, int, bytes]] = []  # (send at, seq, frame)
        self._seq = 0

    @property
    def remote_id(self) -> str:
        return self.inner.remote_id

    @property
    def media_stats(self) -> dict[str, object] | None:
        return self.inner.media_stats

    async def connect(self) -> None:
        await self.inner.connect()

    async def hangup(self) -> None:
        await self.inner.hangup()

    def send_dtmf(self, digit: str) -> None:
        self.inner.send_dtmf(digit)

    def send_audio(self, frame: bytes) -> None:
        if self.outbound is None:
            self.inner.send_audio(frame)
            return
        now = now_ns() / NS_PER_S
        for at, data in self.outbound.process(frame, now):
            self._seq += 1
            heapq.heappush(self._held, (at, self._seq, data))
        held = self._held
        while held and held[0][0] <= now:
            self.inner.send_audio(heapq.heappop(held)[2])

    def heard(self, now: int) -> list[PlayedFrame]:
        frames = self.inner.heard(now)
        if not frames or self.inbound is None:
            return frames
        return [self._impair(f) for f in frames]

    def _impair(self, frame: PlayedFrame) -> PlayedFrame:
        if not frame.audio or self.inbound is None:
            return frame
        t = frame.t_ns / NS_PER_S
        out = self.inbound.process(frame.audio, t)
        if not out:
            return PlayedFrame(frame.t_ns, b"")  # lost: a gap of silence
        at, data = out[0]
        return PlayedFrame(frame.t_ns + int((at - t) * NS_PER_S), data)
