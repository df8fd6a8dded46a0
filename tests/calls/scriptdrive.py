"""A fake agent on a fake clock for the call script's tests.

A fake agent hears what the script sends (speech or silence, tick by tick) and
answers a fixed delay after the caller's last speech frame left (or after the
caller started, to talk over it, or after the answer, or at an absolute instant:
a reprompt into dead air). Its audio goes through the real Twilio playout queue,
which stamps each frame with the instant its playout began, and the script is
stepped exactly as the media clock steps it in a call. The agent also stops when
talked over: ``reaction_ns`` after the first frame of the caller's speech left,
it sends ``clear`` (the playout drops what has not begun to play), or never
(``reaction_ns=None``). ``cut_at_ns``: the far end ends the call then.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from loadcaller.audio.g711 import ulaw_encode
from loadcaller.calls.scenario import CallPolicy, Scenario, Step
from loadcaller.calls.script import CallScript, Finished
from loadcaller.calls.utterance import make_utterance
from loadcaller.media.frames import SILENCE_FRAME
from loadcaller.media.outcomes import CallOutcome
from loadcaller.twilio.playout import Playout

MS = 1_000_000
TICK = 20 * MS
T0 = 5_000_000_000_007  # an odd origin: nothing may depend on round instants
LOUD = bytes([0x00, 0x80]) * 80  # a full-scale mu-law square wave: speech to any VAD
# about -30 dBFS: still speech (over the VAD's -50 dBFS), and what makes a reply vary in
# level like speech (a VAD that tracks stationary noise must not take it for noise)
SOFT = ulaw_encode(np.array([1000, -1000] * 80, dtype=np.int16))


def speech(frames: int) -> bytes:
    """``frames`` frames that rise and fall like syllables; the first and last are loud."""
    return b"".join(SOFT if 0 < i < frames - 1 and i % 5 == 3 else LOUD
                    for i in range(frames))
HELLO = make_utterance("hello", LOUD * 25)  # 25 frames, 500 ms
POLICY = CallPolicy(turn_timeout_ns=2_000 * MS, max_reply_ns=10_000 * MS,
                    max_call_ns=60_000 * MS, give_up_after_no_response=2)


@dataclass
class Reply:
    """``frames`` of speech ``delay_ns`` after the caller's n-th end of speech
    (``after="end"``), its n-th start (``"start"``: talking over it), after the
    answer (``"answer"``), or at ``T0 + delay_ns`` (``"at"``)."""

    delay_ns: int
    frames: int = 30
    after: str = "end"


@dataclass
class Drive:
    script: CallScript
    actions: list[object] = field(default_factory=list)
    speech_starts: list[int] = field(default_factory=list)  # caller's first frames left
    speech_ends: list[int] = field(default_factory=list)  # caller's last frames left
    onsets: list[int] = field(default_factory=list)  # agent replies pushed (their onsets)
    clears: list[int] = field(default_factory=list)  # instants the agent sent clear
    ended_at: int | None = None


def drive(steps: tuple[Step, ...], replies: list[Reply], *, policy: CallPolicy = POLICY,
          reaction_ns: int | None = 150 * MS, limit_ns: int = 60_000 * MS,
          rng: random.Random | None = None, recognizer: object = None,
          cut_at_ns: int | None = None, cut: CallOutcome = CallOutcome.AGENT_HANGUP,
          faults: Callable[[int], list[str]] | None = None) -> Drive:
    """``faults``: the chaos faults active at an instant (the script asks at each step)."""
    clock = [T0]
    script = CallScript(Scenario("t", steps), t_answer_ns=T0, policy=policy, rng=rng,
                        recognizer=recognizer,  # type: ignore[arg-type]
                        faults_now=None if faults is None else lambda: faults(clock[0]))
    out = Drive(script)
    playout = Playout(T0)
    after_end = [r for r in replies if r.after == "end"]
    after_start = [r for r in replies if r.after == "start"]
    events: list[tuple[int, str, int]] = []  # (instant, "push" | "clear", frames)
    for r in replies:
        if r.after in ("answer", "at"):
            events.append((T0 + r.delay_ns, "push", r.frames))
    out.actions += script.step(T0, [])
    if script.finished is not None:
        out.ended_at = T0
        return out
    speaking, prev, now = False, T0, T0
    while now < T0 + limit_ns:
        now += TICK
        clock[0] = now
        if cut_at_ns is not None and now >= T0 + cut_at_ns:
            script.close(cut)
            out.ended_at = now
            return out
        frame = script.next_frame()
        if frame != SILENCE_FRAME and not speaking:
            speaking = True
            out.speech_starts.append(now)
            if after_start:
                r = after_start.pop(0)
                events.append((now + r.delay_ns, "push", r.frames))
            if reaction_ns is not None and playout.queued_bytes:
                events.append((now + reaction_ns, "clear", 0))
        elif frame == SILENCE_FRAME and speaking:
            speaking = False
            out.speech_ends.append(prev)
            if after_end:
                r = after_end.pop(0)
                events.append((prev + r.delay_ns, "push", r.frames))
        heard = []
        for ev in sorted(e for e in events if e[0] <= now):
            events.remove(ev)
            t, kind, n = ev
            heard += playout.advance(t)[0]
            if kind == "push":
                playout.push(speech(n), t)
                out.onsets.append(t)
            else:
                playout.clear(t)
                out.clears.append(t)
        heard += playout.advance(now)[0]
        actions = script.step(now, heard)
        out.actions += actions
        prev = now
        if any(isinstance(a, Finished) for a in actions):
            out.ended_at = now
            return out
    raise AssertionError("the script never finished")


def heard_end(onset: int, clear_at: int) -> int:
    """When the audio of a reply pushed at ``onset`` and cleared at ``clear_at`` ends as
    heard: the frame playing at the clear was heard whole (it had begun)."""
    started = (clear_at - onset) // TICK + 1  # frames begun by clear_at
    return onset + started * TICK
