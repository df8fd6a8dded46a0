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
from typing import Generic, TypeVar

from chaos.packet import Impairment
from loadcaller.media.frames import PlayedFrame
from loadcaller.timebase import NS_PER_S, now_ns
from loadcaller.transports.base import CallEnd, CallTransport

__all__ = ["Held", "ImpairedTransport", "Impairment"]

T = TypeVar("T")


class Held(Generic[T]):
    """What a packet model holds back: items released in order of their due instant."""

    __slots__ = ("_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, T]] = []
        self._seq = 0  # ties keep arrival order

    def __bool__(self) -> bool:
        return bool(self._heap)

    def add(self, at: float, item: T) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, item))

    def due(self, now: float) -> list[tuple[float, T]]:
        """Items due by ``now`` (seconds), oldest first, with their due instants."""
        heap, out = self._heap, []
        while heap and heap[0][0] <= now:
            at, _, item = heapq.heappop(heap)
            out.append((at, item))
        return out


class ImpairedTransport(CallTransport):
    """``inner`` with packet models on its outbound and/or inbound audio."""

    def __init__(self, inner: CallTransport, *, outbound: Impairment | None,
                 inbound: Impairment | None) -> None:
        # no super().__init__(): the call ends when the wrapped transport's call ends
        self.inner = inner
        self.name = inner.name  # type: ignore[misc]  # the record names the real transport
        self.ended: asyncio.Future[CallEnd] = inner.ended
        self.answered_ns: int | None = None
        self.outbound = outbound
        self.inbound = inbound
        self._held: Held[bytes] = Held()

    @property
    def remote_id(self) -> str:
        return self.inner.remote_id

    @property
    def media_stats(self) -> dict[str, object] | None:
        return self.inner.media_stats

    @property
    def transcripts(self) -> list[tuple[int, str]] | None:
        return self.inner.transcripts

    async def connect(self) -> None:
        await self.inner.connect()
        self.answered_ns = self.inner.answered_ns

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
            self._held.add(at, data)
        for _, data in self._held.due(now):
            self.inner.send_audio(data)

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
