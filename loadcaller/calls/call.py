"""One call: set up, run the script on the media clock, classify the end.

Thin glue around the sans-I/O :class:`~loadcaller.calls.script.CallScript`:
:class:`Call` is the media clock's member (its :meth:`Call.send` sends the
script's frame and collects what the caller heard; :meth:`Call.take` steps the
script once the clock has the levels of every call's heard frames) and the
coroutine that connects, waits for the script or the far end to end the call,
and hangs up. There is no coroutine per step and no wake-up per frame: the
tick does all the work. Every way a call can end (script done, agent hangs up,
connection drops, protocol error, setup failure, our own cancellation)
produces one :class:`CallRecord` with the turns measured so far.

Whatever the transport raises becomes the record's outcome and reason, never an
exception out of :meth:`Call.run` (only cancellation propagates):
:class:`~loadcaller.errors.SetupFailed` is the agent's ``failed_setup``;
:class:`~loadcaller.errors.LocalError`, an OSError that is this machine's limit
(out of file descriptors or ports) and anything unexpected (a bug, a URL the
resolver refuses) are ``error`` with a reason starting ``local:``. A run whose
calls all raised once printed 1,907 tracebacks in 2 s and exited 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from loadcaller.audio.vad import VadConfig
from loadcaller.calls.clock import MediaClock
from loadcaller.calls.measure import TurnResult
from loadcaller.calls.scenario import CallPolicy, Scenario
from loadcaller.calls.script import LISTEN_VAD, CallScript, Finished, SendDtmf
from loadcaller.errors import LocalError, SetupFailed
from loadcaller.media.frames import PlayedFrame
from loadcaller.media.outcomes import CallOutcome
from loadcaller.timebase import NS_PER_MS, now_ns
from loadcaller.transports.base import CallEnd, CallTransport, local_os_error

__all__ = ["LISTEN_VAD", "Call", "CallRecord", "turn_latency_ms"]

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
    media: dict[str, Any] | None = None  # per-call media figures (RTP transports)
    transcripts: list[tuple[int, str]] | None = None  # the agent's words, (arrival ns, text)
    persona: str = ""  # the caller's persona (loadcaller.audio.persona), "" for none


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
        faults_now: Callable[[], Sequence[str]] | None = None,
    ) -> None:
        self.call_id = call_id
        self.transport = transport
        self.scenario = scenario
        self.clock = clock
        self.policy = policy
        self.vad = vad
        self.on_finish = on_finish
        self.faults_now = faults_now
        self.record = CallRecord(call_id, transport.name, scenario.name, "", "")
        self.script: CallScript | None = None
        self._done: asyncio.Future[Finished] | None = None

    # ---- the media clock's side (synchronous, hot) ---------------------------------

    def send(self, deadline_ns: int) -> tuple[int, list[PlayedFrame]] | None:
        """Send this period's frame; (the instant it was in the socket, frames heard).

        That instant, taken right after the send, is what a turn's latency starts
        from when the frame is the caller's last speech frame (see :meth:`take`).
        """
        script = self.script
        if script is None:
            return None
        transport = self.transport
        try:
            transport.send_audio(script.next_frame())
            now = now_ns()  # the frame is in the socket now
            return now, transport.heard(now)
        except Exception as exc:
            self._broken(exc)
            raise

    def take(self, now: int, heard: list[PlayedFrame],
             levels: Sequence[float] | None = None) -> None:
        """Step the script: the frame left at ``now``; ``heard`` (at ``levels``) was heard."""
        script = self.script
        if script is None:
            return
        try:
            actions = script.step(now, heard, levels)
            if actions:
                self._act(actions)
        except Exception as exc:
            self._broken(exc)
            raise

    def tick(self, deadline_ns: int) -> int | None:
        """:meth:`send` then :meth:`take` for one call; the send instant."""
        out = self.send(deadline_ns)
        if out is None:
            return None
        self.take(out[0], out[1])
        return out[0]

    def _broken(self, exc: Exception) -> None:
        # our bug, not the agent's: end this call as an error (the clock counts it
        # in member_errors and drops it) rather than leave it silent until cancelled
        self._act([Finished(CallOutcome.ERROR, f"local: {type(exc).__name__}: {exc}")])

    def _act(self, actions: Sequence[SendDtmf | Finished]) -> None:
        for action in actions:
            if isinstance(action, SendDtmf):
                self.transport.send_dtmf(action.digit)
            else:
                self.clock.remove(self)
                if self._done is not None and not self._done.done():
                    self._done.set_result(action)

    # ---- the call's coroutine ---------------------------------------------------------

    async def run(self) -> CallRecord:
        """Place the call and run the scenario to its end, whatever that is."""
        rec = self.record
        rec.t_start_ns = now_ns()
        try:
            await self.clock.turn()  # set-ups that come together run one by one between ticks
            rec.t_start_ns = now_ns()
            await self.transport.connect()
        except asyncio.CancelledError:
            await self._hangup()
            self._finish(CallOutcome.CANCELLED, "run stopped during setup")
            raise
        except (SetupFailed, LocalError) as exc:  # the transport has cleaned up after itself
            return self._finish(*setup_outcome(exc))
        except Exception as exc:
            await self._hangup()  # whatever connect() left open
            return self._finish(*setup_outcome(exc))
        try:
            return await self._answered()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # our bug: this call ends, the run goes on
            await self._hangup()
            return self._finish(CallOutcome.ERROR, f"local: {type(exc).__name__}: {exc}")

    async def _answered(self) -> CallRecord:
        rec = self.record
        t_answer = self.transport.answered_ns or now_ns()
        rec.setup_ns = t_answer - rec.t_start_ns
        rec.remote_id = self.transport.remote_id
        self._done = asyncio.get_running_loop().create_future()
        ended = self.transport.ended
        try:
            await self.clock.turn()  # the script starts at t_answer whenever this returns
            self.script = CallScript(self.scenario, t_answer_ns=t_answer, policy=self.policy,
                                     vad=self.vad, faults_now=self.faults_now)
            rec.turns = self.script.turns  # the same list: turns show live while it runs
            self.clock.add(self)
            self._act(self.script.step(t_answer, []))  # start the first step now
            await asyncio.wait((self._done, ended), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            await self._hangup()
            self._finish(CallOutcome.CANCELLED, "run stopped")
            raise
        self.clock.remove(self)
        if self._done.done():
            finished = self._done.result()
            outcome, reason = finished.outcome, finished.reason
        else:
            end: CallEnd = ended.result()
            outcome, reason = end.outcome, end.reason
            self.script.close(outcome)
        try:
            await self.clock.turn()  # a slot's calls end together: hang up one by one
        finally:  # cancelled meanwhile: the call still ends as it ended
            await self._hangup()
            self._finish(outcome, reason)
        return rec

    async def _hangup(self) -> None:
        self.clock.remove(self)
        with contextlib.suppress(Exception):  # the call is over either way: best effort
            await asyncio.shield(self.transport.hangup())

    def fail(self, reason: str) -> CallRecord:
        """End the call as ``error`` unless it has ended already; its record."""
        return self._finish(CallOutcome.ERROR, reason)

    def _finish(self, outcome: CallOutcome, reason: str) -> CallRecord:
        self.clock.remove(self)
        rec = self.record
        if rec.outcome:  # finished already (one record per call, whatever raised since)
            return rec
        if outcome is CallOutcome.NO_RESPONSE:
            with contextlib.suppress(Exception):  # a hint: never worth losing the record
                note = self.transport.silence_note()
                reason = f"{reason} ({note})" if note else reason
        rec.outcome, rec.reason = outcome, reason
        rec.t_end_ns = now_ns()
        if self.script is not None:
            rec.greeting_ns = self.script.greeting_ns
        rec.media = self.transport.media_stats
        rec.transcripts = self.transport.transcripts
        if self.on_finish is not None:
            self.on_finish(rec)
        return rec


def setup_outcome(exc: Exception) -> tuple[CallOutcome, str]:
    """How a call whose setup raised ``exc`` ends, and why (see the module docstring)."""
    if isinstance(exc, SetupFailed):
        reason = str(exc)
        # a transport may blame itself in the reason (the SIP port pool does), or wrap
        # an OSError that is this machine's limit (raise ... from it, or from None)
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, OSError):
            local_exc = local_os_error(cause, "setting the call up")
            if local_exc is not None:
                return CallOutcome.ERROR, f"{local_exc} [{reason}]"
        local = reason.startswith("local:")
        return (CallOutcome.ERROR if local else CallOutcome.FAILED_SETUP), reason
    if isinstance(exc, LocalError):
        reason = str(exc)
        return CallOutcome.ERROR, reason if reason.startswith("local:") else f"local: {reason}"
    if isinstance(exc, OSError):
        local_exc = local_os_error(exc, "setting the call up")
        if local_exc is not None:
            return CallOutcome.ERROR, str(local_exc)
        if isinstance(exc, _REMOTE_OS_ERRORS) or exc.errno in _REMOTE_ERRNOS:
            return CallOutcome.FAILED_SETUP, f"setup failed: {exc}"
    return CallOutcome.ERROR, f"local: {type(exc).__name__} during setup: {exc}"


# OSErrors that a transport let through but that are the far end's (or the network's)
_REMOTE_OS_ERRORS = (ConnectionError, TimeoutError, socket.gaierror)
_REMOTE_ERRNOS = frozenset({errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN})


def turn_latency_ms(turn: TurnResult) -> float | None:
    """A turn's latency in milliseconds, or None when it was not answered."""
    lat = turn.latency_ns
    return None if lat is None else round(lat / NS_PER_MS, 3)
