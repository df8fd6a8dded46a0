"""Gates judged on a summary.json dict and turns.jsonl, as a run's end does."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from loadcaller.calls.histogram import Histogram
from loadcaller.gates.evaluate import evaluate, overall_figures
from loadcaller.gates.junit import junit_xml
from loadcaller.gates.parse import METRICS, parse_gate
from loadcaller.gates.verdict import judge_gates, print_gates


def _lat(values_ms: list[float]) -> dict[str, Any]:
    h = Histogram()
    for v in values_ms:
        h.record_ns(int(v * 1_000_000))
    return h.summary_ms()


def summary(**over: Any) -> dict[str, Any]:
    s: dict[str, Any] = {
        "run": {"name": "nightly", "elapsed_s": 31.5, "target": "ws://127.0.0.1:1/media"},
        "calls": {"started": 11, "finished": 11, "connected": 10, "completed": 8, "failed": 2,
                  "cancelled": 1, "outcomes": {"completed": 8, "failed_setup": 1,
                                               "no_response": 1, "cancelled": 1}},
        "turns": {"count": 40, "answered": 37, "latency_ms": _lat([800.0] * 30 + [1600.0] * 7),
                  "outcomes": {"answered": 37, "no_response": 3}},
        "phases": [{"faults": ["crm-slow"], "agent_fallbacks": 2},
                   {"faults": [], "agent_fallbacks": 1}],
        "greeting_latency_ms": _lat([200.0] * 10),
        "setup_ms": _lat([12.0] * 10),
        "generator": {"saturated": False},
    }
    s.update(over)
    return s


def test_overall_figures_come_from_the_summary() -> None:
    f = overall_figures(summary())
    assert set(f) == set(METRICS)
    assert f["turn_latency_p50"] == pytest.approx(800, rel=0.002)
    assert f["turn_latency_p90"] == pytest.approx(1600, rel=0.002)
    assert f["greeting_latency_p95"] == pytest.approx(200, rel=0.002)
    assert f["setup_latency_max"] == pytest.approx(12, rel=0.002)
    assert f["answered_ratio"] == pytest.approx(37 / 40)
    assert f["completed_ratio"] == pytest.approx(8 / 10)  # the cancelled call aside
    assert (f["turn_no_response_count"], f["turn_dropped_count"]) == (3, 0)
    assert (f["call_failed_setup_count"], f["calls_failed_count"], f["calls_count"]) == (1, 2, 11)
    assert f["agent_fallbacks"] == 3
    assert f["generator_saturated"] is False


@pytest.mark.parametrize(("text", "passed"), [
    ("turn_latency_p50 < 1s", True), ("turn_latency_p95 < 1.5s", False),
    ("turn_latency_p95 <= 1601ms", True), ("answered_ratio >= 0.9", True),
    ("answered_ratio >= 0.95", False), ("completed_ratio == 0.8", True),
    ("turn_no_response_count <= 3", True), ("turn_no_response_count < 3", False),
    ("call_failed_setup_count != 0", True), ("agent_fallbacks > 3", False),
    ("generator_saturated == false", True), ("generator_saturated == true", False),
])
def test_each_gate_passes_or_fails_on_its_figure(text: str, passed: bool) -> None:
    (result,) = evaluate([parse_gate(text)], summary())
    assert result.passed is passed


def test_no_data_fails_and_says_so() -> None:
    empty = summary(turns={"count": 0, "answered": 0, "latency_ms": _lat([]), "outcomes": {}},
                    phases=[])
    results = evaluate([parse_gate("turn_latency_p95 < 1s"), parse_gate("answered_ratio > 0"),
                        parse_gate("agent_fallbacks == 0")], empty)
    assert [(r.value, r.passed) for r in results] == [(None, False)] * 3
    assert results[0].line() == "FAIL  turn_latency_p95 < 1s  (measured no data)"


def test_a_count_of_nothing_is_zero_not_no_data(tmp_path: Path) -> None:
    # a dead target: every call failed_setup, no turn measured
    dead = summary(turns={"count": 0, "answered": 0, "latency_ms": _lat([]), "outcomes": {}},
                   calls={"started": 5, "finished": 5, "connected": 0, "completed": 0,
                          "failed": 5, "cancelled": 0, "outcomes": {"failed_setup": 5}},
                   phases=[])
    path = _turns(tmp_path / "turns.jsonl", [])
    results = evaluate([parse_gate("turns_count == 0"), parse_gate("turn_no_response_count <= 3"),
                        parse_gate("call_completed_count == 0"),
                        parse_gate("turns_count == 0", "none"),
                        parse_gate("answered_ratio >= 0.9"),
                        parse_gate("turn_latency_p95 < 1s", "none")], dead, path)
    assert [(r.value, r.passed) for r in results] == [
        (0, True), (0, True), (0, True), (0, True), (None, False), (None, False)]
    assert results[0].line() == "PASS  turns_count == 0  (measured 0)"


def _turns(path: Path, rows: list[tuple[list[str], str, float | None]]) -> Path:
    with path.open("w") as f:
        for i, (faults, outcome, lat) in enumerate(rows):
            f.write(json.dumps({"call_id": f"c{i}", "scenario": "s", "turn": 0,
                                "outcome": outcome, "latency_ms": lat, "faults": faults}) + "\n")
        f.write('{"call_id": "cut-off-mid-wr')  # a killed run's last line
    return path


def test_phase_gates_read_turns_from_every_stretch_of_the_fault(tmp_path: Path) -> None:
    rows: list[tuple[list[str], str, float | None]] = (
        [([], "answered", 500.0)] * 20                       # none
        + [(["crm-slow"], "answered", 2000.0)] * 10          # crm-slow, first time
        + [(["crm-slow", "rename"], "no_response", None)] * 2  # both at once
        + [(["rename"], "answered", 900.0)] * 5
        + [(["crm-slow"], "answered", 3000.0)] * 10)         # crm-slow again
    path = _turns(tmp_path / "turns.jsonl", rows)
    gates = [parse_gate("turn_latency_p50 < 1s", "none"),
             parse_gate("turn_latency_max <= 3.01s", "crm-slow"),
             parse_gate("turn_latency_p95 < 2.5s", "crm-slow"),
             parse_gate("answered_ratio >= 0.9", "crm-slow"),
             parse_gate("turn_no_response_count == 2", "rename"),
             parse_gate("turns_count == 22", "crm-slow"),
             parse_gate("agent_fallbacks == 2", "crm-slow"),
             parse_gate("turn_latency_p95 < 10s", "backend_latency")]
    r = evaluate(gates, summary(), path)
    assert r[0].value == pytest.approx(500, rel=0.002) and r[0].passed
    assert r[1].value == pytest.approx(3000, rel=0.002) and r[1].passed
    assert r[2].value == pytest.approx(3000, rel=0.002) and not r[2].passed  # the 2nd stretch
    assert r[3].value == pytest.approx(20 / 22) and r[3].passed
    assert (r[4].value, r[4].passed) == (2, True)
    assert (r[5].value, r[5].passed) == (22, True)
    assert (r[6].value, r[6].passed) == (2, True)
    assert (r[7].value, r[7].passed) == (None, False)  # no turn in that phase: no data


def test_phase_gates_without_turns_jsonl_have_no_data(tmp_path: Path) -> None:
    (r,) = evaluate([parse_gate("turn_latency_p95 < 1s", "none")], summary(),
                    tmp_path / "missing.jsonl")
    assert (r.value, r.passed) == (None, False)


def test_summary_gets_the_gates_list_the_report_reads(tmp_path: Path) -> None:
    s = summary()
    judge_gates([parse_gate("turn_latency_p95 < 1.5s"),
                 parse_gate("turn_latency_p95 < 2.5s", "none")], s, tmp_path)
    first, second = s["gates"]
    assert first == {"gate": "turn_latency_p95 < 1.5s", "phase": None,
                     "metric": "turn_latency_p95", "op": "<", "threshold": 1500.0,
                     "unit": "ms", "value": first["value"], "passed": False}
    assert first["value"] == pytest.approx(1600, rel=0.002)
    assert (second["phase"], second["value"], second["passed"]) == ("none", None, False)
    json.dumps(s)  # summary.json stays JSON
    judge_gates([], s, None)
    assert s["gates"] == []


def test_printed_lines_and_the_failed_summary_line() -> None:
    results = evaluate([parse_gate("answered_ratio >= 90%"),
                        parse_gate("turn_latency_p95 < 1.5s")], summary())
    out, err = io.StringIO(), io.StringIO()
    assert print_gates(results, out, err) == 1
    assert "PASS  answered_ratio >= 90%  (measured 0.9250)" in out.getvalue()
    assert "FAIL  turn_latency_p95 < 1.5s  (measured 1,60" in out.getvalue()
    assert err.getvalue().startswith("loadcaller: 1 of 2 SLO gates failed: turn_latency_p95 "
                                     "< 1.5s (measured 1,60")


def test_junit_is_read_back_by_a_junit_consumer(tmp_path: Path) -> None:
    junitparser = pytest.importorskip("junitparser")
    results = evaluate([parse_gate("answered_ratio >= 0.9"),
                        parse_gate("turn_latency_p95 < 1.5s"),
                        parse_gate("turn_latency_p95 < 1s", "backend_latency")], summary())
    path = tmp_path / "gates.xml"
    path.write_bytes(junit_xml(results, summary(), run_problem=None))
    xml = junitparser.JUnitXml.fromfile(str(path))
    (suite,) = list(xml)
    assert (suite.tests, suite.failures, suite.errors) == (4, 2, 0)
    cases = {c.name: c for c in suite}
    assert set(cases) == {"answered_ratio >= 0.9", "turn_latency_p95 < 1.5s",
                          "turn_latency_p95 < 1s during backend_latency", "run"}
    assert cases["answered_ratio >= 0.9"].is_passed
    (failure,) = cases["turn_latency_p95 < 1.5s"].result
    assert isinstance(failure, junitparser.Failure)
    assert failure.message.startswith("turn_latency_p95 = 1,60")
    assert failure.message.endswith("wanted < 1,500.0 ms")
    (nodata,) = cases["turn_latency_p95 < 1s during backend_latency"].result
    assert nodata.message == "turn_latency_p95 = no data, wanted < 1,000.0 ms"
    assert cases["run"].is_passed and cases["run"].classname == "loadcaller.nightly"


HOSTILE = "busy: SIP 486 Occup\udce9 \x00\x01\x1b[2J ]]> <x/> \ud800 \ufffe"


def test_junit_stays_well_formed_whatever_the_agent_sent(tmp_path: Path) -> None:
    """Control characters and lone surrogates (a Latin-1 SIP reason phrase, kept by the SIP
    parser as \\udce9) in the run's failure: the file is XML that a strict parser and a
    JUnit consumer read, each byte shown as an escape."""
    junitparser = pytest.importorskip("junitparser")
    import xml.etree.ElementTree as ET

    from loadcaller.gates.verdict import publish

    s = summary(failure=f"no call connected: 1 {HOSTILE}")
    s["run"]["target"] = "sip:\x07svc@127.0.0.1"
    path = tmp_path / "junit.xml"
    publish(evaluate([parse_gate("answered_ratio >= 0.5")], s), s, code=1, junit=path,
            pushgateway=None)
    ET.parse(path)
    (suite,) = list(junitparser.JUnitXml.fromfile(str(path)))
    (failure,) = {c.name: c for c in suite}["run"].result
    assert "Occup\\xe9 \\x00\\x01\\x1b[2J ]]> <x/> \ufffd \ufffd (exit 1)" in failure.message
    assert "\\x07svc" in path.read_text(encoding="utf-8")


def test_units_in_summary_json_latency_ms_others_none() -> None:
    s = summary()
    judge_gates([parse_gate("answered_ratio >= 0.9"), parse_gate("turn_no_response_count < 9"),
                 parse_gate("generator_saturated == false")], s, None)
    assert [(g["unit"], g["threshold"], g["value"]) for g in s["gates"]] == [
        (None, 0.9, 0.925), (None, 9, 3), (None, False, False)]
    assert json.dumps(s["gates"][1]["threshold"]) == "9"


@pytest.mark.parametrize(("code", "over", "problem"), [
    (130, {}, "stopped by SIGINT"), (3, {}, "the generator saturated"),
    (5, {}, "the results are incomplete"),
    (1, {"failure": "2 of 10 calls failed (20% > --max-failed-ratio 0.1)"},
     "2 of 10 calls failed"),
    (1, {"ground_truth": {"out_of_bounds": ["median |caller - agent| 9.0 ms > 3 ms"]}},
     "the callers' numbers disagree with the agent's ground truth: median"),
    (1, {}, None),  # a failed gate alone: its own case fails, not the run's
    (7, {}, "the run exited 7")])
def test_the_junit_run_case_fails_whenever_the_exit_code_is_not_0(
        tmp_path: Path, code: int, over: dict[str, Any], problem: str | None) -> None:
    junitparser = pytest.importorskip("junitparser")
    from loadcaller.gates.verdict import publish

    s = summary(**{"failure": None, **over})
    path = tmp_path / "out" / "junit.xml"
    gates = [parse_gate("answered_ratio >= 0.5")] + (
        [parse_gate("answered_ratio >= 0.99")] if problem is None else [])
    publish(evaluate(gates, s), s, code=code, junit=path, pushgateway=None)
    (suite,) = list(junitparser.JUnitXml.fromfile(str(path)))
    cases = {c.name: c for c in suite}
    assert cases["answered_ratio >= 0.5"].is_passed
    if problem is None:
        assert cases["run"].is_passed and not cases["answered_ratio >= 0.99"].is_passed
    else:
        (failure,) = cases["run"].result
        assert failure.message.startswith(problem)
    publish(evaluate(gates[:1], s), s, code=0, junit=path, pushgateway=None)
    (suite,) = list(junitparser.JUnitXml.fromfile(str(path)))
    assert all(c.is_passed for c in suite)  # all green: exit 0


def _dead_air_run(directory: Path) -> tuple[dict[str, Any], Path]:
    """A run without chaos whose calls each answered two turns and left one dead-air gap
    the agent reprompted into, written by the real writer."""
    from loadcaller.calls.call import CallRecord
    from loadcaller.calls.measure import TurnResult
    from loadcaller.calls.results import Results

    ms, s = 1_000_000, 1_000_000_000
    results = Results(directory)
    for i in range(3):
        t0 = (100 + 20 * i) * s
        turns = [TurnResult(0, "answered", t0 + 2 * s, t0 + 2 * s + 700 * ms),
                 TurnResult(1, "reprompted", t0 + 5 * s, step="silence",
                            t_reprompt_ns=t0 + 9 * s),
                 TurnResult(2, "answered", t0 + 12 * s, t0 + 12 * s + 900 * ms)]
        results.calls_started += 1
        results.record_call(CallRecord(
            call_id=f"c{i}", transport="twilio", scenario="deadair", outcome="completed",
            reason="done", t_start_ns=t0, t_end_ns=t0 + 15 * s, setup_ns=5 * ms,
            greeting_ns=200 * ms, turns=turns))
    summ = results.summary({"saturated": False}, {"name": "deadair"})
    results.close()
    return summ, directory / "turns.jsonl"


def test_silence_steps_are_no_turns_in_a_phase_either(tmp_path: Path) -> None:
    summ, turns = _dead_air_run(tmp_path)
    assert '"step": "silence"' in turns.read_text()
    gates = [parse_gate(t, phase) for phase in (None, "none") for t in
             ("answered_ratio >= 0.99", "turns_count == 6", "turn_latency_max < 1s")]
    r = evaluate(gates, summ, turns)
    overall, none = r[:3], r[3:]
    assert [x.value for x in none] == [x.value for x in overall]  # no chaos: the same
    assert none[0].value == 1.0 and all(x.passed for x in r)
