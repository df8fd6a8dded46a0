"""Chaos phases: turns in the order their fault tags were known, one stretch per fault."""

from __future__ import annotations

from loadcaller.calls.call import CallRecord
from loadcaller.calls.measure import TurnResult
from loadcaller.calls.results import Results
from loadcaller.calls.scenario import Say, WaitForAgent
from loadcaller.media.outcomes import TurnOutcome
from loadcaller.swarm.wire import record_from_wire, record_to_wire

from .scriptdrive import HELLO, MS, T0, Reply, drive

S = 1_000 * MS
T = 10**12


def turn(i: int, end_s: float, onset_s: float, faults: tuple[str, ...] = (),
         known_s: float | None = None) -> TurnResult:
    return TurnResult(i, TurnOutcome.ANSWERED, T + int(end_s * S), T + int(onset_s * S),
                      faults=faults, t_faults_ns=None if known_s is None else T + int(known_s * S))


def test_a_turn_tagged_by_a_fault_that_began_while_it_waited_comes_with_that_fault() -> None:
    """A latency fault from 10.4 s to 20.6 s. Turn b ended speaking at 9.5 s, before it,
    but heard its reply at 11.5 s, in it: ordered by speech end it split the calm
    stretch in two (calm 1, fault 1, calm 2, fault 2, ...)."""
    turns = [turn(0, 9.0, 9.8), turn(1, 9.5, 11.5, ("latency",), known_s=11.5),
             turn(2, 10.0, 10.3), turn(3, 10.2, 10.35), turn(4, 11.0, 13.0, ("latency",)),
             turn(5, 20.0, 22.0, ("latency",)), turn(6, 20.7, 21.4)]
    rec = CallRecord("c1", "twilio", "s", "completed", "done", t_start_ns=T,
                     t_end_ns=T + 30 * S, turns=turns)
    results = Results(None, phases=True)
    results.record_call(record_from_wire(record_to_wire(rec)))  # as a worker's arrives
    phases = results.phases()
    assert [(p["faults"], p["turns"]) for p in phases] == [
        ([], 3), (["latency"], 3), ([], 1)]


def test_the_script_says_when_a_turns_faults_were_complete() -> None:
    """Turn 0 ends before the fault begins and hears its reply in it; turn 1 ends in it."""
    # after the first utterance's end (1.5 s), before its reply (2.3 s)
    fault_from = T0 + 1_900 * MS

    def faults(now: int) -> list[str]:
        return ["latency"] if now >= fault_from else []

    d = drive((WaitForAgent(), Say(HELLO), WaitForAgent(), Say(HELLO), WaitForAgent()),
              [Reply(0, after="answer"), Reply(800 * MS), Reply(300 * MS)], faults=faults)
    first, second = d.script.turns
    assert first.faults == second.faults == ("latency",)
    assert first.t_speech_end_ns < fault_from <= first.t_faults_ns  # type: ignore[operator]
    assert first.t_faults_ns == first.t_reply_onset_ns
    assert second.t_speech_end_ns >= fault_from and second.t_faults_ns is None
