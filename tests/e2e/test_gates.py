"""SLO gates through real runs: printed verdicts, summary.json, JUnit, exit codes 0/1/2."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.e2e.conftest import run_cli, write_profile
from tests.peers import require_module


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"  # closed again: nothing listens


@pytest.mark.e2e
@pytest.mark.slow
async def test_a_failing_gate_exits_1_and_every_gate_is_reported(tmp_path: Path) -> None:
    require_module("junitparser", "junitparser")
    import junitparser

    out, junit = tmp_path / "demo", tmp_path / "ci" / "gates.xml"
    code, stdout, err = await run_cli(
        "demo", "--users", "4", "--duration", "16s", "--results-dir", str(out),
        "--metrics-port", "-1", "--junit", str(junit),
        "--gate", "answered_ratio >= 0.5",
        "--gate", "turn_latency_p50 > 1s during backend_latency",  # +1.2 s from the proxy
        "--gate", "turn_latency_p50 < 1ms",                         # cannot pass
        "--gate", "generator_saturated == false", timeout=180)
    assert code == 1, err
    assert "PASS  answered_ratio >= 0.5  (measured 1.0000)" in stdout
    assert "PASS  turn_latency_p50 > 1s during backend_latency  (measured " in stdout
    assert "FAIL  turn_latency_p50 < 1ms  (measured " in stdout
    assert "loadcaller: 1 of 4 SLO gates failed: turn_latency_p50 < 1ms (measured " in err
    assert "Traceback" not in err

    gates = json.loads((out / "summary.json").read_text())["gates"]
    assert [(g["gate"], g["phase"], g["passed"]) for g in gates] == [
        ("answered_ratio >= 0.5", None, True),
        ("turn_latency_p50 > 1s", "backend_latency", True),
        ("turn_latency_p50 < 1ms", None, False),
        ("generator_saturated == false", None, True)]
    slow = gates[1]
    assert (slow["metric"], slow["op"], slow["threshold"], slow["unit"]) == (
        "turn_latency_p50", ">", 1000.0, "ms")
    assert slow["value"] > 1000.0

    (suite,) = list(junitparser.JUnitXml.fromfile(str(junit)))
    assert (suite.tests, suite.failures) == (5, 1)  # four gates and the run itself
    failed = [c for c in suite if not c.is_passed]
    assert [c.name for c in failed] == ["turn_latency_p50 < 1ms"]
    assert failed[0].result[0].message.endswith("wanted < 1.0 ms")


@pytest.mark.e2e
@pytest.mark.slow
async def test_passing_gates_exit_0_and_a_dead_pushgateway_is_only_a_warning(
        tmp_path: Path) -> None:
    out, junit = tmp_path / "demo", tmp_path / "gates.xml"
    dead = _dead_url()
    code, stdout, err = await run_cli(
        "demo", "--no-chaos", "--users", "2", "--duration", "6s", "--results-dir", str(out),
        "--metrics-port", "-1", "--junit", str(junit), "--pushgateway", dead,
        "--gate", "answered_ratio >= 0.5", "--gate", "completed_ratio >= 0.5", timeout=180)
    assert code == 0, err
    assert stdout.count("PASS  ") == 2 and "FAIL  " not in stdout
    assert f"loadcaller: warning: could not push to the Pushgateway at {dead}" in err
    assert [g["passed"] for g in json.loads((out / "summary.json").read_text())["gates"]] == [
        True, True]
    assert b'failures="0"' in junit.read_bytes()


@pytest.mark.e2e
@pytest.mark.parametrize(("command", "gate", "message"), [
    ("run", "turn_latency_p95 < 1.5", "--gate 'turn_latency_p95 < 1.5': turn_latency_p95 is a "
     "latency: give a unit"),
    ("demo", "answered_ratio >= 0.9 during crm", "--gate 'answered_ratio >= 0.9 during crm': "
     "unknown phase 'crm'; phases are the chaos faults' names: none, backend_latency, "
     "schema_rename"),
])
async def test_a_bad_gate_exits_2_before_any_call(tmp_path: Path, command: str, gate: str,
                                                  message: str) -> None:
    """(A subprocess each: ``run`` and ``demo`` monkey-patch the process for gevent.)"""
    profile = write_profile(tmp_path / "p.yaml", url="ws://127.0.0.1:9/media")
    args = (str(profile),) if command == "run" else ()
    code, _, err = await run_cli(command, *args, "--gate", gate, "--metrics-port", "-1",
                                 "--results-dir", str(tmp_path / "out"), timeout=120)
    assert code == 2, err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out" / "summary.json").exists()
