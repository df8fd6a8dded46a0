"""The gate language: every metric, operator and unit; errors a person can act on."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadcaller.errors import ProfileError
from loadcaller.gates.parse import METRICS, OPS, cli_gates, parse_gate
from loadcaller.media.outcomes import CallOutcome, TurnOutcome
from loadcaller.profile import parse_profile

S = "scenarios: [{name: a, steps: [wait_for_agent, hangup]}]\n"
CHAOS = """chaos:
  routes: [{name: crm, kind: http, listen: "127.0.0.1:0", upstream: "http://127.0.0.1:1"}]
  faults:
    - {name: crm-slow, type: latency, route: crm, delay: 1s}
    - {type: latency, route: crm, delay: 2s}
"""


def _value(kind: str) -> str:
    return {"latency": "1.5s", "ratio": "0.5", "count": "3", "bool": "false"}[kind]


@pytest.mark.parametrize("name", sorted(METRICS))
def test_every_metric_parses_with_a_value_of_its_kind(name: str) -> None:
    kind = METRICS[name].kind
    op = "==" if kind == "bool" else "<="
    gate = parse_gate(f"{name} {op} {_value(kind)}")
    assert (gate.metric, gate.op, gate.phase) == (name, op, None)
    assert gate.threshold == {"latency": 1500.0, "ratio": 0.5, "count": 3, "bool": False}[kind]


def test_the_metric_table_names_every_outcome_and_percentile() -> None:
    for o in TurnOutcome:
        assert METRICS[f"turn_{o}_count"].per_phase
    for o in CallOutcome:
        assert not METRICS[f"call_{o}_count"].per_phase
    for prefix in ("turn_latency", "greeting_latency", "setup_latency"):
        for stat in ("p50", "p90", "p95", "p99", "max"):
            assert METRICS[f"{prefix}_{stat}"].kind == "latency"


@pytest.mark.parametrize("op", OPS)
def test_every_operator(op: str) -> None:
    assert parse_gate(f"turn_latency_p95{op}200ms").op == op  # spaces are optional


@pytest.mark.parametrize(("text", "threshold"), [
    ("turn_latency_p95 < 1.5s", 1500.0), ("turn_latency_p95 < 1500ms", 1500.0),
    ("setup_latency_max <= 250.5ms", 250.5), ("greeting_latency_p90 < .5s", 500.0),
    ("answered_ratio >= 0.98", 0.98), ("answered_ratio >= 98%", 0.98),
    ("completed_ratio > 1", 1.0), ("turn_no_response_count <= 3", 3),
    ("agent_fallbacks == 0", 0), ("generator_saturated == false", False),
    ("generator_saturated != TRUE", True),
])
def test_units_and_values(text: str, threshold: float | bool) -> None:
    assert parse_gate(text).threshold == pytest.approx(threshold)


def test_a_phase_follows_during_or_comes_as_an_argument() -> None:
    assert parse_gate("turn_latency_p95 < 2.5s during crm-slow").phase == "crm-slow"
    g = parse_gate("turn_latency_p95 < 2.5s", phase="none")
    assert (g.phase, g.label) == ("none", "turn_latency_p95 < 2.5s during none")


@pytest.mark.parametrize(("text", "message"), [
    ("turn_latency_p95 < 1.5", "give a unit, e.g. 1500ms or 1.5s"),
    ("turn_latency_p95 < 1.5min", "give a unit"),
    ("turn_latency_p95 < -1s", "not negative"),
    ("turn_latency_p95 < fast", "'fast' is not a number"),
    ("turn_latency_p95 = 1s", "use =="),
    ("turn_latency_p95 =< 1s", "is not a gate"),
    ("turn_latency_p95", "is not a gate: write METRIC OP VALUE"),
    ("turn_latency_p97 < 1s", "unknown gate metric 'turn_latency_p97'; did you mean"),
    ("no_response_count <= 3", "did you mean turn_no_response_count or "
     "call_no_response_count"),
    ("answered_ratio >= 1.5", "a ratio between 0 and 1"),
    ("answered_ratio >= 0.9s", "0.98 or 98%"),
    ("turn_no_response_count <= 2.5", "a whole number"),
    ("generator_saturated < true", "compare it with == or !="),
    ("generator_saturated == no", "true or false"),
    ("completed_ratio > 0.9 during crm", "not measured per phase"),
    ("generator_saturated == false during crm", "not measured per phase"),
])
def test_bad_gates_say_what_is_accepted(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=None) as info:
        parse_gate(text)
    assert message in str(info.value)


def test_profile_gates_all_forms_and_phases_named_by_faults() -> None:
    p = parse_profile(S + CHAOS + """gates:
  - turn_latency_p95 < 1.5s
  - {gate: answered_ratio >= 0.9, phase: crm-slow}
  - {gate: turn_latency_p99 < 3s, phase: latency-1}
  - turn_latency_p50 < 1s during none
