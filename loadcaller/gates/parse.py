"""SLO gates: ``METRIC OP VALUE``, parsed into frozen :class:`Gate` values.

A gate is written as one string (``turn_latency_p95 < 1.5s``), or in a
profile as ``{gate: turn_latency_p95 < 2.5s, phase: backend_latency}`` to judge
only the turns measured while that chaos fault was active (``phase: none``: the
turns no fault touched). On the command line the phase follows the gate:
``--gate "turn_latency_p95 < 2.5s during backend_latency"``.

The metrics are one table, :data:`METRICS`, each with its kind:

- ``latency``: milliseconds, written with a unit (``1500ms``, ``1.5s``); a bare
  number is refused, since "1.5" could mean either;
- ``ratio``: a number from 0 to 1, or a percentage (``98%``);
- ``count``: a whole number;
- ``bool``: ``true`` or ``false``, compared with ``==`` or ``!=`` only.

Turn metrics (latencies, the answered ratio, turn counts, agent fallbacks) can
be judged per phase; call and generator metrics cannot (a call spans phases),
and asking for one is an error. Every error is a ``ValueError`` whose message
says what is accepted, so the profile loader reports it as ``file:line: field``.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from typing import Any, Final, Literal

from loadcaller.media.outcomes import CallOutcome, TurnOutcome

Kind = Literal["latency", "ratio", "count", "bool"]
Op = Literal["<", "<=", ">", ">=", "==", "!="]

OPS: Final[tuple[Op, ...]] = ("<=", ">=", "==", "!=", "<", ">")  # two-character ones first
NO_FAULT_PHASE: Final = "none"
"""The phase of turns measured while no chaos fault was active."""

PERCENTILES: Final = ("p50", "p90", "p95", "p99", "max", "mean")
LATENCY_SOURCES: Final = {"turn_latency": "turns.latency_ms",
                          "greeting_latency": "greeting_latency_ms",
                          "setup_latency": "setup_ms"}


@dataclass(frozen=True, slots=True)
class Metric:
    """One gate metric: its kind, whether a phase can narrow it, what it means."""

    name: str
    kind: Kind
    per_phase: bool
    meaning: str


def _metrics() -> dict[str, Metric]:
    out: list[Metric] = []
    for prefix, where in LATENCY_SOURCES.items():
        for stat in PERCENTILES:
            out.append(Metric(f"{prefix}_{stat}", "latency", prefix == "turn_latency",
                              f"{stat} of summary.json's {where}"))
    out += [
        Metric("answered_ratio", "ratio", True, "turns answered / turns measured"),
        Metric("completed_ratio", "ratio", False,
               "calls completed / calls finished (cancelled calls aside)"),
        Metric("turns_count", "count", True, "turns measured"),
        Metric("calls_count", "count", False, "calls finished (cancelled included)"),
        Metric("calls_failed_count", "count", False, "calls that failed, any outcome"),
        Metric("agent_fallbacks", "count", True,
               "fallback replies the agent reports (the reference agent, in the demo)"),
        Metric("generator_saturated", "bool", False,
               "the generator itself fell behind (write: generator_saturated == false)"),
    ]
    out += [Metric(f"turn_{o}_count", "count", True, f"turns with outcome {o}")
            for o in TurnOutcome]
    out += [Metric(f"call_{o}_count", "count", False, f"calls with outcome {o}")
            for o in CallOutcome]
    return {m.name: m for m in out}


METRICS: Final[dict[str, Metric]] = _metrics()

UNIT: Final[dict[Kind, str | None]] = {"latency": "ms", "ratio": None, "count": None,
                                       "bool": None}
"""summary.json's ``unit`` of a gate: ratios, counts and bools have none."""


