"""Barge-in on a fake clock: when the caller cuts in, and the agent's stop, to the ns."""

from __future__ import annotations

import random

from loadcaller.calls.scenario import BargeIn, Say, WaitForAgent
from loadcaller.calls.script import Finished
from loadcaller.media.outcomes import BargeInOutcome, CallOutcome, TurnOutcome
from tests.calls.scriptdrive import HELLO, MS, TICK, Reply, drive, heard_end


def test_the_caller_cuts_in_after_the_reply_onset_and_the_stop_reaction_is_exact():
    # turn 0: the agent answers 400 ms after "hello" with 2 s of speech; 300 ms into
    # it (as heard) the caller barges in; the agent clears 150 ms later; then it
    # answers the interruption 250 ms after it ends
    steps = (Say(HELLO), BargeIn(HELLO, after_ns=300 * MS), WaitForAgent())
    d = drive(steps, [Reply(400 * MS + 3, frames=100), Reply(250 * MS + 1)],
              reaction_ns=150 * MS)
    t0, t1 = d.script.turns
    assert t0.outcome == TurnOutcome.ANSWERED and t0.latency_ns == 400 * MS + 3
    assert t0.step == "say" and t0.bargein is None
    onset = d.onsets[0]
    t_first = d.speech_starts[1]
    # the first interrupting frame leaves on the first tick at or after onset + 300 ms
    assert onset + 300 * MS <= t_first < onset + 300 * MS + TICK
    assert t1.step == "barge_in" and t1.bargein == BargeInOutcome.STOPPED
    assert t1.t_bargein_ns == t_first
    assert d.clears == [t_first + 150 * MS]
    assert t1.t_agent_stop_ns == heard_end(onset, t_first + 150 * MS)
    assert t1.bargein_reaction_ns == heard_end(onset, t_first + 150 * MS) - t_first
    # the reply to the interruption is measured like any turn
    assert t1.outcome == TurnOutcome.ANSWERED and not t1.overlap
    assert t1.latency_ns == 250 * MS + 1
    assert d.script.finished == Finished(CallOutcome.COMPLETED, "scenario finished")


def test_barge_in_into_the_greeting():
    d = drive((BargeIn(HELLO, after_ns=500 * MS), WaitForAgent()),
              [Reply(700 * MS, frames=150, after="answer"), Reply(300 * MS)],
              reaction_ns=90 * MS)
    (turn,) = d.script.turns
    assert d.script.greeting_ns == 700 * MS
    assert turn.index == 0 and turn.bargein == BargeInOutcome.STOPPED
    t_first = d.speech_starts[0]
    assert turn.bargein_reaction_ns == heard_end(d.onsets[0], t_first + 90 * MS) - t_first


def test_an_agent_that_never_stops_is_not_stopped_after_the_timeout():
    steps = (Say(HELLO), BargeIn(HELLO, after_ns=200 * MS, stop_timeout_ns=1_000 * MS),
             WaitForAgent())
    d = drive(steps, [Reply(300 * MS, frames=300), Reply(200 * MS)], reaction_ns=None)
    t1 = d.script.turns[1]
    assert t1.bargein == BargeInOutcome.NOT_STOPPED
    assert t1.t_agent_stop_ns is None and t1.bargein_reaction_ns is None
    # the agent talked on over the end of the interruption: its reply is that overlap
    assert t1.outcome == TurnOutcome.ANSWERED and t1.overlap


def test_a_reply_that_ended_before_the_caller_cut_in_is_not_speaking():
    steps = (Say(HELLO), BargeIn(HELLO, after_ns=2_000 * MS), WaitForAgent())
    d = drive(steps, [Reply(300 * MS, frames=20), Reply(200 * MS)])
    t1 = d.script.turns[1]
    assert t1.bargein == BargeInOutcome.NOT_SPEAKING and t1.bargein_reaction_ns is None
    assert t1.latency_ns == 200 * MS


def test_no_reply_to_barge_into_the_caller_speaks_anyway():
    steps = (Say(HELLO), BargeIn(HELLO, after_ns=100 * MS), WaitForAgent())
    d = drive(steps, [Reply(5_000 * MS), Reply(100 * MS)])
    t0, t1 = d.script.turns
    assert t0.outcome == TurnOutcome.NO_RESPONSE
    assert t1.bargein == BargeInOutcome.NO_REPLY
    # spoken on the tick the turn timeout passed (2 s after "hello" ended)
    assert d.speech_starts[1] == d.speech_ends[0] + 2_000 * MS + TICK


def test_a_random_range_is_drawn_per_call_from_the_seeded_generator():
    steps = (Say(HELLO), BargeIn(HELLO, after_ns=300 * MS, after_max_ns=900 * MS),
             WaitForAgent())
    starts = []
    for seed in (1, 1, 2, 3, 4):
        d = drive(steps, [Reply(400 * MS, frames=100), Reply(250 * MS)],
                  rng=random.Random(seed))
        offset = d.speech_starts[1] - d.onsets[0]
        assert 300 * MS <= offset < 900 * MS + TICK
        starts.append(offset)
    assert starts[0] == starts[1]  # the same seed, the same instant
    assert len(set(starts[1:])) > 1  # other seeds, other instants


def test_after_a_reply_was_heard_out_barge_in_waits_for_the_next_one():
    # the greeting is heard out by wait_for_agent; the barge-in is for the agent's next
    # speech (here unprompted, at 3 s), not the greeting that is over
    d = drive((WaitForAgent(), BargeIn(HELLO, after_ns=300 * MS, timeout_ns=5_000 * MS),
               WaitForAgent()),
              [Reply(200 * MS, frames=10, after="answer"),
               Reply(3_000 * MS, frames=100, after="at"), Reply(250 * MS)],
              reaction_ns=150 * MS)
    (turn,) = d.script.turns
    onset = d.onsets[1]
    t_first = d.speech_starts[0]
    assert onset + 300 * MS <= t_first < onset + 300 * MS + TICK
    assert turn.bargein == BargeInOutcome.STOPPED
    assert turn.bargein_reaction_ns == heard_end(onset, t_first + 150 * MS) - t_first
