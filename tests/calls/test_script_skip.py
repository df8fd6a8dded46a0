"""Ticks that cannot move a waiting step are skipped, and that changes nothing.

A step waiting for an instant (a pause's end, a timeout, the caller's patience, a
barge-in's moment) or for something new to be heard is not re-evaluated on the
ticks in between (calls/script.py ``_until``). Every scenario here runs twice on
the fake clock, with the skip and without, and must end with the same turns,
actions and end, instant for instant.
"""

from __future__ import annotations

import random

import pytest

from loadcaller.calls import script as script_mod
from loadcaller.calls.scenario import (
    BargeIn,
    CallPolicy,
    Dtmf,
    If,
    Pause,
    Repeat,
    Say,
    Silence,
    Step,
    WaitForAgent,
)
from loadcaller.media.outcomes import TurnOutcome
from tests.calls.scriptdrive import HELLO, MS, POLICY, Reply, drive

AGAIN = If(frozenset({TurnOutcome.NO_RESPONSE}), (Say(HELLO), WaitForAgent()))


def random_step(rng: random.Random) -> Step:
    return rng.choice([
        lambda: Say(HELLO),
        lambda: WaitForAgent(),
        lambda: WaitForAgent(timeout_ns=rng.randrange(100, 3_000) * MS),
        lambda: Pause(rng.randrange(0, 1_500) * MS + rng.choice([0, 1, 7])),
        lambda: Silence(rng.randrange(200, 3_000) * MS),
        lambda: BargeIn(HELLO, after_ns=rng.randrange(0, 800) * MS),
        lambda: Dtmf("12"),
        lambda: AGAIN,
        lambda: Repeat(2, (Say(HELLO), WaitForAgent())),
    ])()


def random_call(seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    steps = tuple(random_step(rng) for _ in range(rng.randrange(2, 9)))
    replies = [Reply(rng.randrange(50, 2_500) * MS + rng.choice([0, 3]),
                     frames=rng.randrange(5, 60),
                     after=rng.choice(["end", "end", "start", "answer"]))
               for _ in range(rng.randrange(0, 6))]
    policy = CallPolicy(turn_timeout_ns=rng.choice([800, 2_000]) * MS,
                        max_reply_ns=rng.choice([700, 10_000]) * MS,
                        max_call_ns=rng.choice([4_000, 60_000]) * MS,
                        give_up_after_no_response=2,
                        patience_ns=rng.choice([None, None, rng.randrange(300, 3_000) * MS]))
    return {"steps": steps, "replies": replies, "policy": policy,
            "cut_at_ns": rng.choice([None, None, rng.randrange(500, 8_000) * MS])}


def run(call: dict[str, object], skip: bool, monkeypatch: pytest.MonkeyPatch) -> tuple:
    monkeypatch.setattr(script_mod, "SKIP_IDLE_TICKS", skip)
    d = drive(call["steps"], call["replies"], policy=call["policy"],  # type: ignore[arg-type]
              cut_at_ns=call["cut_at_ns"], rng=random.Random(1))  # type: ignore[arg-type]
    s = d.script
    return s.turns, s.finished, d.actions, d.ended_at, s.greeting_ns


@pytest.mark.parametrize("seed", range(150))
def test_skipping_idle_ticks_measures_every_call_the_same(seed: int,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    call = random_call(seed)
    assert run(call, True, monkeypatch) == run(call, False, monkeypatch)


def test_the_skip_does_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    # a long pause: its ticks go by without the step being run again
    ran = []
    original = script_mod.CallScript._advance

    def counting(self, now, actions):  # type: ignore[no-untyped-def]
        ran.append(now)
        return original(self, now, actions)

    monkeypatch.setattr(script_mod.CallScript, "_advance", counting)
    drive((Pause(2_000 * MS), Say(HELLO)), [], policy=POLICY)
    assert len(ran) < 10  # not one per 20 ms tick of the 2 s pause (100)