@dataclass(frozen=True, slots=True)
class Gate:
    """``metric op threshold``, overall (``phase`` None) or for one chaos phase.

    ``threshold`` is in the metric's unit (:data:`UNIT`): milliseconds for
    latencies, a plain number for ratios and counts, a bool for
    ``generator_saturated``.
    """

    text: str
    metric: str
    op: Op
    threshold: float | bool
    phase: str | None = None

    @property
    def kind(self) -> Kind:
        return METRICS[self.metric].kind

    @property
    def unit(self) -> str | None:
        return UNIT[self.kind]

    @property
    def label(self) -> str:
        """The gate as a person reads it: ``turn_latency_p95 < 2.5s during backend_latency``."""
        return self.text if self.phase is None else f"{self.text} during {self.phase}"


_GATE_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|==|!=|<|>|=)\s*(\S+)\s*$")
_DURING_RE = re.compile(r"^(.*?)\s+during\s+(\S+)\s*$")
_NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def _unknown_metric(name: str) -> str:
    near = difflib.get_close_matches(name, METRICS, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(near)}?" if near else ""
    return (f"unknown gate metric {name!r}{hint} Metrics: turn_/greeting_/setup_latency_"
            f"{{{','.join(PERCENTILES)}}}, answered_ratio, completed_ratio, turn_<outcome>_count, "
            "call_<outcome>_count, turns_count, calls_count, calls_failed_count, "
            "agent_fallbacks, generator_saturated (docs/profiles.md, gates)")


def _threshold(metric: Metric, op: str, raw: str) -> float | bool:
    if metric.kind == "bool":
        if raw.lower() not in ("true", "false"):
            raise ValueError(f"{metric.name} is true or false, not {raw!r}")
        if op not in ("==", "!="):
            raise ValueError(f"{metric.name} is true or false: compare it with == or !=")
        return raw.lower() == "true"
    m = _NUMBER_RE.match(raw)
    if m is None:
        raise ValueError(f"{raw!r} is not a number")
    number, unit = float(m.group(0)), raw[m.end():]
    if not math.isfinite(number):
        raise ValueError(f"{raw!r} is not a finite number")
    if metric.kind == "latency":
        if unit not in ("ms", "s"):
            raise ValueError(f"{metric.name} is a latency: give a unit, e.g. 1500ms or 1.5s "
                             f"(not {raw!r})")
        if number < 0:
            raise ValueError(f"a latency is not negative ({raw!r})")
        return number * 1000.0 if unit == "s" else number
    if metric.kind == "ratio":
        if unit == "%":
            number /= 100.0
        elif unit:
            raise ValueError(f"{metric.name} is a ratio: 0.98 or 98%, not {raw!r}")
        if not 0.0 <= number <= 1.0:
            raise ValueError(f"{metric.name} is a ratio between 0 and 1 (or 0% and 100%), "
                             f"not {raw!r}")
        return number
    if unit or number != int(number) or number < 0:
        raise ValueError(f"{metric.name} is a count: a whole number like 3, not {raw!r}")
    return int(number)


def parse_gate(text: str, phase: str | None = None) -> Gate:
    """Parse ``METRIC OP VALUE`` (optionally ``... during PHASE``); raise ValueError."""
    if not isinstance(text, str):
        raise ValueError("a gate is a string like 'turn_latency_p95 < 1.5s'")
    during = _DURING_RE.match(text)
    if during is not None:
        if phase is not None:
            raise ValueError("give the phase once: 'during PHASE' or phase:, not both")
        text, phase = during.group(1), during.group(2)
    m = _GATE_RE.match(text)
    if m is None:
        raise ValueError(f"{text.strip()!r} is not a gate: write METRIC OP VALUE, e.g. "
                         "'turn_latency_p95 < 1.5s' (ops: < <= > >= == !=)")
    name, op, raw = m.groups()
    if op == "=":
        raise ValueError("'=' is not a gate operator; use == (ops: < <= > >= == !=)")
    metric = METRICS.get(name)
    if metric is None:
        raise ValueError(_unknown_metric(name))
    if phase is not None:
        if not re.fullmatch(r"[A-Za-z0-9_.:+-]{1,200}", phase):
            raise ValueError(f"{phase!r} is not a phase name (a chaos fault's name, or none)")
        if not metric.per_phase:
            raise ValueError(f"{name} is not measured per phase (a call spans phases); "
                             "phase gates take turn metrics: turn_latency_*, answered_ratio, "
                             "turn_<outcome>_count, turns_count, agent_fallbacks")
    threshold = _threshold(metric, op, raw)
    return Gate(text=f"{name} {op} {raw}", metric=name, op=op,  # type: ignore[arg-type]
                threshold=threshold, phase=phase)