""", "p.yaml")
    assert [(g.metric, g.phase) for g in p.gates] == [
        ("turn_latency_p95", None), ("answered_ratio", "crm-slow"),
        ("turn_latency_p99", "latency-1"), ("turn_latency_p50", "none")]


@pytest.mark.parametrize(("gates", "expected"), [
    ("  - turn_latency_p95 < 1.5\n", "p.yaml:8: gates[0]: Value error, turn_latency_p95 is a "
     "latency: give a unit"),
    ("  - turn_latency_p95 < 1s\n  - bogus > 1\n", "p.yaml:9: gates[1]: Value error, unknown "
     "gate metric 'bogus'"),
    ("  - {gate: turn_latency_p95 < 1s, phase: crm-fast}\n", "p.yaml:8: gates[0].phase: "
     "unknown phase 'crm-fast'; phases are the chaos faults' names: none, crm-slow, latency-1"),
    ("  - {gate: turn_latency_p95 < 1s, phase: crm-slow, when: now}\n",
     "p.yaml:8: gates[0]: Value error, a gate is 'METRIC OP VALUE' or {gate: 'METRIC OP "
     "VALUE', phase: FAULT_NAME}; unknown keys: when"),
    ("  - 42\n", "p.yaml:8: gates[0]: Value error, a gate is 'METRIC OP VALUE'"),
    ("  turn_latency_p95 < 1s\n", "p.yaml:8: gates: Input should be a valid list"),
])
def test_profile_errors_name_file_line_and_field(gates: str, expected: str) -> None:
    with pytest.raises(ProfileError) as info:
        parse_profile(S + CHAOS + "gates:\n" + gates, "p.yaml")
    assert expected in str(info.value)


def test_a_phase_gate_without_chaos_says_there_is_no_fault() -> None:
    with pytest.raises(ProfileError, match=r"p.yaml:3: gates\[0\].phase: phase 'crm': this "
                       r"profile has no chaos faults \(phases: none\)"):
        parse_profile(S + "gates:\n  - {gate: turn_latency_p95 < 1s, phase: crm}\n", "p.yaml")


def test_command_line_gates_are_checked_the_same_way() -> None:
    assert [g.text for g in cli_gates(["answered_ratio>=0.9"], [])] == ["answered_ratio >= 0.9"]
    with pytest.raises(ValueError, match=r"--gate 'turn_latency_p95 < 1': turn_latency_p95 "
                       "is a latency"):
        cli_gates(["turn_latency_p95 < 1"], [])
    with pytest.raises(ValueError, match=r"--gate .*unknown phase 'x'; phases .*: none, a"):
        cli_gates(["turn_latency_p95 < 1s during x"], ["a"])


def test_the_profile_json_schema_accepts_the_gate_forms_and_refuses_others() -> None:
    import jsonschema

    from loadcaller.profile import profile_json_schema

    validator = jsonschema.Draft202012Validator(profile_json_schema())
    base = {"scenarios": [{"name": "a", "steps": ["hangup"]}]}
    good = ["turn_latency_p95 < 1.5s", "answered_ratio>=98%",
            "turn_latency_p95 < 2.5s during crm-slow",
            {"gate": "turn_latency_p95 < 2.5s", "phase": "crm-slow"}]
    assert list(validator.iter_errors({**base, "gates": good})) == []
    for bad in (42, "turn_latency_p95", {"gate": "answered_ratio > 0.5", "when": "now"},
                {"phase": "crm"}):
        assert list(validator.iter_errors({**base, "gates": [bad]})), bad


def test_validate_reports_a_bad_gate_as_file_line_field(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from loadcaller.cli import main

    path = tmp_path / "p.yaml"
    path.write_text(S + "gates:\n  - turn_latency_p95 < 1.5s\n  - turn_latency_p95 =< 1s\n")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:4: gates[1]: Value error, 'turn_latency_p95 =< 1s' is not a gate" in err
    assert "Traceback" not in err
