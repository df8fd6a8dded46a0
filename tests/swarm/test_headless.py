"""A headless Locust run: results directory, summary, live /metrics, saturation."""

from __future__ import annotations

import os

from loadcaller.metrics import (
    CALL_SETUP,
    GREETING_LATENCY,
    LATENCY_BUCKETS,
    SETUP_BUCKETS,
    TURN_LATENCY,
)

from .conftest import (
    Agent,
    http_get,
    metric_sum,
    parse_metrics,
    read_jsonl,
    start_run,
    wait_until,
    write_profile,
)
from .exposition import assert_series_match, scraped_histograms, values_by_series

TRUSTING = ("--saturation-lag-ms", "1000")  # this machine's load is not under test here


def test_headless_run_writes_results_and_serves_live_metrics(tmp_path, agent: Agent):
    profile = write_profile(tmp_path / "p.yaml", url=agent.url, users=3, duration="6s")
    run = start_run(profile, tmp_path / "r", *TRUSTING, "--metrics-linger", "2",
                    "--csv", str(tmp_path / "locust" / "run"), "--html",
                    str(tmp_path / "locust" / "report.html"))
    live: dict[str, float] = {}
    active_seen: list[float] = []

    def calls_measured() -> bool:
        live.update(parse_metrics(http_get(run.metrics_url)))
        active_seen.append(live["loadcaller_active_calls"])
        return (metric_sum(live, "loadcaller_turn_latency_seconds_count") > 0
                and max(active_seen) > 0)

    wait_until(calls_measured, 60, "/metrics to show measured turns and calls in progress")
    assert 0 < max(active_seen) <= 3, active_seen  # calls in progress, never more than users
    assert "loadcaller_media_clock_lag_seconds_count" in live
    assert any(k.startswith('loadcaller_turn_latency_seconds_bucket{le="0.05",scenario="quick"')
               for k in live)
    code, out, err, final = run.finish(90)
    assert code == 0, err
    assert "Traceback" not in err
    assert "[" in err and "active" in err  # progress lines
    assert "turn latency" in out  # the end-of-run table

    summary = run.summary()
    calls = read_jsonl(run.out_dir / "calls.jsonl")
    turns = read_jsonl(run.out_dir / "turns.jsonl")
    assert summary["run"]["driver"] == "locust"
    assert summary["run"]["ended_by"] == "duration"
    assert summary["calls"]["finished"] == len(calls) == summary["calls"]["started"]
    assert summary["calls"]["completed"] >= 3
    assert summary["turns"]["count"] == len(turns) >= 3
    assert summary["turns"]["latency_ms"]["count"] == sum(t["latency_ms"] is not None
                                                           for t in turns)
    assert summary["generator"]["saturated"] is False
    host = summary["generator"]["host_cpu"]  # this machine's CPUs, the agent's use included
    assert host["cpus"] == os.cpu_count() and 0 < host["busy_mean"] <= host["busy_peak"] <= 1
    assert "this machine: CPUs busy mean" in out
    assert {"event_loop_lag_ms", "gevent_hub_lag_ms", "bridge_handoff_ms"} <= set(
        summary["generator"])
    # the final scrape agrees with the files
    assert metric_sum(final, "loadcaller_turns_total") == len(turns)
    assert metric_sum(final, "loadcaller_calls_total") == len(calls)
    assert metric_sum(final, "loadcaller_turn_latency_seconds_count") == (
        summary["turns"]["latency_ms"]["count"])
    assert final["loadcaller_generator_saturated"] == 0.0
    assert final["loadcaller_active_calls"] == 0.0  # every call ended before the summary
    # every latency histogram says, bucket by bucket and in its _sum, what the files say
    for name, rows, field, labels in (
            (TURN_LATENCY, turns, "latency_ms", {"scenario": "scenario",
                                                 "transport": "transport", "turn": "turn"}),
            (GREETING_LATENCY, calls, "greeting_ms", {"scenario": "scenario",
                                                      "transport": "transport"}),
            (CALL_SETUP, calls, "setup_ms", {"transport": "transport"})):
        values = values_by_series(rows, field, labels)
        assert values, name
        bounds = SETUP_BUCKETS if name == CALL_SETUP else LATENCY_BUCKETS
        assert_series_match(scraped_histograms(run.final_text, name), values, bounds,
                            whole_us=False)
    # Locust's own reports list calls and turns as request types
    stats_csv = (tmp_path / "locust" / "run_stats.csv").read_text()
    assert "CALL,quick," in stats_csv and "TURN,quick turn 0," in stats_csv
    assert "quick turn 0" in (tmp_path / "locust" / "report.html").read_text()


def test_saturation_is_reported_everywhere(tmp_path, agent: Agent):
    profile = write_profile(tmp_path / "p.yaml", url=agent.url, users=2, duration="3s")
    # a threshold no media clock can meet: the run must call itself untrustworthy
    run = start_run(profile, tmp_path / "r", "--saturation-lag-ms", "0.0001",
                    "--metrics-linger", "2")
    code, out, err, scraped = run.finish(90)
    assert code == 3, err
    assert "THE GENERATOR WAS SATURATED" in out
    assert "GENERATOR SATURATED" in err  # progress lines say it while it happens
    gen = run.summary()["generator"]
    assert gen["saturated"] is True
    assert any("media clock lag p99" in r for r in gen["saturation_reasons"])
    assert scraped["loadcaller_generator_saturated"] == 1.0


def test_turns_greeting_and_setup_reach_metrics_while_their_call_is_in_progress(
        tmp_path, agent: Agent):
    profile = write_profile(tmp_path / "p.yaml", url=agent.url, users=1, duration="60s",
                            turns=3)
    run = start_run(profile, tmp_path / "r", *TRUSTING)
    seen: dict[str, float] = {}

    def turn_before_any_call_ended() -> bool:
        samples = parse_metrics(http_get(run.metrics_url))
        if any(metric_sum(samples, f"{name}_count") < 1
               for name in (TURN_LATENCY, GREETING_LATENCY, CALL_SETUP)):
            return False
        seen.update(samples)
        return True

    try:
        wait_until(turn_before_any_call_ended, 60, "a turn, greeting and set-up on /metrics")
    finally:
        run.signal()
    assert metric_sum(seen, "loadcaller_calls_total") == 0  # the call was still going on
    code, _, err = run.wait()
    assert code == 130, err
    turns = read_jsonl(run.out_dir / "turns.jsonl")
    assert len(turns) >= 1  # and the file has the turn too, counted once
