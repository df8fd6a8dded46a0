"""A real Prometheus server scrapes a run; its p95 agrees with summary.json's."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadcaller.metrics import LATENCY_BUCKETS, bucket_index

from .conftest import Agent, free_port, http_get, start_run, wait_until, write_profile


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A Prometheus server on a free port scraping a free /metrics port every second."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("the prometheus binary is not installed (Debian package prometheus)")
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
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: "Ready" in http_get(f"{base}/-/ready"), 30, "Prometheus ready")
        yield base, target_port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def query(base: str, promql: str) -> list[dict]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql,
                                                            "time": f"{time.time():.3f}"})
    body = json.loads(http_get(url))
    assert body["status"] == "success", body
    return body["data"]["result"]


def test_prometheus_p95_agrees_with_the_summary_within_one_bucket(tmp_path, agent: Agent,
                                                                  prometheus):
    base, metrics_port = prometheus
    profile = write_profile(tmp_path / "p.yaml", url=agent.url, users=4, duration="8s", turns=2)
    run = start_run(profile, tmp_path / "r", "--saturation-lag-ms", "1000",
                    "--metrics-linger", "4", metrics_port=metrics_port)
    code, _, err = run.wait(timeout=120)
    assert code == 0, err
    summary = run.summary()
    expected_count = summary["turns"]["latency_ms"]["count"]
    assert expected_count >= 4

    # the last scrapes happened while /metrics lingered; range functions skip staleness
    counts = query(base, "max_over_time(loadcaller_turn_latency_seconds_count[5m])")
    assert sum(float(r["value"][1]) for r in counts) == expected_count
    result = query(base, "histogram_quantile(0.95, sum by (le) "
                         "(max_over_time(loadcaller_turn_latency_seconds_bucket[5m])))")
    assert len(result) == 1
    prom_p95_s = float(result[0]["value"][1])
    summary_p95_s = summary["turns"]["latency_ms"]["p95"] / 1000.0
    gap = abs(bucket_index(LATENCY_BUCKETS, prom_p95_s)
              - bucket_index(LATENCY_BUCKETS, summary_p95_s))
    assert gap <= 1, (prom_p95_s, summary_p95_s)
