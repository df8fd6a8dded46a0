"""summary.json's ``personas``: calls, outcomes and turn latency per caller persona.

Which callers does the agent fail? A run with a persona mix answers it here (and
per line in calls.jsonl/turns.jsonl). Names come from worker processes too, so
at most :data:`MAX_PERSONAS` are kept (a profile has at most 50); others are
counted under ``(other)``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Final

from loadcaller.calls.call import CallRecord
from loadcaller.calls.histogram import Histogram
from loadcaller.media.outcomes import NOT_FAILED, TurnOutcome

MAX_PERSONAS: Final = 50


class _Totals:
    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()
        self.turn_outcomes: Counter[str] = Counter()
        self.latency = Histogram()


class PersonaTotals:
    """Per-persona counts; empty (and left out of the summary) without personas."""

    def __init__(self) -> None:
        self.by_name: dict[str, _Totals] = {}

    def add(self, rec: CallRecord) -> None:
        """Count one finished call of a persona (calls without one are not counted)."""
        if not rec.persona:
            return
        name = rec.persona if (rec.persona in self.by_name
                               or len(self.by_name) < MAX_PERSONAS) else "(other)"
        totals = self.by_name.setdefault(name, _Totals())
        totals.outcomes[rec.outcome] += 1
        for turn in rec.turns:
            totals.turn_outcomes[turn.outcome] += 1
            if turn.latency_ns is not None:
                totals.latency.record_ns(turn.latency_ns)

    def summary(self) -> dict[str, Any]:
        """``{name: {calls, failed, outcomes, turns, answered, latency_ms}}``."""
        return {name: {"calls": sum(t.outcomes.values()),
                       "failed": sum(n for o, n in t.outcomes.items() if o not in NOT_FAILED),
                       "outcomes": dict(t.outcomes),
                       "turns": sum(t.turn_outcomes.values()),
                       "answered": t.turn_outcomes.get(TurnOutcome.ANSWERED, 0),
                       "latency_ms": t.latency.summary_ms()}
                for name, t in sorted(self.by_name.items())}
