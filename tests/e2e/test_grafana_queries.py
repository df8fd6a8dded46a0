"""Every query of the Grafana dashboards returns data from a real Prometheus after a run.

One short `loadcaller demo` with chaos runs while the Debian package's Prometheus
scrapes it every second: the run's /metrics, the chaos proxy's control API and
the reference agent's /metrics (their ports read from the demo's own lines,
handed to Prometheus by file discovery), with grafana/prometheus/rules loaded
and evaluated every second. Then every panel query and annotation of every
dashboard, with the dashboard variables substituted as Grafana would (the run
selected by name), every recording rule's series and every variable's label
values are read through Prometheus's HTTP API over the run's window, and each
must hold data; the alerting rules must have evaluated without error.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.grafana.helpers import RULES, dashboards, queries
from tests.peers import require_binary, serving
from tests.swarm.conftest import free_port, http_get, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SCRAPE_S = 1
# Grafana's $__rate_interval: max($__interval + scrape interval, 4 x scrape interval)
RATE_INTERVAL = f"{4 * SCRAPE_S}s"
JOBS = ("loadcaller", "chaos", "agent")


def api(base: str, path: str, **params: str) -> Any:
    url = f"{base}/api/v1/{path}?" + urllib.parse.urlencode(params)
    try:
        body = json.loads(http_get(url))
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{params}: {exc.read().decode(errors='replace')}") from None
    assert body["status"] == "success", body
    return body["data"]


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Prometheus with the repository's rules, scraping what file discovery names."""
    binary = require_binary("prometheus", "prometheus")
    sd = tmp_path / "sd"
    sd.mkdir()
    jobs = "".join(f"""  - job_name: {job}
    file_sd_configs:
      - files: ["{sd / job}.json"]
        refresh_interval: 1s
""" for job in JOBS)
    rule_files = "".join(f'  - "{p}"\n' for p in sorted(RULES.glob("*.yml"))
                         if not p.name.endswith("_test.yml"))
    config = tmp_path / "prometheus.yml"
    config.write_text(f"""global:
  scrape_interval: {SCRAPE_S}s
  scrape_timeout: 900ms
  evaluation_interval: {SCRAPE_S}s
rule_files:
{rule_files}scrape_configs:
{jobs}""")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with serving([binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                  f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                 f"{base}/-/ready", "Prometheus"):
        yield base, sd


def announce_targets(log: Path, sd: Path, proc: subprocess.Popen[bytes]) -> dict[str, str]:
    """Read the demo's metrics URLs from its output; hand them to Prometheus."""
    lines = {"loadcaller": r"^\s+metrics\s+http://([\d.:]+)/metrics",
             "chaos": r"^\s+chaos metrics\s+http://([\d.:]+)/metrics",
             "agent": r"^\s+agent metrics\s+http://([\d.:]+)/metrics"}
    found: dict[str, str] = {}

    def all_found() -> bool:
        assert proc.poll() is None, log.read_text()
        text = log.read_text()
        for job, pattern in lines.items():
            hit = re.search(pattern, text, re.MULTILINE)
            if hit and job not in found:
                found[job] = hit.group(1)
                (sd / f"{job}.json").write_text(json.dumps([{"targets": [hit.group(1)]}]))
        return len(found) == len(lines)

    wait_until(all_found, 90, "the demo's metrics URLs")
    return found


def substitute(expr: str, run: str) -> str:
    assert re.fullmatch(r"[\w-]+", run)  # a regex matching only itself
    values = {"run": run, "scenario": ".*", "transport": "twilio",
              "route": "backend", "__rate_interval": RATE_INTERVAL,
              "__interval": f"{SCRAPE_S}s"}
    out = re.sub(r"\$\{?(\w+)\}?", lambda m: values[m.group(1)], expr)
    assert "$" not in out, out
    return out


def has_data(result: list[dict[str, Any]]) -> bool:
    return any(v not in ("NaN", "+Inf", "-Inf") for series in result
               for _, v in series["values"])


def test_every_dashboard_query_returns_data_after_a_chaos_demo(tmp_path, prometheus):
    base, sd = prometheus
    out = tmp_path / "demo-grafana"
    log = tmp_path / "demo.log"
    start = time.time()
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "loadcaller", "demo", "--duration", "20s", "--users", "6",
             "--results-dir", str(out), "--metrics-port", str(free_port()),
             "--metrics-linger", "6", "--saturation-lag-ms", "1000"],
            stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            targets = announce_targets(log, sd, proc)
            wait_until(lambda: {t["labels"]["job"] for t in api(base, "targets")["activeTargets"]
                                if t["health"] == "up"} == set(JOBS), 30,
                       f"Prometheus scraping {targets}")
            code = proc.wait(timeout=180)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert code in (0, 1), log.read_text()  # 1: the demo's ground-truth check on a busy box
    summary = json.loads((out / "summary.json").read_text())
    assert summary["turns"]["count"] > 0, log.read_text()
    time.sleep(3 * SCRAPE_S)  # the recording rules evaluate the last scrapes
    window = {"start": f"{start:.3f}", "end": f"{time.time():.3f}", "step": f"{SCRAPE_S}s"}
    run = out.name

    empty = []
    checked = 0
    for name, dash in dashboards().items():
        for where, expr in queries(dash):
            promql = substitute(expr, run)
            checked += 1
            if not has_data(api(base, "query_range", query=promql, **window)["result"]):
                empty.append(f"{name} {where}: {promql}")
        for var in dash["templating"]["list"]:
            metric, label = re.fullmatch(r"label_values\((\w+), (\w+)\)",
                                         var["definition"]).groups()
            values = api(base, f"label/{label}/values", **{"match[]": metric},
                         start=window["start"], end=window["end"])
            if not values:
                empty.append(f"{name} variable {var['name']}: {var['definition']}")
            if var["name"] == "run":
                assert run in values
    assert checked >= 25
    recorded, alerts = [], []
    for path in sorted(RULES.glob("*.yml")):
        if path.name.endswith("_test.yml"):
            continue
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                (recorded if "record" in rule else alerts).append(rule)
    for rule in recorded:
        if not has_data(api(base, "query_range", query=rule["record"], **window)["result"]):
            empty.append(f"recording rule {rule['record']}")
    if empty:  # what the data looked like, for the failure message
        for q in ("sum(loadcaller_turn_latency_seconds_count)", 'up{job="loadcaller"}',
                  "sum(loadcaller:turn_latency_seconds_bucket:rate1m)"):
            res = api(base, "query_range", query=q, **window)["result"]
            empty.append(f"{q}: {[r['values'] for r in res]}")
    assert not empty, "no data:\n" + "\n".join(empty)

    loaded = {r["name"]: r for g in api(base, "rules")["groups"] for r in g["rules"]}
    assert {a["alert"] for a in alerts} <= set(loaded)
    for rule in loaded.values():
        assert rule["health"] == "ok", rule
    # the run itself, selected by name: its turns and the chaos window it ran through
    p95 = api(base, "query_range", query=f'run:loadcaller_turn_latency_seconds:p95_1m'
              f'{{run="{run}"}}', **window)["result"]
    assert [s["metric"]["run"] for s in p95] == [run]
    faults = api(base, "query_range", query="max by (fault) (chaos_fault_active) > 0",
                 **window)["result"]
    assert {s["metric"]["fault"] for s in faults} == {"backend_latency", "schema_rename"}
    # the agent's fallbacks as Prometheus stored them are those of its ground truth
    truth = [json.loads(line) for line in
             (out / "agent_turns.jsonl").read_text().splitlines() if line.strip()]
    fallbacks = sum(1 for rec in truth if rec.get("reply") == "agent_fallback")
    assert fallbacks > 0  # the renamed field failed the agent's backend calls
    span = int(time.time() - start) + 5
    stored = api(base, "query", time=window["end"], query="max_over_time(sum("
                 f"loadcaller_agent_fallbacks_total)[{span}s:1s])")["result"]
    assert float(stored[0]["value"][1]) == fallbacks