def gate_from_yaml(value: Any) -> Gate:
    """A profile's ``gates:`` item: a string, or ``{gate: STRING, phase: NAME}``."""
    if isinstance(value, Gate):
        return value
    if isinstance(value, dict):
        extra = set(value) - {"gate", "phase"}
        if extra or "gate" not in value:
            unknown = f"; unknown keys: {', '.join(sorted(map(str, extra)))}" if extra else ""
            raise ValueError("a gate is 'METRIC OP VALUE' or {gate: 'METRIC OP VALUE', "
                             f"phase: FAULT_NAME}}{unknown}")
        phase = value.get("phase")
        if phase is not None and not isinstance(phase, str):
            raise ValueError("phase is a chaos fault's name (or none)")
        return parse_gate(value["gate"], phase)
    if isinstance(value, str):
        return parse_gate(value)
    raise ValueError("a gate is 'METRIC OP VALUE', e.g. 'turn_latency_p95 < 1.5s', or "
                     "{gate: ..., phase: FAULT_NAME}")


_STRING_SCHEMA: Final = {
    "type": "string", "description": "METRIC OP VALUE, e.g. turn_latency_p95 < 1.5s",
    "pattern": r"^\s*[A-Za-z_][A-Za-z0-9_]*\s*(<=|>=|==|!=|<|>)\s*\S+(\s+during\s+\S+)?\s*$"}
GATE_JSON_SCHEMA: Final[dict[str, Any]] = {"anyOf": [
    _STRING_SCHEMA,
    {"type": "object", "additionalProperties": False, "required": ["gate"],
     "properties": {"gate": _STRING_SCHEMA,
                    "phase": {"type": "string", "description": "a chaos fault's name, or none"}}},
]}
"""JSON Schema of one ``gates:`` item (validation itself checks the metric and value)."""


def fault_names(chaos: dict[str, Any] | None) -> list[str]:
    """The names a chaos section's faults tag turns with (as chaos.config names them)."""
    names: list[str] = []
    faults = (chaos or {}).get("faults") or []
    for i, f in enumerate(faults if isinstance(faults, list) else []):
        if isinstance(f, dict):
            names.append(str(f.get("name") or f"{f.get('type')}-{i}"))
    return names


def phase_problem(gate: Gate, faults: list[str]) -> str | None:
    """Why ``gate``'s phase names no phase of this run, or None."""
    if gate.phase is None or gate.phase == NO_FAULT_PHASE or gate.phase in faults:
        return None
    known = ", ".join([NO_FAULT_PHASE, *faults])
    if not faults:
        return f"phase {gate.phase!r}: this profile has no chaos faults (phases: {known})"
    return f"unknown phase {gate.phase!r}; phases are the chaos faults' names: {known}"


def cli_gates(texts: list[str] | None, faults: list[str]) -> tuple[Gate, ...]:
    """``--gate`` options, checked as a profile's gates are; ValueError names the option."""
    out = []
    for text in texts or ():
        try:
            gate = parse_gate(text)
        except ValueError as exc:
            raise ValueError(f"--gate {text!r}: {exc}") from None
        problem = phase_problem(gate, faults)
        if problem is not None:
            raise ValueError(f"--gate {text!r}: {problem}")
        out.append(gate)
    return tuple(out)
