"""One call as the reference agent handles it, whatever carries it.

The session hears 20 ms mu-law frames (:meth:`AgentSession.on_audio`) and
speaks through an :class:`AgentLine`: the Twilio Media Streams server
(:mod:`loadcaller.agent.server`) and the SIP server (:mod:`loadcaller.agent.sip`)
each give it one. The agent listens with the same VAD as the callers (hangover 500 ms: the
caller's turn ends after half a second of silence), calls the backend with its
own timeout (falling back to an apology when the backend fails or answers
something it cannot read), waits a think time, and streams a spoken reply paced
in real time. When the caller talks over it, it stops and sends ``clear``.

It logs its ground truth per turn: when it received the caller's last speech
frame and when it sent the first frame of its reply (seconds on
``time.monotonic()``'s clock), which is what the callers' measurement is
checked against.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import IO, Any, Protocol

import aiohttp
from websockets.exceptions import ConnectionClosed

from loadcaller.agent.backend import REPLIES
from loadcaller.agent.dist import Distribution
from loadcaller.audio.vad import SpeechEnd, SpeechStart, StreamingVad, VadConfig, ulaw_frame_dbfs
from loadcaller.calls.utterance import Utterance
from loadcaller.timebase import NS_PER_MS, now_ns, to_monotonic_s

log = logging.getLogger(__name__)

END_OF_TURN_VAD = VadConfig(hangover_ms=500)
FRAME_S = 0.020


@dataclass(frozen=True, slots=True)
class AgentConfig:
    think: Distribution
    greeting_delay: Distribution
    backend_url: str | None = None
    backend_timeout_s: float = 2.0
    send_marks: bool = True


class AgentLine(Protocol):
    """How a session speaks to its caller: one call's outbound side."""

    async def send_audio(self, frame: bytes) -> None:
        """Send one 20 ms mu-law frame now."""

    async def clear(self) -> None:
        """Drop what the caller has not heard yet (Twilio ``clear``; nothing for RTP)."""

    async def mark(self, name: str) -> None:
        """Mark the end of a reply (Twilio ``mark``; nothing for RTP)."""


class GroundTruth:
    """The agent's own JSONL log, one line per turn (flushed)."""

    def __init__(self, stream: IO[str] | None) -> None:
        self.stream = stream

    def write(self, record: dict[str, Any]) -> None:
        if self.stream is not None:
            self.stream.write(json.dumps(record) + "\n")
            self.stream.flush()


