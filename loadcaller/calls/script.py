"""One call's scenario and turn measurement as a state machine (sans-I/O).

How this works: the call runner (:mod:`loadcaller.calls.call`) calls two
methods on every 20 ms media clock tick, and nothing else moves the script:

- :meth:`CallScript.next_frame` gives the frame to send now: the next frame of
  the utterance being said, or silence;
- :meth:`CallScript.step` takes the instant the frame left (``now``) and the
  frames the caller heard since the last tick, feeds them to the caller's ear
  (:class:`~loadcaller.calls.measure.Listener`), and walks the scenario as far
  as it can go at ``now``. It returns the actions for the runner: DTMF to send,
  and :class:`Finished` once the call is over from the script's side.

A step is in one of these states::

    Say            frames out until the last one is sent; its send instant is the
                   turn's end of speech (the turn is then pending)
    WaitForAgent   waiting  -> the reply onset is known (or the timeout passed)
                   replying -> the reply's end is known (or max_reply passed)
    Pause          until now >= its deadline (silence goes out meanwhile)
    Dtmf           the digits go out as actions; done at once
    Hangup         finished

Timing comes only from ``now`` and the heard frames' own stamps, so the script
runs on a fake clock in tests exactly as on the media clock; turn latency is
``reply onset - end of speech`` in nanoseconds, however coarse the tick. When the
far end or the network ends the call first, :meth:`close` settles the pending
turn (answered if a reply had begun, else dropped or agent_hangup).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from loadcaller.audio.vad import VadConfig
from loadcaller.calls.measure import Listener, TurnResult, reply_onset
from loadcaller.calls.scenario import CallPolicy, Dtmf, Hangup, Pause, Say, Scenario, WaitForAgent
from loadcaller.calls.utterance import Utterance
from loadcaller.media.frames import SILENCE_FRAME, PlayedFrame
from loadcaller.media.outcomes import CallOutcome, TurnOutcome

# The caller decides the agent has finished speaking after this much silence.
LISTEN_VAD = VadConfig(hangover_ms=400)


@dataclass(frozen=True, slots=True)
class SendDtmf:
    """Send one DTMF digit now."""

    digit: str


@dataclass(frozen=True, slots=True)
class Finished:
    """The script is over: hang up with this outcome."""

    outcome: CallOutcome
    reason: str


Action = SendDtmf | Finished

_WAITING, _REPLYING = 0, 1


class CallScript:
    """The scenario of one answered call (see the module docstring)."""

    def __init__(self, scenario: Scenario, *, t_answer_ns: int, policy: CallPolicy,
                 vad: VadConfig = LISTEN_VAD,
                 faults_now: Callable[[], Sequence[str]] | None = None) -> None:
        self.scenario = scenario
        self.policy = policy
        self.t_answer_ns = t_answer_ns
        self.listener = Listener(vad)
        self.faults_now = faults_now
        self.turns: list[TurnResult] = []
        self.greeting_ns: int | None = None
        self.finished: Finished | None = None
        self._step = -1  # index of the step in progress
        self._entered = False  # the step in progress has started
        self._utt: Utterance | None = None
        self._pos = 0
        self._last_sent = False  # the frame just handed out ends the utterance
        self._deadline = 0  # Pause end, or WaitForAgent timeout / max reply
        self._wait = _WAITING
        self._onset = 0
        self._pending: tuple[int, int, tuple[str, ...]] | None = None  # index, t_end, faults
        self._misses = 0
        self._max_call_at = t_answer_ns + policy.max_call_ns

    # ---- the media clock's side -------------------------------------------------

    def next_frame(self) -> bytes:
        """The frame to send on this tick."""
        utt = self._utt
        if utt is None:
            return SILENCE_FRAME
        frame = utt.frames[self._pos]
        self._pos += 1
        self._last_sent = self._pos == len(utt.frames)
        return frame

    def step(self, now: int, heard: list[PlayedFrame]) -> list[Action]:
        """The frame from :meth:`next_frame` left at ``now``; ``heard`` was heard."""
        if self._last_sent:  # the last speech frame is in the socket: the turn's clock starts
            self._last_sent = False
            self._utt = None
            self._pending = (len(self.turns), now, self._faults())
            self._entered = False
            self._step += 1
        if heard:
            self.listener.hear(heard)
        if self.finished is not None:
            return []
        actions: list[Action] = []
        if now >= self._max_call_at:
            self._finish(CallOutcome.COMPLETED, "max call duration reached")
        while self.finished is None and self._advance(now, actions):
            pass
        if self.finished is not None:
            actions.append(self.finished)
        return actions

    def close(self, call_outcome: CallOutcome) -> None:
        """The far end or the network ended the call: settle the pending turn."""
        if self._pending is None:
            return
        index, t_end, before = self._pending
        self._pending = None
        faults = self._merge(before)
        found = reply_onset(self.listener, t_end, final=True)
        if found is not None:  # the reply began before the line went dead
            self.turns.append(
                TurnResult(index, TurnOutcome.ANSWERED, t_end, found[0], found[1], faults))
            return
        outcome = (TurnOutcome.AGENT_HANGUP if call_outcome == CallOutcome.AGENT_HANGUP
                   else TurnOutcome.DROPPED)
        self.turns.append(TurnResult(index, outcome, t_end, faults=faults))

    # ---- the state machine --------------------------------------------------------

    def _advance(self, now: int, actions: list[Action]) -> bool:
        """Run the current step at ``now``; True when it finished (go on to the next)."""
        if self._step < 0:
            self._step = 0
        steps = self.scenario.steps
        if self._step >= len(steps):
            self._end_of_script()
            return False
        step = steps[self._step]
        entering = not self._entered
        self._entered = True
        done = True
        if isinstance(step, Say):
            if entering:
                self._utt, self._pos = step.utterance, 0
            done = False  # ends in step() once its last frame has left
        elif isinstance(step, WaitForAgent):
            if entering:
                timeout = step.timeout_ns or self.policy.turn_timeout_ns
                self._deadline, self._wait = now + timeout, _WAITING
            done = self._waiting(now)
        elif isinstance(step, Pause):
            if entering:
                self._deadline = now + step.duration_ns
            done = now >= self._deadline
        elif isinstance(step, Dtmf):
            actions.extend(SendDtmf(d) for d in step.digits)
        elif isinstance(step, Hangup):
            self._step = len(steps)
            self._end_of_script()
            return False
        if done:
            self._step += 1
            self._entered = False
        return done

    def _waiting(self, now: int) -> bool:
        """WaitForAgent at ``now``: True once the reply (or greeting) has been heard out."""
        if self._wait == _REPLYING:
            return self.listener.end_after(self._onset) is not None or now >= self._deadline
        pending = self._pending
        after = pending[1] if pending else self.t_answer_ns
        found = reply_onset(self.listener, after)
        if found is None:
            if now < self._deadline:
                return False
            found = reply_onset(self.listener, after, final=True)
        if pending is not None:
            self._pending = None
            index, t_end, before = pending
            faults = self._merge(before)
            if found is None:
                self.turns.append(TurnResult(index, TurnOutcome.NO_RESPONSE, t_end, faults=faults))
            else:
                self.turns.append(TurnResult(index, TurnOutcome.ANSWERED, t_end, found[0],
                                             found[1], faults))
        elif found is not None and self.greeting_ns is None:
            self.greeting_ns = found[0] - self.t_answer_ns
        if found is None:
            self._misses += 1
            if self._misses >= self.policy.give_up_after_no_response:
                self._finish(CallOutcome.NO_RESPONSE,
                             f"{self._misses} waits for the agent timed out; caller hung up")
            return True
        self._misses = 0
        self._onset = found[0]
        self._wait, self._deadline = _REPLYING, now + self.policy.max_reply_ns
        return self._waiting(now)

    def _end_of_script(self) -> None:
        heard_any = self.greeting_ns is not None or any(
            t.outcome == TurnOutcome.ANSWERED for t in self.turns)
        steps = self.scenario.steps
        expects_greeting = bool(steps) and isinstance(steps[0], WaitForAgent)
        if not heard_any and (self.turns or expects_greeting):
            self._finish(CallOutcome.NO_RESPONSE, "the agent never spoke")
        else:
            self._finish(CallOutcome.COMPLETED, "scenario finished")

    def _finish(self, outcome: CallOutcome, reason: str) -> None:
        if self.finished is None:
            self.finished = Finished(outcome, reason)
            self._utt = None

    def _faults(self) -> tuple[str, ...]:
        return tuple(self.faults_now()) if self.faults_now is not None else ()

    def _merge(self, before: tuple[str, ...]) -> tuple[str, ...]:
        if self.faults_now is None:
            return before
        return tuple(sorted(set(before) | set(self.faults_now())))
