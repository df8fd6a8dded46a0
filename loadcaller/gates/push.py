"""A run's final figures to a Prometheus Pushgateway, for scheduled runs.

A nightly run ends before any scrape would see it, so its verdict is pushed:
a small set of gauges in a registry of their own (not the live metrics of
:mod:`loadcaller.metrics`, whose histograms describe a run in progress), under
``job="loadcaller"`` and the grouping label ``run`` (the profile's name), so
each profile's last run replaces its previous one. A Pushgateway that cannot
be reached costs a warning, never the run's exit code.

Gauges (docs/scheduled-runs.md lists them with their labels):
``loadcaller_run_turn_latency_seconds{quantile}``,
``loadcaller_run_greeting_latency_seconds{quantile}``,
``loadcaller_run_call_setup_seconds{quantile}`` (quantile 0.5, 0.9, 0.95,
0.99, 1 for the maximum), ``loadcaller_run_answered_ratio``,
``loadcaller_run_completed_ratio``, ``loadcaller_run_turns{outcome}``,
``loadcaller_run_calls{outcome}``, ``loadcaller_run_generator_saturated``,
``loadcaller_run_gate_passed{gate,phase}``, ``loadcaller_run_gates_failed``,
``loadcaller_run_exit_code``, ``loadcaller_run_finished_timestamp_seconds``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

from loadcaller.gates.evaluate import GateResult, overall_figures

JOB: Final = "loadcaller"
PUSH_TIMEOUT_S: Final = 10.0
_QUANTILES: Final = (("p50", "0.5"), ("p90", "0.9"), ("p95", "0.95"), ("p99", "0.99"),
                     ("max", "1"))


def check_url(url: str) -> str:
    """The Pushgateway URL, or ValueError saying what is wrong (an option error: exit 2)."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--pushgateway {url!r}: give http://HOST:PORT of a Pushgateway")
    try:
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError as exc:
        raise ValueError(f"--pushgateway {url!r}: {exc}") from None
    return url


def run_registry(summary: dict[str, Any], results: Sequence[GateResult],
                 exit_code: int) -> CollectorRegistry:
    """The gauges of one finished run."""
    reg = CollectorRegistry()
    figures = overall_figures(summary)
    for name, prefix in (("turn_latency", "turn_latency"),
                         ("greeting_latency", "greeting_latency"),
                         ("call_setup", "setup_latency")):
        g = Gauge(f"loadcaller_run_{name}_seconds", f"{name} of the last run, by quantile",
                  ["quantile"], registry=reg)
        for stat, q in _QUANTILES:
            value = figures[f"{prefix}_{stat}"]
            if isinstance(value, int | float):
                g.labels(quantile=q).set(value / 1000.0)
    for name in ("answered_ratio", "completed_ratio"):
        value = figures[name]
        if isinstance(value, int | float):
            Gauge(f"loadcaller_run_{name}", f"{name} of the last run", registry=reg).set(value)
    turns = Gauge("loadcaller_run_turns", "turns of the last run by outcome", ["outcome"],
                  registry=reg)
    for outcome, n in ((summary.get("turns") or {}).get("outcomes") or {}).items():
        turns.labels(outcome=outcome).set(n)
    calls = Gauge("loadcaller_run_calls", "calls of the last run by outcome", ["outcome"],
                  registry=reg)
    for outcome, n in ((summary.get("calls") or {}).get("outcomes") or {}).items():
        calls.labels(outcome=outcome).set(n)
    Gauge("loadcaller_run_generator_saturated", "1 when the generator itself fell behind",
          registry=reg).set(1 if figures["generator_saturated"] else 0)
    passed = Gauge("loadcaller_run_gate_passed", "1 when the SLO gate passed",
                   ["gate", "phase"], registry=reg)
    for r in results:
        passed.labels(gate=r.gate.text, phase=r.gate.phase or "").set(1 if r.passed else 0)
    Gauge("loadcaller_run_gates_failed", "SLO gates the last run failed",
          registry=reg).set(sum(not r.passed for r in results))
    Gauge("loadcaller_run_exit_code", "the last run's exit code", registry=reg).set(exit_code)
    Gauge("loadcaller_run_finished_timestamp_seconds", "when the last run finished",
          registry=reg).set(time.time())
    return reg


def push_run(url: str, summary: dict[str, Any], results: Sequence[GateResult],
             exit_code: int) -> str | None:
    """Push the run's gauges; return a warning when the Pushgateway refused or was away."""
    run_name = str((summary.get("run") or {}).get("name") or "run")
    reg = run_registry(summary, results, exit_code)
    try:
        push_to_gateway(url, job=JOB, registry=reg, grouping_key={"run": run_name},
                        timeout=PUSH_TIMEOUT_S)
    except (OSError, ValueError) as exc:  # URLError and HTTPError are OSErrors
        return f"could not push to the Pushgateway at {url}: {exc}"
    return None
