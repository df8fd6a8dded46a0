"""A real Prometheus server scrapes a run: it stores what the files say, and its
histogram_quantile is the one computed here from the same buckets."""

from __future__ import annotations

import json
import math
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadcaller.metrics import (
    CALL_SETUP,
    GREETING_LATENCY,
    LATENCY_BUCKETS,
    SETUP_BUCKETS,
    TURN_LATENCY,
)
from tests.peers import require_binary, serving

from .conftest import Agent, free_port, http_get, read_jsonl, start_run, write_profile
from .exposition import (
    Labels,
    Series,
    assert_series_match,
    prometheus_quantile,
    values_by_series,
)


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A Prometheus server on a free port scraping a free /metrics port every second."""
    binary = require_binary("prometheus", "prometheus")
    target_port, port = free_port(), free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(f"""global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: loadcaller
    static_configs:
      - targets: ["127.0.0.1:{target_port}"]
""")
    base = f"http://127.0.0.1:{port}"
    with serving([binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                  f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                 f"{base}/-/ready", "Prometheus"):
        yield base, target_port


def query(base: str, promql: str, at: str | None = None) -> list[dict]:
    """An instant query at ``at`` (Unix seconds; default now)."""
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode(
        {"query": promql, "time": at or f"{time.time():.3f}"})
    body = json.loads(http_get(url))
    assert body["status"] == "success", body
    return body["data"]["result"]


def scraped_series(base: str, name: str, at: str) -> dict[Labels, Series]:
    """Histogram ``name`` as Prometheus stored it: each series' last scraped state."""
    out: dict[Labels, Series] = {}

    def each(suffix: str) -> Iterator[tuple[Series, str | None, float]]:
        # the last scrapes happened while /metrics lingered; range functions skip staleness
        for r in query(base, f"max_over_time({name}{suffix}[5m])", at):
            labels = {k: v for k, v in r["metric"].items() if k not in ("job", "instance")}
            le = labels.pop("le", None)
            series = out.setdefault(tuple(sorted(labels.items())), Series([], math.nan, math.nan))
            yield series, le, float(r["value"][1])

    for series, le, value in each("_bucket"):
        series.buckets.append((float(le or "nan"), value))
    for series, _, value in each("_count"):
        series.count = value
    for series, _, value in each("_sum"):
        series.total = value
    for series in out.values():
        series.buckets.sort()
    return out


def test_prometheus_holds_what_the_files_say_and_computes_quantiles_as_we_do(
        tmp_path, agent: Agent, prometheus):
    """Buckets and sums as scraped equal the results files; histogram_quantile is ours."""
    base, metrics_port = prometheus
    profile = write_profile(tmp_path / "p.yaml", url=agent.url, users=4, duration="8s", turns=2)
    run = start_run(profile, tmp_path / "r", "--saturation-lag-ms", "1000",
                    "--metrics-linger", "4", metrics_port=metrics_port)
    code, _, err = run.wait(timeout=120)
    assert code == 0, err
    turns = read_jsonl(run.out_dir / "turns.jsonl")
    calls = read_jsonl(run.out_dir / "calls.jsonl")
    at = f"{time.time():.3f}"  # one evaluation instant for every query
    latencies = values_by_series(turns, "latency_ms", {"scenario": "scenario",
                                                       "transport": "transport", "turn": "turn"})
    assert sum(map(len, latencies.values())) == run.summary()["turns"]["latency_ms"]["count"] >= 8
    for name, values in (
            (TURN_LATENCY, latencies),
            (GREETING_LATENCY, values_by_series(calls, "greeting_ms", {"scenario": "scenario",
                                                                       "transport": "transport"})),
            (CALL_SETUP, values_by_series(calls, "setup_ms", {"transport": "transport"}))):
        assert values, name
        bounds = SETUP_BUCKETS if name == CALL_SETUP else LATENCY_BUCKETS
        assert_series_match(scraped_series(base, name, at), values, bounds, whole_us=False)

    # Prometheus's quantile over the merged buckets is the one computed here from the same
    # buckets (its linear interpolation); approx only for the last bit, since Go may fuse
    # the interpolation's multiply-add on some CPUs.
    merged = query(base, f"sum by (le) (max_over_time({TURN_LATENCY}_bucket[5m]))", at)
    buckets = [(float(r["metric"]["le"]), float(r["value"][1])) for r in merged]
    for q in (0.5, 0.95, 0.99):
        result = query(base, f"histogram_quantile({q}, sum by (le) "
                             f"(max_over_time({TURN_LATENCY}_bucket[5m])))", at)
        assert len(result) == 1, result
        prom = float(result[0]["value"][1])
        ours = prometheus_quantile(q, buckets)
        assert prom == pytest.approx(ours, rel=1e-12, abs=0), (q, prom, ours, sorted(buckets))
        assert 0.05 < prom < 20.0, (q, prom)  # inside the finite buckets: interpolated
