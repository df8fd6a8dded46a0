"""The call script on a fake clock: exact turn latencies, in nanoseconds.

A fake agent hears what the script sends (speech or silence, tick by tick),
and answers a fixed delay after the caller's last speech frame left (or after
the caller started, to talk over it). Its audio goes through the real playout
queue, which stamps each frame with the instant its playout began, and the
script is stepped exactly as the media clock steps it in a call. Every expected
value is the delay the fake agent was told to take, to the nanosecond.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loadcaller.calls.scenario import CallPolicy, Dtmf, Hangup, Pause, Say, Scenario, WaitForAgent
from loadcaller.calls.script import CallScript, Finished, SendDtmf
from loadcaller.calls.utterance import make_utterance
from loadcaller.media.frames import SILENCE_FRAME
from loadcaller.media.outcomes import CallOutcome, TurnOutcome
from loadcaller.twilio.playout import Playout

MS = 1_000_000
TICK = 20 * MS
T0 = 5_000_000_000_007  # an odd origin: nothing may depend on round instants
LOUD = bytes([0x00, 0x80]) * 80  # a full-scale mu-law square wave: speech to any VAD
HELLO = make_utterance("hello", LOUD * 25)  # 25 frames, 500 ms
POLICY = CallPolicy(turn_timeout_ns=2_000 * MS, max_reply_ns=10_000 * MS,
                    max_call_ns=60_000 * MS, give_up_after_no_response=2)


@dataclass
class Reply:
    """The agent speaks ``frames`` frames ``delay_ns`` after the caller's speech ends
    (``after="end"``) or starts (``after="start"``); ``after="answer"`` greets."""

    delay_ns: int
    frames: int = 30
    after: str = "end"


@dataclass
class Drive:
    """The outcome of one driven script."""

    script: CallScript
    actions: list[object] = field(default_factory=list)
    speech_ends: list[int] = field(default_factory=list)  # instants the caller stopped
    speech_starts: list[int] = field(default_factory=list)
    onsets: list[int] = field(default_factory=list)  # instants the agent's replies began
    ended_at: int | None = None


def drive(steps: tuple[object, ...], replies: list[Reply], *, policy: CallPolicy = POLICY,
          cut_at_ns: int | None = None, cut: CallOutcome = CallOutcome.AGENT_HANGUP,
          limit_ns: int = 60_000 * MS) -> Drive:
    script = CallScript(Scenario("t", steps), t_answer_ns=T0, policy=policy)  # type: ignore[arg-type]
    out = Drive(script)
    playout = Playout(T0)
    queue = list(replies)
    due: list[tuple[int, int]] = []  # (onset, frames)
    if queue and queue[0].after == "answer":
        r = queue.pop(0)
        due.append((T0 + r.delay_ns, r.frames))
    out.actions += script.step(T0, [])
    if script.finished is not None:
        out.ended_at = T0
        return out
    speaking, prev = False, T0
    now = T0
    while now < T0 + limit_ns:
        now += TICK
        if cut_at_ns is not None and now >= T0 + cut_at_ns:
            script.close(cut)
            out.ended_at = now
            return out
        frame = script.next_frame()
        if frame != SILENCE_FRAME and not speaking:
            speaking = True
            out.speech_starts.append(now)
            if queue and queue[0].after == "start":
                r = queue.pop(0)
                due.append((now + r.delay_ns, r.frames))
        elif frame == SILENCE_FRAME and speaking:
            speaking = False
            out.speech_ends.append(prev)  # the last speech frame left on the tick before
            if queue and queue[0].after == "end":
                r = queue.pop(0)
                due.append((prev + r.delay_ns, r.frames))
        for onset, n in [d for d in due if d[0] <= now]:
            due.remove((onset, n))
            playout.push(LOUD * n, onset)
            out.onsets.append(onset)
        heard, _ = playout.advance(now)
        actions = script.step(now, heard)
        out.actions += actions
        prev = now
        if any(isinstance(a, Finished) for a in actions):
            out.ended_at = now
            return out
    raise AssertionError("the script never finished")


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