class AgentSession:
    """The agent's side of one call."""

    def __init__(self, *, line: AgentLine, config: AgentConfig, voice: dict[str, Utterance],
                 http: aiohttp.ClientSession | None, truth: GroundTruth, rng: random.Random):
        self.line = line
        self.cfg = config
        self.voice = voice
        self.http = http
        self.truth = truth
        self.rng = rng
        self.vad = StreamingVad(END_OF_TURN_VAD)
        self.stream_sid = ""
        self.call_sid = ""
        self.turn = 0
        self._reply: asyncio.Task[None] | None = None
        self._speaking = False  # frames of the current reply have gone out
        self._pending_sends: set[asyncio.Future[None]] = set()

    # ---- inbound -----------------------------------------------------------------

    def on_start(self, call_sid: str, t: int, stream_sid: str = "") -> None:
        """The call is up (Twilio ``start``, SIP ACK): greet the caller."""
        self.stream_sid, self.call_sid = stream_sid, call_sid
        self._reply = asyncio.ensure_future(self._until_hung_up(self._greet(t)))

    def on_audio(self, frame: bytes, t: int) -> None:
        """One 20 ms mu-law frame from the caller, received at ``t``."""
        event = self.vad.feed(ulaw_frame_dbfs(frame), t)
        if isinstance(event, SpeechStart):
            self._barge_in()
        elif isinstance(event, SpeechEnd):
            self._start_reply(self.turn, event.t_ns)
            self.turn += 1

    def on_dtmf(self, digit: str, t: int, duration_ms: float | None = None) -> None:
        """A DTMF digit from the caller (Twilio ``dtmf``, RFC 4733 over RTP): logged."""
        record: dict[str, Any] = {"call_sid": self.call_sid, "dtmf": digit,
                                  "t_recv": round(to_monotonic_s(t), 6)}
        if duration_ms is not None:
            record["duration_ms"] = round(duration_ms, 1)
        self.truth.write(record)

    def close(self) -> None:
        if self._reply is not None:
            self._reply.cancel()

    def _barge_in(self) -> None:
        if self._reply is None or self._reply.done():
            return
        self._reply.cancel()
        if self._speaking:
            task = asyncio.ensure_future(self._until_hung_up(self.line.clear()))
            self._pending_sends.add(task)
            task.add_done_callback(self._pending_sends.discard)
            self._speaking = False

    # ---- outbound ----------------------------------------------------------------

    def _start_reply(self, turn: int, t_last_speech: int) -> None:
        if self._reply is not None and not self._reply.done():
            self._reply.cancel()
        self._reply = asyncio.ensure_future(
            self._until_hung_up(self._answer(turn, t_last_speech)))

    async def _until_hung_up(self, work: Awaitable[Any]) -> None:
        """Run a reply; the caller hanging up mid-reply is normal, not an error."""
        with contextlib.suppress(ConnectionClosed):
            await work

    async def _greet(self, t_start: int) -> None:
        await asyncio.sleep(self.cfg.greeting_delay.sample(self.rng) / 1000.0)
        t_first = await self._speak(self.voice["agent_greeting"], "greeting")
        self.truth.write({"call_sid": self.call_sid, "turn": "greeting",
                          "t_start_recv": round(to_monotonic_s(t_start), 6),
                          "t_first_reply_sent": _s(t_first)})

    async def _answer(self, turn: int, t_last_speech: int) -> None:
        record: dict[str, Any] = {"call_sid": self.call_sid, "stream_sid": self.stream_sid,
                                  "turn": turn,
                                  "t_last_speech_recv": round(to_monotonic_s(t_last_speech), 6)}
        reply_id, backend = await self._ask_backend(turn)
        record.update(backend)
        think = self.cfg.think.sample(self.rng)
        record["think_ms"] = round(think, 3)
        await asyncio.sleep(think / 1000.0)
        record["reply"] = reply_id
        await self._speak(self.voice[reply_id], f"turn-{turn}", record)

    async def _ask_backend(self, turn: int) -> tuple[str, dict[str, Any]]:
        if self.http is None or self.cfg.backend_url is None:
            return REPLIES[turn % len(REPLIES)][0], {"backend": "none"}
        t0 = now_ns()
        info: dict[str, Any] = {}
        try:
            timeout = aiohttp.ClientTimeout(total=self.cfg.backend_timeout_s)
            async with self.http.post(self.cfg.backend_url, json={"call_sid": self.call_sid,
                                      "turn": turn}, timeout=timeout) as resp:
                info["backend_status"] = resp.status
                body = await resp.json(content_type=None)
                reply_id = body["reply"]["id"]
                if resp.status != 200 or reply_id not in self.voice:
                    raise ValueError(f"unusable reply {reply_id!r} (HTTP {resp.status})")
                info["backend"] = "ok"
        except TimeoutError:
            info["backend"], reply_id = "timeout", "agent_fallback"
        except (aiohttp.ClientError, ValueError, KeyError, TypeError) as exc:
            info["backend"], reply_id = f"error: {type(exc).__name__}", "agent_fallback"
        info["backend_ms"] = round((now_ns() - t0) / NS_PER_MS, 3)
        return reply_id, info

    async def _speak(self, utt: Utterance, mark: str,
                     record: dict[str, Any] | None = None) -> int | None:
        """Send an utterance paced in real time; return when its first frame went out."""
        loop = asyncio.get_running_loop()
        t_first: int | None = None
        try:
            start = loop.time()
            for i, frame in enumerate(utt.frames):
                delay = start + i * FRAME_S - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                await self.line.send_audio(frame)
                if t_first is None:
                    t_first = now_ns()
                    self._speaking = True
                    if record is not None:
                        record["t_first_reply_sent"] = _s(t_first)
                        record["latency_ms"] = round(
                            record["t_first_reply_sent"] * 1000
                            - record["t_last_speech_recv"] * 1000, 3)
                        self.truth.write(record)
            if self.cfg.send_marks:
                await self.line.mark(mark)
        except asyncio.CancelledError:
            if record is not None and t_first is None:
                record["interrupted"] = True
                self.truth.write(record)
            raise
        finally:
            self._speaking = False
        return t_first


def _s(t_ns: int | None) -> float | None:
    return None if t_ns is None else round(to_monotonic_s(t_ns), 6)
