"""The command line as a user meets it: help, schema, bad profiles, the demo."""

from __future__ import annotations

import json

from .conftest import ROOT, read_jsonl, run_cli


async def test_bad_profile_names_file_line_and_field_and_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: x\n"
        "load:\n"
        "  users: many\n"
        "scenarios:\n"
        "  - name: s\n"
        "    steps:\n"
        "      - say: {text: hi, phrase: yes}\n"
        "      - wait_for_agnt\n"
    )
    code, _out, err = await run_cli("run", str(bad))
    assert code == 2
    assert "Traceback" not in err
    assert f"{bad}:3: load.users:" in err
    assert f"{bad}:7: scenarios[0].steps[0].say:" in err and "exactly one of" in err
    assert f"{bad}:8: scenarios[0].steps[1]: a step is one of" in err


async def test_yaml_syntax_error_and_missing_file_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("scenarios: [\n")
    code, _, err = await run_cli("run", str(bad))
    assert code == 2 and "YAML syntax error" in err and "Traceback" not in err
    code, _, err = await run_cli("run", str(tmp_path / "nope.yaml"))
    assert code == 2 and "cannot read the profile" in err


async def test_schema_is_json_schema_of_the_profile():
    code, out, _ = await run_cli("schema")
    assert code == 0
    schema = json.loads(out)
    assert {"target", "load", "scenarios"} <= set(schema["properties"])


async def test_shipped_smoke_profile_validates(tmp_path):
    # --duration 0s: validate and compile (synthesis included), place no call
    code, _, err = await run_cli("run", str(ROOT / "profiles" / "smoke.yaml"), "--target",
                                 "ws://127.0.0.1:9/x", "--duration", "0s", "--results-dir",
                                 str(tmp_path / "r"), "--progress-every", "0", timeout=120)
    assert code == 0, err


async def test_demo_runs_end_to_end_and_checks_itself(tmp_path):
    out = tmp_path / "demo"
    code, stdout, err = await run_cli("demo", "--users", "4", "--duration", "16s",
                                      "--results-dir", str(out), timeout=180)
    assert code == 0, err
    assert "turn latency" in stdout and "measurement check" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["calls"]["started"] >= 4
    assert summary["calls"]["failed"] == 0
    assert summary["turns"]["answered"] == summary["turns"]["count"] >= 12
    for key in ("p50", "p95", "p99", "max"):
        assert summary["turns"]["latency_ms"][key] > 500  # end-of-turn wait + think time
    assert summary["greeting_latency_ms"]["count"] >= 4
    assert set(summary["generator"]["media_clock_lag_ms"]) >= {"p50", "p99"}
    assert isinstance(summary["generator"]["saturated"], bool)
    gt = summary["ground_truth"]
    assert gt["median_abs_diff_ms"] <= 5.0 and abs(gt["mean_diff_ms"]) <= 3.0, gt
    assert gt["out_of_bounds"] == [] and "mean bias" in stdout and "FAILED" not in stdout
    turns = read_jsonl(out / "turns.jsonl")
    assert len(turns) == summary["turns"]["count"]
    # the backend sat behind the chaos proxy; its faults show per turn and per phase
    assert any(t["faults"] for t in turns)
    assert "chaos phase" in stdout and len(summary["phases"]) >= 2
    # each fault of the timeline is one stretch: turns that ended speaking before a fault
    # began and heard their reply in it do not split the calm before it
    faulty = [tuple(p["faults"]) for p in summary["phases"] if p["faults"]]
    assert len(faulty) == len(set(faulty)), summary["phases"]
    assert all(t["t_reply_onset"] > t["t_speech_end"] for t in turns)
