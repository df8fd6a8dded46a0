"""Trust: the callers' per-turn latency matches the agent's own ground truth (Twilio, SIP,
WebRTC)."""

from __future__ import annotations

import statistics

import pytest

from loadcaller.report.groundtruth import (
    MAX_MEAN_BIAS_MS,
    MAX_MEDIAN_ABS_DIFF_MS,
    MAX_P95_ABS_DIFF_MS,
    compare,
    out_of_bounds,
)

from .conftest import read_jsonl, run_cli, start, write_profile


@pytest.mark.parametrize("transport", ["twilio", "sip", "webrtc"])
async def test_caller_latency_matches_agent_ground_truth_at_20_concurrent_calls(
        tmp_path, services, transport):
    backend = await start("backend", "--port", "0", "--latency", "30ms")
    services.append(backend)
    truth = tmp_path / "agent_turns.jsonl"
    agent = await start("agent", "--transport", transport, "--port", "0", "--think", "300ms",
                        "--backend-url", f"{backend.url}/v1/turn", "--ground-truth", str(truth))
    services.append(agent)
    profile = write_profile(tmp_path / "p.yaml", url=agent.url, users=20, duration="12s",
                            turns=3, turn_timeout="8s")
    out = tmp_path / "results"
    code, _, err = await run_cli("run", str(profile), "--results-dir", str(out),
                                 "--progress-every", "0")
    assert code == 0, err

    calls = read_jsonl(out / "calls.jsonl")
    turns = read_jsonl(out / "turns.jsonl")
    assert len(calls) >= 20
    assert {c["outcome"] for c in calls} == {"completed"}
    assert {c["transport"] for c in calls} == {transport}
    if transport == "sip":  # clean loopback RTP: nothing lost, and the figures say so
        assert all(c["media"]["packets_received"] > 0 and c["media"]["lost"] == 0
                   for c in calls)
    assert len(turns) == 3 * len(calls)
    assert all(t["outcome"] == "answered" for t in turns)

    cmp = compare(out / "turns.jsonl", truth)
    assert cmp["matched"] >= 0.95 * len(turns)
    assert cmp["median_abs_diff_ms"] <= MAX_MEDIAN_ABS_DIFF_MS, cmp
    assert cmp["p95_abs_diff_ms"] <= MAX_P95_ABS_DIFF_MS, cmp
    # a systematic offset (a frame early or late, a clock read in the wrong place) hides
    # under noise in absolute differences; the signed mean shows it
    assert abs(cmp["mean_diff_ms"]) <= MAX_MEAN_BIAS_MS, cmp
    assert out_of_bounds(cmp) == []  # the demo's self-check agrees
    # the agent's end-of-turn wait (500 ms of silence) and think time (300 ms) are inside
    assert statistics.median(t["latency_ms"] for t in turns) >= 800
