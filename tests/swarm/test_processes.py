"""--processes 2: one results directory and one /metrics, nothing lost or doubled."""

from __future__ import annotations

import signal

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


def test_two_processes_master_counts_equal_the_workers_sums(tmp_path, agent: Agent):
    profile = write_profile(tmp_path / "p.yaml", url=agent.url, users=4, duration="6s")
    run = start_run(profile, tmp_path / "r", "--processes", "2", "--saturation-lag-ms", "1000",
                    "--metrics-linger", "2")
    code, _, err, final = run.finish(120)
    assert code == 0, err
    summary = run.summary()
    calls = read_jsonl(run.out_dir / "calls.jsonl")
    turns = read_jsonl(run.out_dir / "turns.jsonl")
    workers = summary["swarm"]["processes"]
    assert len(workers) == 2
    assert all(w["finished"] > 0 for w in workers.values())  # both placed calls
    # each named by the stable index its /metrics series carry as `process`
    assert sorted(w["process"] for w in workers.values()) == ["0", "1"]
    # a healthy run: no worker lost, nothing refused, every line written
    assert summary["swarm"]["workers_lost"] == []
    assert summary["swarm"]["rejected_records"] == summary["swarm"]["rejected_snapshots"] == 0
    assert summary["swarm"]["rejected_messages"] == summary["swarm"]["records_not_written"] == 0
    assert "stopped answering" not in err and "rejected" not in err
    # each worker's own counters == what the master received from it
    for w in workers.values():
        assert w["records_received"] == w["finished"] == w["started"]
    assert sum(w["finished"] for w in workers.values()) == summary["calls"]["finished"] == len(
        calls)
    assert sum(w["turns"] for w in workers.values()) == summary["turns"]["count"] == len(turns)
    assert len({c["call_id"] for c in calls}) == len(calls)  # no call counted twice
    # the master's /metrics: merged counts equal the files
    assert metric_sum(final, "loadcaller_calls_total") == len(calls)
    assert metric_sum(final, "loadcaller_turns_total") == len(turns)
    answered = sum(t["latency_ms"] is not None for t in turns)
    assert metric_sum(final, "loadcaller_turn_latency_seconds_count") == answered
    assert final["loadcaller_workers"] == 2


def test_ctrl_c_on_two_processes_hangs_up_every_call_and_loses_none(tmp_path, agent: Agent):
    profile = write_profile(tmp_path / "p.yaml", url=agent.url, users=4, duration="60s",
                            turns=3)
    run = start_run(profile, tmp_path / "r", "--processes", "2", "--saturation-lag-ms", "1000")
    wait_until(lambda: metric_sum(parse_metrics(http_get(run.metrics_url)),
                                  "loadcaller_calls_total") >= 2,
               90, "a few finished calls")
    run.signal(signal.SIGINT)
    code, _, err = run.wait()
    assert code == 130, err
    summary = run.summary()
    calls = read_jsonl(run.out_dir / "calls.jsonl")
    assert summary["run"]["ended_by"] == "signal"
    assert summary["calls"]["started"] == summary["calls"]["finished"] == len(calls)
    assert summary["calls"]["cancelled"] >= 1  # calls in progress were hung up
    workers = summary["swarm"]["processes"]
    assert sum(w["records_received"] for w in workers.values()) == len(calls)
