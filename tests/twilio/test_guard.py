"""The PSTN guard rails, sans-I/O on a fake clock: allowlist, call rate, minutes."""

from __future__ import annotations

from loadcaller.twilio.guard import CallBudget, allowed

S = 1_000_000_000


def test_allow_matches_exact_numbers_and_star_prefixes() -> None:
    allow = ["+14155550100", "+4420*"]
    assert allowed("+14155550100", allow)
    assert allowed("+442079460000", allow)
    assert not allowed("+14155550101", allow)
    assert not allowed("+4421000000", allow)
    assert not allowed("+1415555010", allow)  # a prefix of an exact entry is not it


def test_call_creations_are_spaced_by_calls_per_second() -> None:
    budget = CallBudget(calls_per_second=2, max_minutes=10)
    now = 100 * S
    waits = [budget.next_turn(now) for _ in range(4)]  # four calls at once
    assert waits == [0, S // 2, S, 3 * S // 2]
    assert budget.next_turn(now + 10 * S) == 0  # a quiet spell: no debt carried


def test_minutes_count_live_and_ended_calls_and_refuse_past_the_budget() -> None:
    budget = CallBudget(calls_per_second=1, max_minutes=1)
    budget.started("a", 0)
    budget.started("b", 10 * S)
    assert budget.refusal(30 * S) is None  # 30 s + 20 s
    budget.ended("a", 40 * S)
    assert budget.minutes_used(40 * S) == 70 / 60  # 40 s ended, 30 s live
    why = budget.refusal(40 * S)
    assert why is not None and why.startswith("local: PSTN call not placed")
    assert "target.max_minutes 1 spent" in why
    budget.ended("b", 40 * S)
    budget.ended("b", 50 * S)  # ended twice: counted once
    assert budget.minutes_used(99 * S) == 70 / 60
