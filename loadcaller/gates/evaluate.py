"""Judge gates on a finished run: summary.json's figures, turns.jsonl for phases.

Overall gates read the summary, so a gate's value is the figure the console
table and summary.json show (HdrHistogram percentiles). A phase gate needs the
turns measured while one fault was active, wherever in the run that was: a
fault active twice, or together with another, spans several of summary.json's
``phases``, whose percentiles cannot be merged. So phase gates read
turns.jsonl (each turn lists its faults) into the same kind of histogram.

A gate whose metric has no data (a ratio or percentile of no turns or calls,
no agent fallback figures, a phase gate without turns.jsonl) fails, with the
value ``None``, shown as "no data": a gate that nothing measured has not been
met. A count of nothing is 0, not "no data": ``turns_count == 0`` holds for a
run against a dead target.
"""

from __future__ import annotations

import json
import operator
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from loadcaller.calls.histogram import Histogram
from loadcaller.gates.parse import NO_FAULT_PHASE, PERCENTILES, Gate
from loadcaller.media.outcomes import NOT_FAILED, CallOutcome, TurnOutcome

Value = float | bool | None

_OPS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq, "!=": operator.ne}


@dataclass(frozen=True, slots=True)
class GateResult:
    """One gate's verdict: the value measured (None: no data) and whether it passed."""

    gate: Gate
    value: Value
    passed: bool

    def to_json(self) -> dict[str, Any]:
        """summary.json's ``gates`` item (the HTML report and JUnit read these keys)."""
        g = self.gate
        return {"gate": g.text, "phase": g.phase, "metric": g.metric, "op": g.op,
                "threshold": g.threshold, "unit": g.unit, "value": self.value,
                "passed": self.passed}

    def line(self) -> str:
        """``PASS turn_latency_p95 < 1.5s  (measured 1,234.5 ms)``"""
        verdict = "PASS" if self.passed else "FAIL"
        return f"{verdict}  {self.gate.label}  (measured {format_value(self.gate, self.value)})"


def format_value(gate: Gate, value: Value) -> str:
    """A gate's value (or threshold) for people: ``1,234.5 ms``, ``0.9833``, ``no data``."""
    if value is None:
        return "no data"
    if isinstance(value, bool):
        return str(value).lower()
    if gate.kind == "latency":
        return f"{value:,.1f} ms"
    if gate.kind == "ratio":
        return f"{value:.4f}"
    return f"{value:,.0f}"


def _ratio(num: float, den: float) -> float | None:
    return None if den <= 0 else round(num / den, 6)


def _latency_figures(prefix: str, lat: dict[str, Any] | None) -> dict[str, Value]:
    lat = lat or {}
    return {f"{prefix}_{stat}": lat.get(stat) for stat in PERCENTILES}


def _turn_figures(count: int, outcomes: dict[str, int], lat: dict[str, Any] | None,
                  fallbacks: int | None) -> dict[str, Value]:
    out: dict[str, Value] = _latency_figures("turn_latency", lat)
    out["answered_ratio"] = _ratio(outcomes.get(TurnOutcome.ANSWERED, 0), count)
    out["turns_count"] = count
    for o in TurnOutcome:
        out[f"turn_{o}_count"] = outcomes.get(o, 0)
    out["agent_fallbacks"] = fallbacks
    return out


def _fallbacks(phases: Iterable[dict[str, Any]], summary: dict[str, Any]) -> int | None:
    """The agent's fallback replies: summary's own figure, else its phases' sum, else None."""
    if isinstance(summary.get("agent_fallbacks"), int):
        return int(summary["agent_fallbacks"])
    counts = [ph["agent_fallbacks"] for ph in phases
              if isinstance(ph.get("agent_fallbacks"), int)]
    return sum(counts) if counts else None


def overall_figures(summary: dict[str, Any]) -> dict[str, Value]:
    """Every overall gate metric's value from a summary.json dict (None: no data)."""
    turns = summary.get("turns") or {}
    calls = summary.get("calls") or {}
    out = _turn_figures(int(turns.get("count") or 0), turns.get("outcomes") or {},
                        turns.get("latency_ms"),
                        _fallbacks(summary.get("phases") or [], summary))
    out.update(_latency_figures("greeting_latency", summary.get("greeting_latency_ms")))
    out.update(_latency_figures("setup_latency", summary.get("setup_ms")))
    finished = int(calls.get("finished") or 0)
    outcomes: dict[str, int] = calls.get("outcomes") or {}
    ended = finished - int(calls.get("cancelled") or 0)
    out["completed_ratio"] = _ratio(outcomes.get(CallOutcome.COMPLETED, 0), ended)
    out["calls_count"] = finished
    out["calls_failed_count"] = sum(n for o, n in outcomes.items() if o not in NOT_FAILED)
    for o in CallOutcome:
        out[f"call_{o}_count"] = outcomes.get(o, 0)
    saturated = (summary.get("generator") or {}).get("saturated")
    out["generator_saturated"] = saturated if isinstance(saturated, bool) else None
    return out


def read_turns(path: Path) -> Iterator[dict[str, Any]]:
    """turns.jsonl's records; a line that is not a JSON object is skipped."""
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                yield rec


def in_phase(faults: Any, phase: str) -> bool:
    """Whether a turn with ``faults`` active belongs to ``phase`` (``none``: no fault)."""
    names = faults if isinstance(faults, list) else []
    return not names if phase == NO_FAULT_PHASE else phase in names


def phase_figures(turns: Iterable[dict[str, Any]], phases: set[str],
                  summary: dict[str, Any]) -> dict[str, dict[str, Value]]:
    """Turn metrics of each phase in ``phases``, from turns.jsonl records.

    A ``silence`` step's line (dead air the caller left on purpose) is no turn, as
    in summary.json's figures: without chaos, phase ``none`` equals the overall figures.
    """
    hists = {p: Histogram() for p in phases}
    outcomes: dict[str, Counter[str]] = {p: Counter() for p in phases}
    for rec in turns:
        if rec.get("step") == "silence":
            continue
        faults = rec.get("faults")
        lat = rec.get("latency_ms")
        for p in phases:
            if not in_phase(faults, p):
                continue
            outcomes[p][str(rec.get("outcome"))] += 1
            if isinstance(lat, int | float) and not isinstance(lat, bool) and lat >= 0:
                hists[p].record_ns(int(lat * 1_000_000))
    out = {}
    for p in phases:
        summ_phases = [ph for ph in summary.get("phases") or [] if in_phase(ph.get("faults"), p)]
        out[p] = _turn_figures(sum(outcomes[p].values()), dict(outcomes[p]),
                               hists[p].summary_ms(), _fallbacks(summ_phases, {}))
    return out


def evaluate(gates: Iterable[Gate], summary: dict[str, Any],
             turns_path: Path | None = None) -> list[GateResult]:
    """Judge each gate; phase gates read ``turns_path`` (no file: no data)."""
    gates = list(gates)
    overall = overall_figures(summary)
    phases = {g.phase for g in gates if g.phase is not None}
    by_phase: dict[str, dict[str, Value]] = {}
    if phases and turns_path is not None and turns_path.is_file():
        by_phase = phase_figures(read_turns(turns_path), phases, summary)
    results = []
    for g in gates:
        figures = overall if g.phase is None else by_phase.get(g.phase, {})
        value = figures.get(g.metric)
        passed = value is not None and _OPS[g.op](value, g.threshold)
        results.append(GateResult(g, value, passed))
    return results


def gates_failed(results: Iterable[GateResult]) -> list[GateResult]:
    return [r for r in results if not r.passed]
