"""Open model: calls arrive on schedule whatever the agent does; late ones are counted."""

from __future__ import annotations

from .conftest import (
    Agent,
    metric_sum,
    start_run,
    write_profile,
)


def test_open_model_counts_calls_that_could_not_start_on_time(tmp_path, agent: Agent):
    # 4 calls/s asked of 2 callers whose calls last seconds: most starts are missed
    profile = write_profile(tmp_path / "p.yaml", url=agent.url, duration="6s",
                            load_extra="shape: {type: open, rate: 4, max_concurrency: 2}")
    run = start_run(profile, tmp_path / "r", "--saturation-lag-ms", "1000",
                    "--metrics-linger", "2")
    code, _, err, final = run.finish(90)
    assert code == 0, err
    summary = run.summary()
    om = summary["open_model"]
    assert summary["run"]["shape"] == "open"
    assert om["started"] == summary["calls"]["started"] >= 2
    assert om["missed"] >= 4  # ~24 due in 6 s, a handful placed
    assert om["scheduled"] == om["started"] + om["missed"]
    assert final["loadcaller_calls_not_started_total"] == om["missed"]
    assert metric_sum(final, "loadcaller_calls_started_total") == om["started"]
