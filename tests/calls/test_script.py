"""The call script on a fake clock: exact turn latencies, in nanoseconds.

A fake agent hears what the script sends (speech or silence, tick by tick),
and answers a fixed delay after the caller's last speech frame left (or after
the caller started, to talk over it). Its audio goes through the real playout
queue, which stamps each frame with the instant its playout began, and the
script is stepped exactly as the media clock steps it in a call. Every expected
value is the delay the fake agent was told to take, to the nanosecond.
"""

from __future__ import annotations

from typing import Any

from loadcaller.calls.scenario import CallPolicy, Dtmf, Hangup, Pause, Say, WaitForAgent
from loadcaller.calls.script import Finished, SendDtmf
from loadcaller.media.outcomes import CallOutcome, TurnOutcome

from . import scriptdrive
from .scriptdrive import HELLO, MS, POLICY, T0, TICK, Drive, Reply


def drive(steps: tuple[Any, ...], replies: list[Reply], **kw: Any) -> Drive:
    """The fake agent (tests/calls/scriptdrive.py), never stopping when talked over."""
    return scriptdrive.drive(steps, replies, reaction_ns=None, **kw)


def test_one_turn_latency_and_greeting_are_exact():
    d = drive((WaitForAgent(), Say(HELLO), WaitForAgent()),
              [Reply(1_234_567_891, after="answer"), Reply(734_500_333)])
    s = d.script
    assert s.greeting_ns == 1_234_567_891
    (turn,) = s.turns
    assert turn.outcome == TurnOutcome.ANSWERED and not turn.overlap
    assert turn.t_speech_end_ns == d.speech_ends[0]
    assert turn.t_reply_onset_ns == d.speech_ends[0] + 734_500_333
    assert turn.latency_ns == 734_500_333
    assert s.finished == Finished(CallOutcome.COMPLETED, "scenario finished")


def test_several_turns_each_exact():
    delays = [201_000_001, 1_899_999_999, 650_000_000]
    steps = (WaitForAgent(),) + (Say(HELLO), WaitForAgent(), Pause(300 * MS)) * 3
    d = drive(steps, [Reply(800 * MS, after="answer")] + [Reply(x) for x in delays])
    assert [t.latency_ns for t in d.script.turns] == delays
    assert [t.index for t in d.script.turns] == [0, 1, 2]
    assert [t.t_speech_end_ns for t in d.script.turns] == d.speech_ends


def test_reply_starting_while_the_caller_still_speaks_is_an_overlap_of_zero():
    # the agent starts 200 ms into the caller's 500 ms utterance and talks for 1 s
    d = drive((Say(HELLO), WaitForAgent()), [Reply(200 * MS + 3, frames=50, after="start")])
    (turn,) = d.script.turns
    assert turn.outcome == TurnOutcome.ANSWERED and turn.overlap
    assert turn.t_reply_onset_ns == d.speech_starts[0] + 200 * MS + 3
    assert turn.latency_ns == 0


def test_a_reply_that_never_comes_is_no_response_at_the_timeout():
    d = drive((Say(HELLO), WaitForAgent(), Say(HELLO), WaitForAgent()), [])
    t0, t1 = d.script.turns
    assert (t0.outcome, t1.outcome) == (TurnOutcome.NO_RESPONSE, TurnOutcome.NO_RESPONSE)
    assert t0.latency_ns is None
    # two unanswered waits and the caller hangs up, on the tick the second timeout passes
    assert d.ended_at == d.speech_ends[1] + POLICY.turn_timeout_ns
    assert d.script.finished == Finished(
        CallOutcome.NO_RESPONSE, "2 waits for the agent timed out; caller hung up")


def test_far_end_hanging_up_mid_reply_keeps_the_answered_turn():
    d = drive((Say(HELLO), WaitForAgent()), [Reply(900_000_017, frames=100)],
              cut_at_ns=2_500 * MS)  # the reply (2 s long) began, then the line went dead
    (turn,) = d.script.turns
    assert turn.outcome == TurnOutcome.ANSWERED
    assert turn.latency_ns == 900_000_017


def test_far_end_hanging_up_before_the_reply():
    d = drive((Say(HELLO), WaitForAgent()), [Reply(5_000 * MS)], cut_at_ns=1_500 * MS)
    (turn,) = d.script.turns
    assert turn.outcome == TurnOutcome.AGENT_HANGUP and turn.latency_ns is None
    d = drive((Say(HELLO), WaitForAgent()), [Reply(5_000 * MS)], cut_at_ns=1_500 * MS,
              cut=CallOutcome.DROPPED)
    assert d.script.turns[0].outcome == TurnOutcome.DROPPED


def test_the_next_turn_waits_out_the_hangover_and_no_more():
    # The greeting's last speech frame begins at L. Its end is confirmed once 400 ms
    # of quiet frames (20) have been heard; the playout emits a quiet frame once its
    # 20 ms are over, so the 20th is heard at L + 420 ms. The caller's next utterance
    # starts on the tick after that (the tick that learns the end enters Say).
    onset = 1_000 * MS + 11
    d = drive((WaitForAgent(), Say(HELLO), WaitForAgent()),
              [Reply(onset, frames=10, after="answer"), Reply(300 * MS)])
    last = T0 + onset + 9 * TICK
    learned = T0 + -(-(last + 420 * MS - T0) // TICK) * TICK  # first tick at or after
    assert d.speech_starts[0] == learned + TICK
    assert d.script.greeting_ns == onset


def test_dtmf_and_hangup_steps():
    d = drive((Dtmf("12#"), Hangup(), Say(HELLO)), [])
    assert d.actions[:3] == [SendDtmf("1"), SendDtmf("2"), SendDtmf("#")]
    assert d.script.finished == Finished(CallOutcome.COMPLETED, "scenario finished")
    assert d.speech_starts == []  # nothing after the hangup is said


def test_max_call_duration_ends_the_call():
    policy = CallPolicy(turn_timeout_ns=2_000 * MS, max_call_ns=1_000 * MS)
    d = drive((Pause(5_000 * MS),), [], policy=policy)
    assert d.ended_at == T0 + 1_000 * MS
    assert d.script.finished == Finished(CallOutcome.COMPLETED, "max call duration reached")


def test_max_call_duration_ends_the_call_mid_utterance():
    """A Say longer than the call may last is cut where the limit falls (a step mid-
    utterance has nothing to do until its last frame, but the limit still applies)."""
    policy = CallPolicy(turn_timeout_ns=2_000 * MS, max_call_ns=300 * MS)
    d = drive((Say(HELLO),), [], policy=policy)  # HELLO: 500 ms of speech
    assert d.ended_at == T0 + 300 * MS
    assert d.script.finished == Finished(CallOutcome.COMPLETED, "max call duration reached")
