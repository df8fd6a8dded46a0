"""An agent that replies into a caller's mid-utterance pause: the turn records the cut-in."""

from __future__ import annotations

from loadcaller.calls.scenario import Say, WaitForAgent
from loadcaller.calls.utterance import make_utterance
from loadcaller.media.frames import SILENCE_FRAME
from loadcaller.media.outcomes import TurnOutcome
from tests.calls.scriptdrive import LOUD, MS, TICK, Reply
from tests.calls.test_script import drive

# 10 frames of speech, a 1 s pause (a persona's), 10 more frames
PAUSED = make_utterance("paused", LOUD * 10 + SILENCE_FRAME * 50 + LOUD * 10)


def test_a_reply_into_the_pause_is_a_cut_in_and_the_turn_waits_for_the_real_reply():
    # the agent answers 600 ms into the pause (10 frames), then 700 ms after the end
    d = drive((Say(PAUSED), WaitForAgent()), [Reply(600 * MS, frames=10),
                                              Reply(700 * MS, frames=30)])
    (turn,) = d.script.turns
    first_half_end, end = d.speech_ends
    assert turn.outcome == TurnOutcome.ANSWERED and not turn.overlap
    assert turn.t_speech_end_ns == end
    assert turn.t_reply_onset_ns == d.onsets[1]  # the reply to the whole utterance
    assert turn.t_cut_in_ns == d.onsets[0]
    assert turn.t_cut_in_after_ns == first_half_end
    assert turn.cut_in_ns == 600 * MS


def test_talking_over_the_caller_mid_speech_is_a_cut_in_with_no_silence_before_it():
    long = make_utterance("long", LOUD * 50)  # 1 s of speech, no pause
    d = drive((Say(long), WaitForAgent()), [Reply(400 * MS, frames=10, after="start"),
                                            Reply(700 * MS)])
    (turn,) = d.script.turns
    assert turn.t_cut_in_ns == d.onsets[0] and turn.t_reply_onset_ns == d.onsets[1]
    assert turn.cut_in_ns is not None and turn.cut_in_ns <= TICK  # it spoke into speech


def test_a_turn_nobody_cut_into_records_no_cut_in():
    d = drive((Say(make_utterance("plain", LOUD * 25)), WaitForAgent()), [Reply(700 * MS)])
    (turn,) = d.script.turns
    assert turn.t_cut_in_ns is None and turn.cut_in_ns is None
    assert turn.latency_ns == 700 * MS
