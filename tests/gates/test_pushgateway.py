"""--pushgateway against a real Prometheus Pushgateway (Debian prometheus-pushgateway)."""

from __future__ import annotations

import socket
import time
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from loadcaller.gates.evaluate import evaluate
from loadcaller.gates.parse import parse_gate
from loadcaller.gates.push import check_url, push_run
from tests.gates.test_evaluate import summary
from tests.peers import require_binary, serving


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def pushgateway() -> Iterator[str]:
    binary = require_binary("prometheus-pushgateway", "prometheus-pushgateway")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with serving([binary, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file=",
                  "--log.level=warn"], f"{url}/-/ready", "the Pushgateway", timeout=20):
        yield url


def _samples(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The Pushgateway's /metrics as Prometheus' text parser reads it: ours only."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as r:
        text = r.read().decode()
    return {(smp.name, frozenset(smp.labels.items())): smp.value
            for fam in text_string_to_metric_families(text) for smp in fam.samples
            if smp.name.startswith("loadcaller_run_")}


def test_final_figures_and_gates_reach_the_pushgateway(pushgateway: str) -> None:
    s = summary()
    results = evaluate([parse_gate("answered_ratio >= 0.9"),
                        parse_gate("turn_latency_p95 < 1.5s")], s)
    assert push_run(pushgateway, s, results, exit_code=1) is None
    samples = _samples(pushgateway)

    def value(name: str, **labels: str) -> float:
        key = (name, frozenset({"instance": "", "job": "loadcaller", "run": "nightly",
                                **labels}.items()))
        assert key in samples, f"{key} not in {sorted(samples)}"
        return samples[key]

    assert value("loadcaller_run_turn_latency_seconds", quantile="0.95") == pytest.approx(
        1.6, rel=0.002)
    assert value("loadcaller_run_call_setup_seconds", quantile="1") == pytest.approx(
        0.012, rel=0.002)
    assert value("loadcaller_run_answered_ratio") == pytest.approx(0.925)
    assert value("loadcaller_run_completed_ratio") == pytest.approx(0.8)
    assert value("loadcaller_run_turns", outcome="no_response") == 3
    assert value("loadcaller_run_calls", outcome="failed_setup") == 1
    assert value("loadcaller_run_generator_saturated") == 0
    assert value("loadcaller_run_gate_passed", gate="answered_ratio >= 0.9", phase="") == 1
    assert value("loadcaller_run_gate_passed", gate="turn_latency_p95 < 1.5s", phase="") == 0
    assert value("loadcaller_run_gates_failed") == 1
    assert value("loadcaller_run_exit_code") == 1
    assert abs(value("loadcaller_run_finished_timestamp_seconds") - time.time()) < 600


def test_a_pushgateway_that_is_down_is_a_warning() -> None:
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    warning = push_run(url, summary(), [], exit_code=0)
    assert warning is not None and warning.startswith(f"could not push to the Pushgateway at {url}")


@pytest.mark.parametrize("url", ["ftp://127.0.0.1:9091", "http://", "http://127.0.0.1:99999"])
def test_a_bad_url_is_an_option_error(url: str) -> None:
    with pytest.raises(ValueError, match="--pushgateway"):
        check_url(url)
    assert check_url("127.0.0.1:9091") == "127.0.0.1:9091"
