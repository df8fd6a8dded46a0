"""Dead air, branches, loops, patience and expect: on a fake clock, to the ns."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import replace

from loadcaller.calls.scenario import (
    Expect,
    If,
    Pause,
    Repeat,
    Say,
    Silence,
    WaitForAgent,
    expanded_steps,
)
from loadcaller.calls.script import RECOGNITION_WAIT_NS, Finished
from loadcaller.media.outcomes import CallOutcome, TurnOutcome
from tests.calls.scriptdrive import HELLO, MS, POLICY, T0, TICK, Reply, drive

# ---- silence ----------------------------------------------------------------------


def test_silence_measures_the_reprompt_from_when_the_line_went_quiet():
    # greeting of 40 frames at 600 ms; its audio ends at 600 + 800 ms; the agent
    # reprompts 4 s (and 7 ns) later; the caller then answers the reprompt
    quiet = 600 * MS + 40 * TICK
    d = drive((WaitForAgent(), Silence(10_000 * MS), Say(HELLO), WaitForAgent()),
              [Reply(600 * MS, frames=40, after="answer"),
               Reply(quiet + 4_000 * MS + 7, frames=20, after="at"), Reply(300 * MS)])
    silence, turn = d.script.turns
    assert silence.step == "silence" and silence.outcome == TurnOutcome.REPROMPTED
    assert silence.t_speech_end_ns == T0 + quiet
    assert silence.reprompt_ns == 4_000 * MS + 7
    assert silence.latency_ns is None  # not a turn latency
    # the caller spoke once the reprompt was heard out, and that turn is index 0
    assert d.speech_starts[0] > T0 + quiet + 4_000 * MS + 20 * TICK
    assert turn.index == silence.index == 0 and turn.latency_ns == 300 * MS


def test_silence_without_a_reprompt():
    d = drive((WaitForAgent(), Silence(3_000 * MS)), [Reply(200 * MS, frames=10, after="answer")])
    (silence,) = d.script.turns
    assert silence.outcome == TurnOutcome.NO_REPROMPT and silence.reprompt_ns is None
    quiet = T0 + 200 * MS + 10 * TICK
    assert silence.t_speech_end_ns == quiet
    # over once the deadline plus the VAD's confirmation (2 frames) have passed
    assert d.ended_at is not None and quiet + 3_040 * MS <= d.ended_at < quiet + 3_060 * MS
    assert d.script.finished == Finished(CallOutcome.COMPLETED, "scenario finished")


# ---- if / repeat --------------------------------------------------------------------

HELLO_AGAIN = If(frozenset({TurnOutcome.NO_RESPONSE}), (Say(HELLO), WaitForAgent()))


def test_if_no_response_says_hello_again():
    d = drive((Say(HELLO), WaitForAgent(), HELLO_AGAIN), [Reply(5_000 * MS), Reply(300 * MS)])
    assert [t.outcome for t in d.script.turns] == [TurnOutcome.NO_RESPONSE, TurnOutcome.ANSWERED]
    assert d.script.turns[1].latency_ns == 300 * MS
    assert len(d.speech_starts) == 2


def test_if_answered_skips_the_branch_and_runs_else():
    step = replace(HELLO_AGAIN, orelse=(Pause(700 * MS),))
    d = drive((Say(HELLO), WaitForAgent(), step), [Reply(300 * MS, frames=10)])
    assert [t.outcome for t in d.script.turns] == [TurnOutcome.ANSWERED]
    assert len(d.speech_starts) == 1
    # else: the pause began once the reply was heard out (its end + 400 ms hangover)
    heard_out = d.speech_ends[0] + 300 * MS + 9 * TICK + 420 * MS
    assert heard_out + 700 * MS <= d.ended_at < heard_out + 700 * MS + 2 * TICK


def test_repeat_runs_its_body_times_over_each_turn_exact():
    delays = [201 * MS + 1, 333 * MS, 650 * MS + 9]
    d = drive((WaitForAgent(), Repeat(3, (Say(HELLO), WaitForAgent()))),
              [Reply(500 * MS, after="answer")] + [Reply(x) for x in delays])
    assert [t.latency_ns for t in d.script.turns] == delays
    assert [t.index for t in d.script.turns] == [0, 1, 2]


def test_nested_repeat_counts_and_the_step_count_bound():
    inner = Repeat(2, (Pause(20 * MS),))
    d = drive((Repeat(3, (inner, Say(HELLO))),), [])
    assert len(d.speech_starts) == 3
    assert expanded_steps((Repeat(3, (inner, Say(HELLO))),)) == 1 + 3 * (1 + 2 + 1)


# ---- patience -------------------------------------------------------------------------


def test_a_caller_out_of_patience_hangs_up_as_caller_abandoned():
    policy = replace(POLICY, patience_ns=1_000 * MS)
    d = drive((Say(HELLO), WaitForAgent()), [Reply(1_500 * MS)], policy=policy)
    (turn,) = d.script.turns
    assert turn.outcome == TurnOutcome.CALLER_ABANDONED and turn.latency_ns is None
    # on the tick the VAD would have confirmed a reply begun within patience (2 frames)
    assert d.ended_at == d.speech_ends[0] + 1_040 * MS
    assert d.script.finished == Finished(
        CallOutcome.CALLER_ABANDONED,
        "no reply within the caller's patience (1 s); the caller hung up")


def test_a_reply_within_patience_is_answered():
    policy = replace(POLICY, patience_ns=1_000 * MS)
    d = drive((Say(HELLO), WaitForAgent()), [Reply(1_000 * MS)], policy=policy)
    assert d.script.turns[0].latency_ns == 1_000 * MS
    assert d.script.finished == Finished(CallOutcome.COMPLETED, "scenario finished")


# ---- expect: ---------------------------------------------------------------------------


class FakeRecognizer:
    """Answers with ``text`` (a future completed at once, or left pending)."""

    def __init__(self, text: str | None, fail: bool = False) -> None:
        self.text, self.fail = text, fail
        self.audio: list[bytes] = []
        self.futures: list[Future[str]] = []

    def submit(self, ulaw: bytes, expect: object = None) -> Future[str]:
        self.audio.append(ulaw)
        f: Future[str] = Future()
        if self.fail:
            f.set_exception(RuntimeError("decoder crashed"))
        elif self.text is not None:
            f.set_result(self.text)
        self.futures.append(f)
        return f


def test_expect_gets_the_reply_as_heard_and_writes_transcript_and_verdict():
    rec = FakeRecognizer("i found your order it ships tomorrow")
    wait = WaitForAgent(expect=Expect(words=("ships", "Tomorrow"), regex=r"found .* order"))
    d = drive((Say(HELLO), wait), [Reply(300 * MS, frames=30)], recognizer=rec)
    (turn,) = d.script.turns
    assert len(rec.audio) == 1 and len(rec.audio[0]) == 30 * 160  # the reply, onset to end
    assert turn.heard_text == "i found your order it ships tomorrow"
    assert turn.expect_ok is True and turn.expect_reason == "ok"
    assert turn.latency_ns == 300 * MS  # the measurement is untouched


def test_expect_failure_says_what_was_missing():
    rec = FakeRecognizer("let me connect you to a colleague")
    wait = WaitForAgent(expect=Expect(words=("ships",), regex="tomorrow"))
    d = drive((Say(HELLO), wait), [Reply(300 * MS)], recognizer=rec)
    (turn,) = d.script.turns
    assert turn.expect_ok is False
    assert turn.expect_reason == "missing 'ships'; no match for /tomorrow/"


def test_a_recognizer_failure_is_the_turns_reason_not_a_crash():
    rec = FakeRecognizer(None, fail=True)
    d = drive((Say(HELLO), WaitForAgent(expect=Expect(words=("x",)))), [Reply(300 * MS)],
              recognizer=rec)
    (turn,) = d.script.turns
    assert turn.expect_ok is None and turn.expect_reason == "recognition failed: decoder crashed"


def test_the_end_of_the_script_waits_for_verdicts_bounded():
    rec = FakeRecognizer(None)  # never answers
    d = drive((Say(HELLO), WaitForAgent(expect=Expect(words=("x",)))), [Reply(300 * MS)],
              recognizer=rec)
    heard_out = d.speech_ends[0] + 300 * MS + 29 * TICK + 420 * MS
    wait_until = heard_out + RECOGNITION_WAIT_NS
    assert d.ended_at is not None and wait_until <= d.ended_at < wait_until + 2 * TICK
    (turn,) = d.script.turns
    assert turn.expect_ok is None
    assert turn.expect_reason == "the call ended before recognition finished"
    assert rec.futures[0].cancelled()

