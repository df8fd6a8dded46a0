"""One call: set up, run the scenario, measure every turn, classify the end.

:class:`Call` is both the media clock's member (its :meth:`tick` sends one frame
and hears what the agent played) and the coroutine that walks the scenario.
The tick does the timing-critical work synchronously; the coroutine only
waits on what the tick found. Every way a call can end (script done, agent
hangs up, connection drops, protocol error, setup failure, our own
cancellation) produces one :class:`CallRecord` and the turns measured so far.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from loadcaller.audio.vad import VadConfig
from loadcaller.calls import measure
from loadcaller.calls.clock import MediaClock
from loadcaller.calls.measure import Listener, TurnResult, reply_onset
from loadcaller.calls.scenario import CallPolicy, Dtmf, Hangup, Pause, Say, Scenario, WaitForAgent
from loadcaller.calls.utterance import SILENCE_B64, SILENCE_FRAME, Utterance
from loadcaller.errors import SetupFailed
from loadcaller.timebase import NS_PER_MS, now_ns
from loadcaller.transports import base
from loadcaller.transports.base import CallEnd, CallTransport
from loadcaller.twilio.playout import PlayedFrame


class Impairment(Protocol):
    """A packet model (chaos.packet): outputs (send_at seconds, bytes); none = lost."""

    def process(self, packet: bytes, now: float) -> list[tuple[float, bytes]]: ...

# The caller decides the agent has finished speaking after this much silence.
LISTEN_VAD = VadConfig(hangover_ms=400)
DEFAULT_POLICY = CallPolicy()


@dataclass(slots=True)
class CallRecord:
    """What calls.jsonl says about one call."""

    call_id: str
    transport: str
    scenario: str
    outcome: str
    reason: str
    remote_id: str = ""
    t_start_ns: int = 0
    t_end_ns: int = 0
    setup_ns: int | None = None
    greeting_ns: int | None = None
    turns: list[TurnResult] = field(default_factory=list)


class _Hung(Exception):
    """The scenario decided to hang up early."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class Call:
    """One call (see the module docstring)."""

    def __init__(
        self,
        *,
        call_id: str,
        transport: CallTransport,
        scenario: Scenario,
        clock: MediaClock,
        policy: CallPolicy = DEFAULT_POLICY,
        vad: VadConfig = LISTEN_VAD,
        on_finish: Callable[[CallRecord], None] | None = None,
        faults_now: Callable[[], list[str]] | None = None,
        impair_out: Impairment | None = None,
        impair_in: Impairment | None = None,
    ) -> None:
        self.on_finish = on_finish
        self.faults_now = faults_now
        self.impair_out = impair_out
        self.impair_in = impair_in
        self._delayed: list[tuple[float, int, bytes]] = []  # outbound frames held back
        self._seq = 0
        self.call_id = call_id
        self.transport = transport
        self.scenario = scenario
        self.clock = clock
        self.policy = policy
        self.listener = Listener(vad)
        self.record = CallRecord(call_id, transport.name, scenario.name, "", "")
        self._utt: Utterance | None = None
        self._pos = 0
        self._said: asyncio.Future[int] | None = None
        self._wake = asyncio.Event()
        self._t_answer = 0
        # (turn index, t_speech_end, faults active then)
        self._pending: tuple[int, int, tuple[str, ...]] | None = None
        self._misses = 0

    # ---- the media clock's side (synchronous, hot) -----------------------------

    def tick(self, deadline_ns: int) -> None:
        transport = self.transport
        send = transport.send_audio if self.impair_out is None else self._send_impaired
        utt = self._utt
        if utt is None:
            send(SILENCE_FRAME, SILENCE_B64)
        else:
            i = self._pos
            send(utt.frames[i], utt.b64[i])
            i += 1
            if i == len(utt.frames):
                t_end = now_ns()  # the last speech frame is in the socket now
                self._utt = None
                if self._said is not None and not self._said.done():
                    self._said.set_result(t_end)
            self._pos = i
        frames = transport.heard(now_ns())
        if frames and self.impair_in is not None:
            frames = [self._impair_heard(f) for f in frames]
        if frames and self.listener.hear(frames):
            self._wake.set()

    def _send_impaired(self, frame: bytes, b64: str) -> None:
        """Send through the outbound packet model: frames may be lost, late or changed."""
        assert self.impair_out is not None
        now = now_ns() / 1e9
        for at, data in self.impair_out.process(frame, now):
            self._seq += 1
            heapq.heappush(self._delayed, (at, self._seq, data))
        while self._delayed and self._delayed[0][0] <= now:
            _, _, data = heapq.heappop(self._delayed)
            self.transport.send_audio(data, b64 if data == frame else
                                      base64.b64encode(data).decode("ascii"))

    def _impair_heard(self, frame: PlayedFrame) -> PlayedFrame:
        """What reaches the caller's ear through the inbound packet model."""
        assert self.impair_in is not None
        if not frame.audio:
            return frame
        now = frame.t_ns / 1e9
        out = self.impair_in.process(frame.audio, now)
        if not out:
            return PlayedFrame(frame.t_ns, b"")  # lost: a gap of silence
        at, data = out[0]
        return PlayedFrame(frame.t_ns + int((at - now) * 1e9), data)

    def _faults(self) -> tuple[str, ...]:
        return tuple(self.faults_now()) if self.faults_now is not None else ()

    # ---- the scenario's side -----------------------------------------------------

    async def run(self) -> CallRecord:
        """Place the call and run the scenario to its end, whatever that is."""
        rec = self.record
        rec.t_start_ns = now_ns()
        try:
            await self.transport.connect()
        except SetupFailed as exc:
            return self._finish(base.FAILED_SETUP, str(exc))
        except asyncio.CancelledError:
            await self.transport.hangup()
            self._finish(base.CANCELLED, "run stopped during setup")
            raise
        self._t_answer = now_ns()
        rec.setup_ns = self._t_answer - rec.t_start_ns
        rec.remote_id = self.transport.remote_id
        self.clock.add(self)
        script = asyncio.ensure_future(self._script())
        try:
            await asyncio.wait(
                (script, self.transport.ended),
                timeout=self.policy.max_call_ns / 1e9,
                return_when=asyncio.FIRST_COMPLETED,
            )
        except asyncio.CancelledError:
            script.cancel()
            await self._hangup()
            self._finish(base.CANCELLED, "run stopped")
            raise
        if script.done():
            outcome, reason = script.result()
            await self._hangup()
        elif self.transport.ended.done():
            script.cancel()
            end: CallEnd = self.transport.ended.result()
            outcome, reason = end.outcome, end.reason
            self._close_pending(outcome)
            await self._hangup()
        else:
            script.cancel()
            await self._hangup()
            outcome, reason = base.COMPLETED, "max call duration reached"
        return self._finish(outcome, reason)

    async def _script(self) -> tuple[str, str]:
        try:
            for step in self.scenario.steps:
                if isinstance(step, Say):
                    await self._say(step.utterance)
                elif isinstance(step, WaitForAgent):
                    await self._wait_for_agent(step.timeout_ns or self.policy.turn_timeout_ns)
                elif isinstance(step, Pause):
                    await asyncio.sleep(step.duration_ns / 1e9)
                elif isinstance(step, Dtmf):
                    for digit in step.digits:
                        self.transport.send_dtmf(digit)
                elif isinstance(step, Hangup):
                    break
        except _Hung as hung:
            return base.NO_RESPONSE, hung.reason
        heard_any = self.record.greeting_ns is not None or any(
            t.outcome == measure.ANSWERED for t in self.record.turns
        )
        if not heard_any and (self.record.turns or self._expects_greeting()):
            return base.NO_RESPONSE, "the agent never spoke"
        return base.COMPLETED, "scenario finished"

    def _expects_greeting(self) -> bool:
        return bool(self.scenario.steps) and isinstance(self.scenario.steps[0], WaitForAgent)

    async def _say(self, utterance: Utterance) -> None:
        loop = asyncio.get_running_loop()
        self._said = loop.create_future()
        self._pos = 0
        self._utt = utterance
        t_end = await self._said
        self._pending = (len(self.record.turns), t_end, self._faults())

    async def _wait_for_agent(self, timeout_ns: int) -> None:
        pending = self._pending
        after = pending[1] if pending else self._t_answer
        found = await self._until(lambda: reply_onset(self.listener, after), timeout_ns)
        if found is None:
            found = reply_onset(self.listener, after, final=True)
        if pending is not None:
            self._pending = None
            index, t_end, before = pending
            faults = tuple(sorted(set(before) | set(self._faults())))
            if found is None:
                self.record.turns.append(
                    TurnResult(index, measure.NO_RESPONSE, t_end, faults=faults))
            else:
                onset, overlap = found
                self.record.turns.append(
                    TurnResult(index, measure.ANSWERED, t_end, onset, overlap, faults)
                )
        elif found is not None and self.record.greeting_ns is None:
            self.record.greeting_ns = found[0] - self._t_answer
        if found is None:
            self._misses += 1
            if self._misses >= self.policy.give_up_after_no_response:
                raise _Hung(f"{self._misses} waits for the agent timed out; caller hung up")
            return
        self._misses = 0
        onset = found[0]
        await self._until(lambda: self.listener.end_after(onset), self.policy.max_reply_ns)

    async def _until(self, probe, timeout_ns: int):  # type: ignore[no-untyped-def]
        """Wait until ``probe()`` returns non-None, re-checked on every tick's news."""
        deadline = now_ns() + timeout_ns
        while True:
            value = probe()
            if value is not None:
                return value
            left = deadline - now_ns()
            if left <= 0:
                return None
            self._wake.clear()
            try:
                async with asyncio.timeout(left / 1e9):
                    await self._wake.wait()
            except TimeoutError:
                return probe()

    # ---- ending --------------------------------------------------------------------

    def _close_pending(self, call_outcome: str) -> None:
        if self._pending is None:
            return
        index, t_end, before = self._pending
        self._pending = None
        faults = tuple(sorted(set(before) | set(self._faults())))
        found = reply_onset(self.listener, t_end, final=True)
        if found is not None:  # the reply began before the line went dead
            self.record.turns.append(
                TurnResult(index, measure.ANSWERED, t_end, found[0], found[1], faults))
            return
        outcome = measure.AGENT_HANGUP if call_outcome == base.AGENT_HANGUP else measure.DROPPED
        self.record.turns.append(TurnResult(index, outcome, t_end, faults=faults))

    async def _hangup(self) -> None:
        self.clock.remove(self)
        if self._said is not None and not self._said.done():
            self._said.cancel()
        with contextlib.suppress(Exception):  # the call is over either way: best effort
            await asyncio.shield(self.transport.hangup())

    def _finish(self, outcome: str, reason: str) -> CallRecord:
        self.clock.remove(self)
        rec = self.record
        rec.outcome, rec.reason = outcome, reason
        rec.t_end_ns = now_ns()
        if self.on_finish is not None:
            self.on_finish(rec)
        return rec


def turn_latency_ms(turn: TurnResult) -> float | None:
    """A turn's latency in milliseconds, or None when it was not answered."""
    lat = turn.latency_ns
    return None if lat is None else round(lat / NS_PER_MS, 3)
