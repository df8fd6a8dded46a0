"""One call as the reference agent handles it, whatever carries it.

The session hears 20 ms mu-law frames (:meth:`AgentSession.on_audio`) and
speaks through an :class:`AgentLine`: the Twilio Media Streams server
(:mod:`loadcaller.agent.server`) and the SIP server (:mod:`loadcaller.agent.sip`)
each give it one. The agent listens with the same VAD as the callers (hangover 500 ms: the
caller's turn ends after half a second of silence), calls the backend with its
own timeout (falling back to an apology when the backend fails or answers
something it cannot read), waits a think time, and streams a spoken reply paced
in real time.

When the caller talks over a reply, the agent stops ``bargein_reaction_ms``
after the onset of the caller's speech as it received it (at the first frame
slot from then: it sends whole 20 ms frames), sends ``clear``, and logs the
barge-in (``None``: it never stops, and answers once its reply is over). A
caller talking while the agent thinks cancels the reply at once. After
``reprompt_after_s`` of dead air (nothing from the caller since the agent's
audio ended) it reprompts, up to :data:`MAX_REPROMPTS` times in a row. With
``wrong_reply_ratio`` it answers that share of turns with a wrong phrase (and
says so in its log), so ``expect:`` checks have failures to find.

It logs its ground truth per turn: when it received the caller's last speech
frame and when it sent the first frame of its reply (seconds on
``time.monotonic()``'s clock), which is what the callers' measurement is
checked against; per barge-in, when it received the interrupting onset and when
the audible audio it had sent ended as played out (Twilio plays audio at real-time
pace from its arrival or from the end of the audio queued before it, and ``clear``
drops what has not begun: a late frame delays all that follows, and the caller
hears that delay); per reprompt, when its audio had ended and when it began.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import IO, Any, Protocol

import aiohttp
from websockets.exceptions import ConnectionClosed

from loadcaller.agent.backend import REPLIES
from loadcaller.agent.dist import Distribution
from loadcaller.audio.vad import SpeechEnd, SpeechStart, StreamingVad, VadConfig, ulaw_frame_dbfs
from loadcaller.calls.utterance import Utterance, make_utterance
from loadcaller.media.frames import FRAME_NS
from loadcaller.timebase import NS_PER_MS, NS_PER_S, now_ns, to_monotonic_s

log = logging.getLogger(__name__)

END_OF_TURN_VAD = VadConfig(hangover_ms=500)
FRAME_S = 0.020
AUDIBLE_DBFS = VadConfig().off_dbfs  # a frame a caller's VAD counts as speech
MAX_REPROMPTS = 3  # in a row, without the caller saying anything
WRONG_SHIFT = 2  # a wrong reply is the one meant for the turn two on (never the right one)


@dataclass(frozen=True, slots=True)
class AgentConfig:
    think: Distribution
    greeting_delay: Distribution
    backend_url: str | None = None
    backend_timeout_s: float = 2.0
    send_marks: bool = True
    bargein_reaction_ms: float | None = 0.0  # None: never stops when talked over
    reprompt_after_s: float | None = None  # None: never reprompts
    reprompt: Utterance | None = None  # what a reprompt says (default: the fallback phrase)
    wrong_reply_ratio: float = 0.0


def reprompt_voice() -> Utterance | None:
    """"Are you still there?" in the agent's voice (flite rms, from the bundled pack)."""
    from loadcaller.audio.pack import load_pack_audio

    return make_utterance("agent_reprompt", load_pack_audio("agent_reprompt", "en-us"))


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
        self._barge: dict[str, Any] | None = None  # the barge-in being reacted to
        self._stop_at: int | None = None  # stop speaking at the first frame slot from then
        self._audio_end = 0  # when the audible audio sent so far ends, played out
        self._play_end = 0  # when all the audio sent so far ends, played out
        self._played: deque[tuple[int, int]] = deque(maxlen=64)  # audible frames (start, end)
        self._dead_air: asyncio.TimerHandle | None = None
        self._reprompts = 0

    # ---- inbound -----------------------------------------------------------------

    def on_start(self, call_sid: str, t: int, stream_sid: str = "") -> None:
        """The call is up (Twilio ``start``, SIP ACK): greet the caller."""
        self.stream_sid, self.call_sid = stream_sid, call_sid
        self._reply = self._spawn(self._greet, t)

    def on_audio(self, frame: bytes, t: int) -> None:
        """One 20 ms mu-law frame from the caller, received at ``t``."""
        event = self.vad.feed(ulaw_frame_dbfs(frame), t)
        if isinstance(event, SpeechStart):
            self._barge_in(event.t_ns)
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
        self._quiet_timer(None)
        if self._reply is not None:
            self._reply.cancel()

    def _barge_in(self, onset_ns: int) -> None:
        """The caller began to speak (its first speech frame arrived at ``onset_ns``)."""
        self._quiet_timer(None)
        self._reprompts = 0
        if self._reply is None or self._reply.done():
            return
        if not self._speaking:  # thinking: nothing said yet, drop the reply now
            self._reply.cancel()
            return
        reaction = self.cfg.bargein_reaction_ms
        if reaction is None or self._barge is not None:
            return
        self._barge = {"call_sid": self.call_sid, "turn": self.turn, "bargein": True,
                       "t_bargein_onset_recv": _s(onset_ns)}
        self._stop_at = max(now_ns(), onset_ns + round(reaction * NS_PER_MS))

    def _quiet_timer(self, quiet_since: int | None) -> None:
        """Cancel the dead-air timer; with ``quiet_since``, start it from that instant."""
        if self._dead_air is not None:
            self._dead_air.cancel()
            self._dead_air = None
        after = self.cfg.reprompt_after_s
        if quiet_since is None or after is None or self._reprompts >= MAX_REPROMPTS:
            return
        delay = (quiet_since + round(after * NS_PER_S) - now_ns()) / NS_PER_S
        self._dead_air = asyncio.get_running_loop().call_later(
            max(0.0, delay), self._reprompt, quiet_since)

    def _reprompt(self, quiet_since: int) -> None:
        self._dead_air = None
        if self.vad.speaking or (self._reply is not None and not self._reply.done()):
            return
        self._reprompts += 1
        record = {"call_sid": self.call_sid, "turn": self.turn, "reprompt": self._reprompts,
                  "t_quiet_since": _s(quiet_since)}
        utt = self.cfg.reprompt or self.voice["agent_fallback"]
        self._reply = self._spawn(self._speak, utt, f"reprompt-{self._reprompts}", record,
                                  first_key="t_reprompt_sent")

    # ---- outbound ----------------------------------------------------------------

    def _start_reply(self, turn: int, t_last_speech: int) -> None:
        previous = self._reply
        if previous is not None and not previous.done():
            if self._speaking and self.cfg.bargein_reaction_ms is None:
                # an agent that never stops talks on, then answers
                self._reply = self._spawn(self._answer, turn, t_last_speech, after=previous)
                return
            previous.cancel()
        self._reply = self._spawn(self._answer, turn, t_last_speech)

    def _spawn(self, reply: Callable[..., Awaitable[Any]], *args: Any,
               **kwargs: Any) -> asyncio.Task[None]:
        """Run a reply as a task; the caller hanging up mid-reply is normal, not an error.

        The reply's coroutine is made inside the task: one made outside and cancelled
        with the task before it ran (a call that ended at once) was never awaited, and
        each printed a RuntimeWarning.
        """
        async def run() -> None:
            with contextlib.suppress(ConnectionClosed):
                await reply(*args, **kwargs)

        return asyncio.get_running_loop().create_task(run())

    async def _greet(self, t_start: int) -> None:
        await asyncio.sleep(self.cfg.greeting_delay.sample(self.rng) / 1000.0)
        t_first = await self._speak(self.voice["agent_greeting"], "greeting")
        self.truth.write({"call_sid": self.call_sid, "turn": "greeting",
                          "t_start_recv": round(to_monotonic_s(t_start), 6),
                          "t_first_reply_sent": _s(t_first)})

    async def _answer(self, turn: int, t_last_speech: int,
                      after: asyncio.Future[None] | None = None) -> None:
        record: dict[str, Any] = {"call_sid": self.call_sid, "stream_sid": self.stream_sid,
                                  "turn": turn,
                                  "t_last_speech_recv": round(to_monotonic_s(t_last_speech), 6)}
        if after is not None:
            await asyncio.shield(after)
        reply_id, backend = await self._ask_backend(turn)
        record.update(backend)
        if self.cfg.wrong_reply_ratio > 0 and self.rng.random() < self.cfg.wrong_reply_ratio:
            record["wrong_reply"], record["right_reply"] = True, reply_id
            ids = [rid for rid, _ in REPLIES]
            at = ids.index(reply_id) if reply_id in ids else 0
            reply_id = ids[(at + WRONG_SHIFT) % len(ids)]
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

    async def _speak(self, utt: Utterance, mark: str, record: dict[str, Any] | None = None,
                     first_key: str = "t_first_reply_sent") -> int | None:
        """Send an utterance paced in real time; return when its first frame went out.

        Talked over, it stops at the first frame slot at or after ``_stop_at``.
        """
        loop = asyncio.get_running_loop()
        t_first: int | None = None
        stopped = False
        self._quiet_timer(None)
        try:
            start = loop.time()
            for i, frame in enumerate(utt.frames):
                delay = start + i * FRAME_S - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                if self._stop_at is not None and now_ns() >= self._stop_at:
                    await self.line.clear()
                    self._cleared(now_ns())
                    stopped = True
                    break
                await self.line.send_audio(frame)
                t_sent = now_ns()
                # played out as Twilio plays it: at 8000 bytes/s, from arrival or from
                # the end of the audio before it, whichever is later
                played = max(t_sent, self._play_end)
                self._play_end = played + FRAME_NS
                if ulaw_frame_dbfs(frame) >= AUDIBLE_DBFS:
                    self._played.append((played, self._play_end))
                    self._audio_end = self._play_end
                if t_first is None:
                    t_first = t_sent
                    self._speaking = True
                    if record is not None:
                        record[first_key] = _s(t_first)
                        if "t_last_speech_recv" in record:
                            record["latency_ms"] = round(
                                record[first_key] * 1000 - record["t_last_speech_recv"] * 1000, 3)
                        self.truth.write(record)
            if self.cfg.send_marks and not stopped:
                await self.line.mark(mark)
        except asyncio.CancelledError:
            if record is not None and t_first is None:
                record["interrupted"] = True
                self.truth.write(record)
            raise
        finally:
            self._speaking = False
            self._end_barge_in(stopped)
        if not self.vad.speaking:  # the line is quiet from the end of this audio
            self._quiet_timer(self._audio_end)
        return t_first

    def _cleared(self, t_clear: int) -> None:
        """``clear`` went out at ``t_clear``: audio not yet begun by then is never heard
        (a frame already playing is heard whole, as the callers' playout has it)."""
        while self._played and self._played[-1][0] > t_clear:
            self._played.pop()
        self._audio_end = self._played[-1][1] if self._played else 0
        self._play_end = min(self._play_end, t_clear)

    def _end_barge_in(self, stopped: bool) -> None:
        """Log the barge-in reacted to (or that the reply ended first), if any."""
        barge, self._barge, self._stop_at = self._barge, None, None
        if barge is None:
            return
        barge["stopped"] = stopped
        barge["t_stop_sent"] = _s(now_ns())
        barge["t_audio_end_played"] = _s(self._audio_end)
        barge["reaction_ms"] = round(
            barge["t_audio_end_played"] * 1000 - barge["t_bargein_onset_recv"] * 1000, 3)
        self.truth.write(barge)


def _s(t_ns: int | None) -> float | None:
    return None if t_ns is None else round(to_monotonic_s(t_ns), 6)
