"""The caller's Twilio playout over a real websocket: marks and ``clear``.

The peer is a ``websockets`` server on 127.0.0.1 acting as the agent: it sends
media, marks and ``clear`` as the test scripts them, and records every message
the caller (:class:`~loadcaller.transports.twilio_stream.TwilioStreamTransport`)
sends back. The test drives the caller's playout itself, calling ``heard(now)``
at instants chosen on the timeline of the audio's arrival; Twilio plays 8000
bytes of mu-law a second, so byte ``k`` of a burst that arrived at ``t`` has
finished playing at ``t + (k + 1) * 125 us``.

To know that something was *not* sent, the test sends a DTMF digit through the
caller after each ``heard`` and waits for it at the peer: the websocket is in
order, so an echo sent before the digit has arrived before it.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from loadcaller.media.frames import PlayedFrame
from loadcaller.timebase import now_ns
from loadcaller.transports.twilio_stream import TwilioStreamTransport, TwilioTarget

BYTE_NS = 125_000  # 8000 bytes of mu-law per second
LEAD = 16_000  # two seconds of audio before the first mark: the test's own delays fit in it

pytestmark = pytest.mark.timeout(60)


async def until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.002)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


class RecordingAgent:
    """The agent's end of the stream: sends what it is told, records what it gets."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.ws: ServerConnection | None = None
        self._synced = 0  # messages already returned by sync()
        self._digits = 0

    async def handler(self, ws: ServerConnection) -> None:
        self.ws = ws
        async for raw in ws:
            self.received.append(json.loads(raw))

    @property
    def stream_sid(self) -> str:
        start = next(m for m in self.received if m["event"] == "start")
        return str(start["start"]["streamSid"])

    async def send(self, *messages: dict[str, Any]) -> None:
        assert self.ws is not None
        for msg in messages:
            await self.ws.send(json.dumps({**msg, "streamSid": self.stream_sid}))

    async def sync(self, caller: TwilioStreamTransport) -> list[str]:
        """Mark echoes the caller sent since the last sync (a DTMF digit closes the span)."""
        self._digits += 1
        caller.send_dtmf(str(self._digits % 10))
        await until(lambda: sum(m["event"] == "dtmf" for m in self.received) == self._digits,
                    "the DTMF digit that closes the span")
        span = self.received[self._synced:]
        self._synced = len(self.received)
        assert span[-1]["event"] == "dtmf"
        return [m["mark"]["name"] for m in span if m["event"] == "mark"]

    def marks(self) -> list[str]:
        return [m["mark"]["name"] for m in self.received if m["event"] == "mark"]


def media(byte: int, n: int) -> dict[str, Any]:
    return {"event": "media", "media": {"payload": base64.b64encode(bytes([byte]) * n).decode()}}


def mark(name: str) -> dict[str, Any]:
    return {"event": "mark", "mark": {"name": name}}


