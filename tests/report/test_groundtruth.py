"""The measurement check against the agent's ground truth: absolute differences and bias."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadcaller.report.groundtruth import (
    MAX_MEAN_BIAS_MS,
    check_lines,
    compare,
    out_of_bounds,
)


def _files(tmp_path: Path, diffs_ms: list[float]) -> tuple[Path, Path]:
    """turns.jsonl and the agent's log for turns whose caller latency is truth + diff."""
    turns, truth = tmp_path / "turns.jsonl", tmp_path / "agent_turns.jsonl"
    with turns.open("w") as t, truth.open("w") as g:
        for i, diff in enumerate(diffs_ms):
            sid, agent_ms = f"CA{i // 3:032d}", 800.0 + 37 * i
            g.write(json.dumps({"call_sid": sid, "turn": i % 3, "latency_ms": agent_ms,
                                "t_last_speech_recv": 5.0 * i + 0.001}) + "\n")
            t.write(json.dumps({"remote_id": sid, "turn": i % 3, "outcome": "answered",
                                "overlap": False, "latency_ms": agent_ms + diff,
                                "t_speech_end": 5.0 * i}) + "\n")
        g.write(json.dumps({"call_sid": "CA0", "turn": "greeting"}) + "\n")  # not a turn
        t.write(json.dumps({"remote_id": "CA9", "turn": 0, "outcome": "no_response",
                            "overlap": False, "latency_ms": None}) + "\n")
    return turns, truth


def test_loopback_transit_is_within_bounds(tmp_path):
    cmp = compare(*_files(tmp_path, [0.4, 1.9, 1.1, 0.7, 1.3, 2.2, 0.9, 1.0, 1.6]))
    assert cmp["matched"] == 9
    assert cmp["mean_diff_ms"] == pytest.approx(1.233, abs=1e-3)
    assert out_of_bounds(cmp) == []
    lines, passed = check_lines(cmp)
    assert passed
    assert "9 turns" in lines[0] and "mean bias +1.23 ms" in lines[0]


@pytest.mark.parametrize("bias", [4.0, -4.0])
def test_a_systematic_offset_fails_on_bias_alone(tmp_path, bias):
    # every turn off by 4 ms, give or take: medians of |diff| stay inside their bounds
    diffs = [bias + d for d in (-0.5, 0.2, 0.0, 0.4, -0.3, 0.1)]
    cmp = compare(*_files(tmp_path, diffs))
    assert cmp["median_abs_diff_ms"] <= 5.0 and cmp["p95_abs_diff_ms"] <= 20.0
    assert abs(cmp["mean_diff_ms"]) > MAX_MEAN_BIAS_MS
    reasons = out_of_bounds(cmp)
    assert len(reasons) == 1 and "mean bias" in reasons[0], reasons
    lines, passed = check_lines(cmp)
    assert not passed
    assert f"mean bias {cmp['mean_diff_ms']:+.2f} ms" in lines[0]
    assert lines[-1].startswith("MEASUREMENT CHECK FAILED: mean bias")


def test_noise_that_cancels_out_still_fails_on_absolute_differences(tmp_path):
    cmp = compare(*_files(tmp_path, [8.0, -8.0, 7.0, -7.0, 6.0, -6.0]))
    assert abs(cmp["mean_diff_ms"]) <= MAX_MEAN_BIAS_MS
    assert [r.split(" ")[0] for r in out_of_bounds(cmp)] == ["median"]


def test_nothing_matched_fails(tmp_path):
    turns, truth = _files(tmp_path, [1.0])
    truth.write_text("")
    cmp = compare(turns, truth)
    assert out_of_bounds(cmp) == ["no caller turn matched a turn in the agent's log"]
    assert check_lines(cmp) == (["MEASUREMENT CHECK FAILED: no caller turn matched a turn in "
                                 "the agent's log"], False)


def test_turns_pair_by_the_instant_the_caller_stopped_not_by_number(tmp_path):
    # the agent cut in during the caller's mid-utterance pause: its turn 0 answered the
    # pause (t 10.0), its turn 1 the end of the caller's utterance 0 (t 11.5), and so on;
    # paired by number every turn would be off by one reply
    truth = [{"call_sid": "CA1", "turn": 0, "latency_ms": 600.0, "t_last_speech_recv": 10.0},
             {"call_sid": "CA1", "turn": 1, "latency_ms": 300.0, "t_last_speech_recv": 11.502},
             {"call_sid": "CA1", "turn": 2, "latency_ms": 310.0, "t_last_speech_recv": 15.001}]
    turns = [{"remote_id": "CA1", "turn": 0, "outcome": "answered", "overlap": False,
              "latency_ms": 301.0, "t_speech_end": 11.5, "agent_cut_in": True},
             {"remote_id": "CA1", "turn": 1, "outcome": "answered", "overlap": False,
              "latency_ms": 311.0, "t_speech_end": 15.0}]
    for name, rows in (("g", truth), ("t", turns)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cmp = compare(tmp_path / "t.jsonl", tmp_path / "g.jsonl")
    assert cmp["matched"] == 2 and cmp["mean_diff_ms"] == 1.0 and out_of_bounds(cmp) == []
