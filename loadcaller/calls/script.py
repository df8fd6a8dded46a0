"""One call's scenario and turn measurement as a state machine (sans-I/O).

How this works: the call runner (:mod:`loadcaller.calls.call`) calls two
methods on every 20 ms media clock tick, and nothing else moves the script:

- :meth:`CallScript.next_frame` gives the frame to send now: the next frame of
  the utterance being said, or silence (a persona's noise bed, looped, if any);
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
    BargeIn        waiting for the reply onset, then `after` into it, then a Say
                   whose first frame starts a BargeInWatch (the agent's stop)
    Silence        nothing said until the agent's reprompt begins (then heard out)
                   or the duration passes: reprompted / no_reprompt
    Pause          until now >= its deadline (silence goes out meanwhile)
    Dtmf           the digits go out as actions; done at once
    If, Repeat     push a branch or a loop body on the cursor's stack; done at once
    Hangup         finished

Timing comes only from ``now`` and the heard frames' own stamps, so the script
runs on a fake clock in tests exactly as on the media clock; turn latency is
``reply onset - end of speech`` in nanoseconds, however coarse the tick. When the
far end or the network ends the call first, :meth:`close` settles the pending
turn (answered if a reply had begun, else dropped or agent_hangup).

A persona's patience (``CallPolicy.patience_ns``) ends a wait whose reply has not
begun that long after the caller stopped (or the call was answered): turn and
call ``caller_abandoned``, decided once the VAD could have confirmed an onset.

Speech turns are numbered by the caller's utterances (the reference agent
numbers its turns by the caller's ends of speech, so the two match until the
agent replies into a caller's mid-utterance pause; the ground-truth check pairs
turns by the instant the caller stopped, not by number); a silence step's line
carries the number of the utterance that follows it. An agent onset heard while
the caller was mid-utterance is the turn's cut-in (``t_cut_in_ns``, and when the
caller's last speech frame before it left): the turn is still measured to the
first reply after the caller's last word. ``expect:``
checks go to a recognizer off the media clock's thread once the reply has been
heard out; the verdict replaces the turn in :attr:`CallScript.turns` when it
arrives, and the end of the script waits for them (bounded).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from loadcaller.audio.vad import VadConfig, ulaw_frame_dbfs
from loadcaller.calls import asr
from loadcaller.calls.bargein import BargeInWatch
from loadcaller.calls.measure import Listener, TurnResult, reply_onset
from loadcaller.calls.scenario import (
    BargeIn,
    CallPolicy,
    Dtmf,
    Expect,
    Hangup,
    If,
    Pause,
    Repeat,
    Say,
    Scenario,
    Silence,
    Step,
    WaitForAgent,
    flat_steps,
)
from loadcaller.calls.utterance import Utterance
from loadcaller.media.frames import FRAME_NS, SILENCE_FRAME, PlayedFrame
from loadcaller.media.outcomes import CallOutcome, TurnOutcome

# The caller decides the agent has finished speaking after this much silence.
LISTEN_VAD = VadConfig(hangover_ms=400)
MAX_STEPS_RUN: Final = 100_000  # steps one call may run, loops included (profiles: fewer)
RECOGNITION_WAIT_NS: Final = 15_000_000_000  # the script's end waits this for expect: verdicts
_SPEECH_DBFS: Final = VadConfig().off_dbfs  # a frame of the caller's speech (not a pause)
SKIP_IDLE_TICKS = True  # tests turn it off to check the skip changes nothing


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
NO_ACTIONS: Final[tuple[Action, ...]] = ()  # most ticks of most calls

_WAITING, _REPLYING = 0, 1
_NOT_YET: Final = (-1, False)  # _await_reply: the answer is not known at this instant


@dataclass(slots=True)
class _Pending:
    """A caller utterance whose reply is not yet measured."""

    index: int
    t_end: int
    faults: tuple[str, ...]
    step: str = "say"
    watch: BargeInWatch | None = None
    t_start: int = 0  # its first frame left
    utt: Utterance | None = None


class CallScript:
    """The scenario of one answered call (see the module docstring)."""

    def __init__(self, scenario: Scenario, *, t_answer_ns: int, policy: CallPolicy,
                 vad: VadConfig = LISTEN_VAD,
                 faults_now: Callable[[], Sequence[str]] | None = None,
                 rng: random.Random | None = None,
                 recognizer: asr.Recognizer | None = None) -> None:
        self.scenario = scenario
        self.policy = policy
        self.t_answer_ns = t_answer_ns
        self.listener = Listener(vad)
        self.faults_now = faults_now
        self.rng = rng if rng is not None else random.Random(t_answer_ns)
        self.turns: list[TurnResult] = []
        self.greeting_ns: int | None = None
        self.finished: Finished | None = None
        self._stack: list[list[Any]] = [[scenario.steps, 0, 1]]  # [steps, index, rounds left]
        self._ran = 0  # steps entered
        self._entered = False  # the step in progress has started
        self._utt: Utterance | None = None
        self._utt_start = 0  # the utterance being said: when its first frame left
        self._pos = 0
        self._first_sent = False  # the frame just handed out begins the utterance
        self._last_sent = False  # the frame just handed out ends the utterance
        self._deadline = 0  # Pause end, wait timeout / max reply, silence end
        self._wait = _WAITING
        self._phase = 0  # BargeIn: 0 await the reply, 1 until `after`, 2 speaking
        self._onset = 0
        self._quiet_since = 0
        self._speech = 0  # utterances said so far: the next speech turn's index
        self._last_speech_ns = t_answer_ns
        self._watch: BargeInWatch | None = None  # the barge-in being said
        self._settle_ns = vad.hangover_ms * 1_000_000 + FRAME_NS
        self._confirm_ns = vad.min_speech_frames * FRAME_NS
        self._pending: _Pending | None = None
        self._misses = 0
        self._max_call_at = t_answer_ns + policy.max_call_ns
        self._bed, self._bed_pos = policy.noise_bed, 0  # a persona's noise, else silence
        self._audio: list[PlayedFrame] | None = None  # heard frames kept for an expect:
        self._expect_pos: int | None = None  # the turn an expect: checks
        self._checks = asr.Checks(recognizer)
        self._checks_deadline: int | None = None
        # the step in progress waits only on time and on what the caller hears: until
        # then, with nothing new heard, a tick cannot move it (0: every tick may)
        self._wake = 0

    # ---- the media clock's side -------------------------------------------------

    def next_frame(self) -> bytes:
        """The frame to send on this tick."""
        utt = self._utt
        if utt is None:
            if not self._bed:
                return SILENCE_FRAME
            self._bed_pos = (self._bed_pos + 1) % len(self._bed)
            return self._bed[self._bed_pos]
        frame = utt.frames[self._pos]
        self._first_sent = self._pos == 0
        self._pos += 1
        self._last_sent = self._pos == len(utt.frames)
        return frame

    def step(self, now: int, heard: list[PlayedFrame],
             levels: Sequence[float] | None = None) -> Sequence[Action]:
        """The frame from :meth:`next_frame` left at ``now``; ``heard`` was heard.

        ``levels``: the levels of the heard frames with audio, when the media
        clock computed them for many calls at once (None: the listener computes
        them; see :meth:`Listener.hear`).
        """
        if self._first_sent:
            self._first_sent = False
            self._utt_start = now
            if self._watch is not None and not self._watch.t_first:
                self._watch.started(now)  # the interruption's onset, as the agent gets it
        if self._last_sent:  # the last speech frame is in the socket: the turn's clock starts
            self._last_sent = False
            utt, self._utt = self._utt, None
            watch, self._watch = self._watch, None
            self._pending = _Pending(self._speech, now, self._faults(),
                                     "say" if watch is None else "barge_in", watch,
                                     self._utt_start, utt)
            self._speech += 1
            self._last_speech_ns = now
            self._entered = False
            self._next()
        if heard:
            if self.listener.hear(heard, levels):
                self._wake = 0
            if self._audio is not None:
                self._audio.extend(heard)
        if self._checks.pending:
            self._poll_checks()
        if self.finished is not None:
            return NO_ACTIONS
        if self._utt is not None and self._entered and now < self._max_call_at:
            return NO_ACTIONS  # mid-utterance (a Say, or a barge-in's speech): wait for its end
        if now < self._wake:
            return NO_ACTIONS  # waiting for an instant not reached, and nothing new was heard
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
        self._poll_checks(final=True)
        pending = self._pending
        if pending is None:
            return
        self._pending = None
        found = reply_onset(self.listener, pending.t_end, final=True)
        if found is not None:  # the reply began before the line went dead
            self.turns.append(self._turn(pending, TurnOutcome.ANSWERED, found, final=True))
            return
        outcome = (TurnOutcome.AGENT_HANGUP if call_outcome == CallOutcome.AGENT_HANGUP
                   else TurnOutcome.DROPPED)
        self.turns.append(self._turn(pending, outcome, None, final=True))

    # ---- the cursor ---------------------------------------------------------------

    def _current(self) -> Step | None:
        """The step in progress (loops rewound, finished branches popped); None: the end."""
        stack = self._stack
        while stack:
            top = stack[-1]
            if top[1] < len(top[0]):
                step: Step = top[0][top[1]]
                return step
            if top[2] > 1:
                top[1], top[2] = 0, top[2] - 1
            else:
                stack.pop()
        return None

    def _next(self) -> None:
        if self._stack:
            self._stack[-1][1] += 1

    # ---- the state machine --------------------------------------------------------

    def _advance(self, now: int, actions: list[Action]) -> bool:
        """Run the current step at ``now``; True when it finished (go on to the next)."""
        self._wake = 0
        step = self._current()
        if step is None:
            self._end_of_script(now)
            return False
        entering = not self._entered
        self._entered = True
        if entering:
            self._ran += 1
            if self._ran > MAX_STEPS_RUN:
                self._finish(CallOutcome.COMPLETED, f"step cap reached ({MAX_STEPS_RUN} steps)")
                return False
        done = True
        if isinstance(step, Say):
            if entering:
                self._utt, self._pos = step.utterance, 0
            done = False  # ends in step() once its last frame has left
        elif isinstance(step, WaitForAgent):
            if entering:
                timeout = step.timeout_ns or self.policy.turn_timeout_ns
                self._deadline, self._wait = now + timeout, _WAITING
                self._audio = [] if step.expect is not None else None
            done = self._waiting(now, step)
        elif isinstance(step, BargeIn):
            done = self._barge_in(now, step, entering)
        elif isinstance(step, Silence):
            done = self._silence(now, step, entering)
        elif isinstance(step, Pause):
            if entering:
                self._deadline = now + step.duration_ns
            done = now >= self._deadline
            if not done:
                self._until(self._deadline)
        elif isinstance(step, Dtmf):
            actions.extend(SendDtmf(d) for d in step.digits)
        elif isinstance(step, If | Repeat):
            self._next()
            self._entered = False
            if isinstance(step, If):
                last = self.turns[-1].outcome if self.turns else "none"
                body = step.then if last in step.outcomes else step.orelse
                if body:
                    self._stack.append([body, 0, 1])
            elif step.times > 0 and step.steps:
                self._stack.append([step.steps, 0, step.times])
            return True
        elif isinstance(step, Hangup):
            self._stack.clear()
            self._end_of_script(now)
            return False
        if done:
            self._next()
            self._entered = False
        return done

    def _await_reply(self, now: int, since: int | None = None) -> tuple[int, bool] | None:
        """The reply onset after the pending utterance (or the answer, or ``since``):
        (onset, overlap).

        :data:`_NOT_YET` while unknown; None when no reply began in time (the turn is
        settled as no_response, or the caller lost patience: see :attr:`finished`).
        """
        pending = self._pending
        after = pending.t_end if pending is not None else since or self.t_answer_ns
        found = reply_onset(self.listener, after)
        patience = self.policy.patience_ns
        if patience is not None and (  # an onset is known a confirmation after it was heard
                found[0] > after + patience if found is not None
                else now >= after + patience + self._confirm_ns):
            self._abandon(pending, patience)
            return None
        if found is None:
            if now < self._deadline:
                # nothing changes before the timeout, the caller's patience or a new onset
                self._until(self._deadline if patience is None
                            else min(self._deadline, after + patience + self._confirm_ns))
                return _NOT_YET
            found = reply_onset(self.listener, after, final=True)
        if pending is not None:
            if pending.watch is not None and not pending.watch.poll(self.listener, now):
                return _NOT_YET  # the agent's stop is not known yet: the turn waits for it
            self._pending = None
            outcome = TurnOutcome.NO_RESPONSE if found is None else TurnOutcome.ANSWERED
            self.turns.append(self._turn(pending, outcome, found))
            self._expect_pos = len(self.turns) - 1
        else:
            self._expect_pos = None
            if found is not None and self.greeting_ns is None:
                # audio before the answer (SIP early media) greets the caller at the answer
                self.greeting_ns = max(0, found[0] - self.t_answer_ns)
        if found is None:
            self._misses += 1
            if self._misses >= self.policy.give_up_after_no_response:
                self._finish(CallOutcome.NO_RESPONSE,
                             f"{self._misses} waits for the agent timed out; caller hung up")
            return None
        self._misses = 0
        return found

    def _waiting(self, now: int, step: WaitForAgent) -> bool:
        """WaitForAgent at ``now``: True once the reply (or greeting) has been heard out."""
        if self._wait == _REPLYING:
            end = self.listener.end_after(self._onset)
            if end is None and now < self._deadline:
                self._until(self._deadline)  # or until the end is heard
                return False
            if step.expect is not None:
                self._check(step.expect, end)
            return True
        found = self._await_reply(now)
        if found is _NOT_YET:
            return False
        if found is None:
            self._audio = None
            return True
        self._onset = found[0]
        self._wait, self._deadline = _REPLYING, now + self.policy.max_reply_ns
        return self._waiting(now, step)

    def _barge_in(self, now: int, step: BargeIn, entering: bool) -> bool:
        if entering:
            self._phase = 0
            self._deadline = now + (step.timeout_ns or self.policy.turn_timeout_ns)
            # nothing said since the last reply was heard out: the next reply, not that one
            heard = self.greeting_ns is not None or bool(self.turns)
            self._quiet_since = now if self._pending is None and heard else 0
        if self._phase == 0:
            found = self._await_reply(now, self._quiet_since or None)
            if found is _NOT_YET or self.finished is not None:
                return False
            after = step.after_ns
            if step.after_max_ns is not None:
                after = self.rng.randint(step.after_ns, step.after_max_ns)
            onset = None if found is None else found[0]
            self._watch = BargeInWatch(onset, step.stop_timeout_ns, self._settle_ns)
            self._onset = now if onset is None else onset + after
            self._phase = 1
        if self._phase == 1:
            if now + FRAME_NS < self._onset:  # the first frame leaves on the next tick
                self._until(self._onset - FRAME_NS)
                return False
            self._utt, self._pos, self._phase = step.utterance, 0, 2
        return False  # ends in step() once its last frame has left

    def _silence(self, now: int, step: Silence, entering: bool) -> bool:
        listener = self.listener
        if entering:
            quiet = now
            if len(listener.onsets) == len(listener.ends):  # the agent is not speaking
                quiet = self._last_speech_ns
                if listener.ends:
                    quiet = max(quiet, listener.ends[-1] + FRAME_NS)
                quiet = min(quiet, now)
            self._quiet_since, self._wait = quiet, _WAITING
            self._deadline = quiet + step.duration_ns
        if self._wait == _WAITING:
            onset = listener.onset_at_or_after(self._quiet_since)
            if onset is not None and onset > self._deadline:
                onset = None
            if onset is None:
                if now < self._deadline + self._confirm_ns:
                    self._until(self._deadline + self._confirm_ns)
                    return False
                self.turns.append(TurnResult(self._speech, TurnOutcome.NO_REPROMPT,
                                             self._quiet_since, faults=self._faults(),
                                             step="silence"))
                return True
            self.turns.append(TurnResult(self._speech, TurnOutcome.REPROMPTED, self._quiet_since,
                                         faults=self._faults(), step="silence",
                                         t_reprompt_ns=onset))
            self._onset, self._wait = onset, _REPLYING
            self._deadline = now + self.policy.max_reply_ns
        return listener.end_after(self._onset) is not None or now >= self._deadline

    def _turn(self, pending: _Pending, outcome: TurnOutcome, found: tuple[int, bool] | None,
              *, final: bool = False) -> TurnResult:
        watch = pending.watch
        extra: dict[str, Any] = {}
        if watch is not None:
            if final:
                watch.poll(self.listener, 0, final=True)
            extra = {"bargein": watch.outcome, "t_bargein_ns": watch.t_first or None,
                     "t_agent_stop_ns": watch.t_stop}
        onset, overlap = found if found is not None else (None, False)
        cut_in, cut_in_after = self._cut_in(pending)
        faults = self._merge(pending.faults)
        # tagged by a fault that began while the caller waited: in the phases, the turn
        # comes when its reply did, after the turns that ended before that fault began
        if onset is not None and set(faults) != set(pending.faults):
            extra["t_faults_ns"] = max(onset, pending.t_end)
        return TurnResult(pending.index, outcome, pending.t_end, onset, overlap,
                          faults, step=pending.step, **extra,
                          t_cut_in_ns=cut_in, t_cut_in_after_ns=cut_in_after)

    def _cut_in(self, pending: _Pending) -> tuple[int | None, int | None]:
        """An agent onset heard while the caller was mid-utterance (its reply to a
        persona's pause, taken for the end of the turn): the onset, and when the last
        speech frame before it left (frames leave every 20 ms from the first)."""
        utt = pending.utt
        onset = next((o for o in self.listener.onsets if pending.t_start < o < pending.t_end),
                     None)
        if utt is None or onset is None:
            return None, None
        last = min(len(utt.frames), (onset - pending.t_start) // FRAME_NS + 1) - 1
        while last > 0 and ulaw_frame_dbfs(utt.frames[last]) < _SPEECH_DBFS:
            last -= 1
        return onset, pending.t_start + last * FRAME_NS

    def _abandon(self, pending: _Pending | None, patience_ns: int) -> None:
        if pending is not None:
            self._pending = None
            self.turns.append(self._turn(pending, TurnOutcome.CALLER_ABANDONED, None, final=True))
        self._finish(CallOutcome.CALLER_ABANDONED,
                     f"no reply within the caller's patience ({patience_ns / 1e9:g} s); "
                     "the caller hung up")

    def _until(self, t_ns: int) -> None:
        """The step in progress can only move at ``t_ns`` or once something new is heard."""
        self._wake = min(t_ns, self._max_call_at) if SKIP_IDLE_TICKS else 0

    # ---- expect: ---------------------------------------------------------------------

    def _check(self, expect: Expect, end: int | None) -> None:
        """Send the reply as heard (onset to end) to the recognizer."""
        frames, self._audio = self._audio or [], None
        pos = self._expect_pos
        if pos is None:  # a greeting: no turn to write the verdict on
            return
        audio = b"".join(f.audio for f in frames
                         if f.t_ns >= self._onset and (end is None or f.t_ns <= end))
        self._checks.submit(pos, audio, expect)

    def _poll_checks(self, *, final: bool = False) -> None:
        for pos, text, ok, reason in self._checks.poll(final=final):
            self.turns[pos] = replace(self.turns[pos], heard_text=text, expect_ok=ok,
                                      expect_reason=reason)

    # ---- the end ------------------------------------------------------------------------

    def _end_of_script(self, now: int) -> None:
        if self._checks.pending:  # verdicts still being recognised: stay on the line a while
            if self._checks_deadline is None:
                self._checks_deadline = now + RECOGNITION_WAIT_NS
            if now < self._checks_deadline:
                return
        heard_any = self.greeting_ns is not None or any(
            t.outcome in (TurnOutcome.ANSWERED, TurnOutcome.REPROMPTED) for t in self.turns)
        steps = flat_steps(self.scenario.steps)
        expects_greeting = bool(steps) and isinstance(steps[0], WaitForAgent | BargeIn)
        if not heard_any and (self.turns or expects_greeting):
            self._finish(CallOutcome.NO_RESPONSE, "the agent never spoke")
        else:
            self._finish(CallOutcome.COMPLETED, "scenario finished")

    def _finish(self, outcome: CallOutcome, reason: str) -> None:
        if self.finished is None:
            self.finished = Finished(outcome, reason)
            self._utt = None
            if self._checks.pending:
                self._poll_checks(final=True)

    def _faults(self) -> tuple[str, ...]:
        return tuple(self.faults_now()) if self.faults_now is not None else ()

    def _merge(self, before: tuple[str, ...]) -> tuple[str, ...]:
        if self.faults_now is None:
            return before
        return tuple(sorted(set(before) | set(self.faults_now())))