@pytest.fixture
async def call() -> AsyncIterator[tuple[RecordingAgent, TwilioStreamTransport]]:
    """A caller connected to a recording agent; hung up (and checked) at the end."""
    agent = RecordingAgent()
    async with serve(agent.handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        caller = TwilioTarget(url=f"ws://127.0.0.1:{port}/media").new_transport(call_id="t1")
        await caller.connect()
        await until(lambda: [m["event"] for m in agent.received] == ["connected", "start"],
                    "connected and start")
        yield agent, caller
        await caller.hangup()
        await until(lambda: agent.received[-1]["event"] == "stop", "stop")
    for m in agent.received:
        if m["event"] == "mark":  # echoes name the stream they belong to
            assert m["streamSid"] == agent.stream_sid, m


async def play_start(agent: RecordingAgent, caller: TwilioStreamTransport,
                     total: int) -> tuple[int, list[PlayedFrame]]:
    """Wait until ``total`` bytes are queued; the instant their playout began, and the
    frames heard up to now."""
    await until(lambda: caller.playout is not None and caller.playout.queued_bytes == total,
                f"{total} bytes queued at the caller")
    frames = caller.heard(now_ns())
    assert frames and frames[0].audio[:1] == b"\x11", frames[:1]
    t0 = frames[0].t_ns
    assert now_ns() < t0 + LEAD * BYTE_NS // 2, "this machine stalled for a second"
    assert await agent.sync(caller) == []
    return t0, frames


async def test_marks_are_echoed_in_order_when_playout_reaches_them_not_before(call):
    agent, caller = call
    script = [media(0x11, LEAD // 10)] * 10 + [
        mark("a"),
        media(0x22, 320), mark("b"),
        media(0x33, 320), mark("c"), mark("d"),  # two marks at one offset
        media(0x44, 640), mark("e"),
        media(0x55, 800),  # the tail: once it is queued, everything before it is
    ]
    # where each mark stands (bytes into the stream): passed once that much has played
    at = {"a": LEAD, "b": LEAD + 320, "c": LEAD + 640, "d": LEAD + 640, "e": LEAD + 1280}
    total = LEAD + 2080
    await agent.send(*script)
    t0, first = await play_start(agent, caller, total)
    heard = [first]

    def hear(offset_bytes: int, extra_ns: int = 0) -> None:
        heard.append(caller.heard(t0 + offset_bytes * BYTE_NS + extra_ns))

    hear(at["a"], -1)  # 125 us short of the end of the audio before "a"
    assert await agent.sync(caller) == []
    hear(at["a"])
    assert await agent.sync(caller) == ["a"]
    hear(at["b"], -1)
    assert await agent.sync(caller) == []
    hear(at["e"])  # b, c, d and e pass in one step: echoed in stream order
    assert await agent.sync(caller) == ["b", "c", "d", "e"]
    hear(total + 8000)  # a second later: no echo twice
    assert await agent.sync(caller) == []
    assert agent.marks() == ["a", "b", "c", "d", "e"]

    # and what the caller heard is the audio sent, in order, at 8000 bytes a second
    frames = [f for batch in heard for f in batch]
    audio = [f for f in frames if f.audio]
    assert b"".join(f.audio for f in audio) == b"".join(
        base64.b64decode(m["media"]["payload"]) for m in script if m["event"] == "media")
    assert [f.t_ns for f in audio] == [t0 + i * 160 * BYTE_NS for i in range(len(audio))]


async def test_clear_stops_what_the_caller_hears_at_once_and_echoes_pending_marks(call):
    agent, caller = call
    await agent.send(*[media(0x11, LEAD // 10)] * 10, mark("x"), media(0x22, 800), mark("y"),
                     media(0x33, 160))
    t0, _ = await play_start(agent, caller, LEAD + 960)
    await asyncio.sleep(0.05)
    t1 = now_ns()
    before = caller.heard(t1)  # the audio plays up to now ...
    assert before and all(f.audio == b"\x11" * 160 for f in before)
    assert await agent.sync(caller) == []
    await asyncio.sleep(0.06)  # more of the lead plays before the clear arrives
    await agent.send({"event": "clear"})
    # ... the clear echoes both pending marks at once, in order, with no playout step
    await until(lambda: len(agent.marks()) >= 2, "the marks echoed by the clear")
    t2 = now_ns()
    assert await agent.sync(caller) == ["x", "y"]
    after = caller.heard(t2 + 3_000_000_000)  # long after the audio would have ended
    assert after, "the caller hears time pass (silence) after a clear"
    # audio whose playout began between the last tick and the clear was heard (Twilio
    # played it), the last frame up to the byte the clear came in; then only silence
    played = [f for f in after if f.audio]
    assert len(played) >= 2, "what played between the last tick and the clear was heard"
    assert all(f.audio == b"\x11" * 160 for f in played[:-1])
    assert 0 < len(played[-1].audio) <= 160 and set(played[-1].audio) == {0x11}
    assert all(t1 < f.t_ns <= t2 for f in played)
    assert played[-1].t_ns + len(played[-1].audio) * BYTE_NS <= t2 + BYTE_NS
    silent = after[len(played):]
    assert silent and all(f.audio == b"" for f in silent), [f.audio[:1] for f in silent]
    assert t1 < after[0].t_ns <= t2  # nothing of the agent's audio plays after the clear
    assert await agent.sync(caller) == []  # nothing echoed twice
    assert t0 < t1 < t0 + LEAD * BYTE_NS
