"""docs/metrics.md and what the registries export cannot drift apart.

Every family the callers' registry, the chaos proxy's and the reference agent's
export (each fed so that every family has samples) is documented with its
type and labels, and every documented metric is exported.
"""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from chaos.metrics import ChaosMetrics
from loadcaller import metrics as m
from loadcaller.agent.metrics import CountingTruth
from loadcaller.calls.call import CallRecord
from loadcaller.calls.histogram import Histogram
from loadcaller.calls.measure import TurnResult
from loadcaller.swarm.aggregate import Aggregate
from loadcaller.swarm.wire import record_to_wire

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
ROW = re.compile(r"^\|\s*(`[^|]+`)\s*\|\s*(\w+)\s*\|([^|]*)\|")
MS = 1_000_000


def documented() -> dict[str, tuple[str, frozenset[str]]]:
    """name -> (type, labels) from the tables of docs/metrics.md."""
    out: dict[str, tuple[str, frozenset[str]]] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        row = ROW.match(line)
        if row is None or row.group(2) == "type":
            continue
        labels = frozenset(x.strip() for x in row.group(3).split(",") if x.strip())
        for name in re.findall(r"`(\w+)`", row.group(1)):
            assert name not in out, f"{name} documented twice"
            out[name] = (row.group(2), labels)
    return out


def exposed(registry: CollectorRegistry) -> dict[str, tuple[str, frozenset[str]]]:
    """name as scraped -> (type, labels) of every family with samples."""
    out = {}
    for family in registry.collect():
        if not family.samples:
            continue
        name = family.name + ("_total" if family.type == "counter" else "")
        labels = set()
        for sample in family.samples:
            labels |= set(sample.labels) - {"le"}
        out[name] = (family.type, frozenset(labels))
    return out


def blob() -> bytes:
    h = Histogram()
    h.record_ns(2 * MS)
    return h.encode()


def callers_registry() -> CollectorRegistry:
    """An aggregate that has seen a call, a worker's health, an open model and its run."""
    agg = Aggregate(None, saturation_lag_ms=5.0)
    agg.run_labels = {"run": "demo-1", "profile": "demo"}
    turns = [TurnResult(0, "answered", 10**12, 10**12 + 300 * MS),
             # a barge-in whose reply failed its expect: check (loadcaller_bargein_*, ...)
             TurnResult(1, "answered", 2 * 10**12, 2 * 10**12 + 300 * MS, step="barge_in",
                        bargein="stopped", t_bargein_ns=10**12 + 900 * MS,
                        t_agent_stop_ns=10**12 + 1100 * MS, expect_ok=False)]
    agg.update_node("worker-a", {
        "started": 1, "finished": 1, "turns": 1, "active": 0, "skipped_ticks": 0,
        "member_errors": 0, "cpu_percent": 25.0, "media_clock_lag": blob(), "loop_lag": blob(),
        "hub_lag": blob(), "handoff_to_loop": blob(), "handoff_to_greenlet": blob(),
        "live_turns": [], "open": {"scheduled": 2, "started": 1, "missed": 1}})
    agg.add_records("worker-a", [record_to_wire(CallRecord(
        "c1", "twilio", "order", "completed", "done", t_start_ns=10**12,
        t_end_ns=10**12 + 5 * 10**9, setup_ns=5 * MS, greeting_ns=200 * MS, turns=turns))])
    return m.make_registry(agg)


def chaos_registry() -> CollectorRegistry:
    metrics = ChaosMetrics(lambda: [("backend_latency", True)])
    metrics.on_injected("backend_latency", "backend")
    metrics.on_skipped("schema_rename", "backend")
    metrics.requests.labels("backend", "ok").inc()
    metrics.upstream_latency.labels("backend").observe(0.05)
    metrics.add_packet_source(lambda: [("rtp", "upstream", 3)])
    return metrics.registry


def agent_registry() -> CollectorRegistry:
    truth = CountingTruth(None)
    truth.write({"turn": 0, "reply": "agent_fallback", "backend": "timeout"})
    truth.write({"turn": 1, "reply": "order_confirmed", "backend": "ok"})
    return truth.registry


def test_every_exported_metric_is_documented_and_every_documented_one_exported():
    docs = documented()
    exported = {**exposed(callers_registry()), **exposed(chaos_registry()),
                **exposed(agent_registry())}
    assert set(exported) - set(docs) == set(), "exported but not in docs/metrics.md"
    assert set(docs) - set(exported) == set(), "in docs/metrics.md but never exported"
    for name, (kind, labels) in exported.items():
        assert docs[name] == (kind, labels), f"{name}: docs say {docs[name]}, exported " \
                                             f"{(kind, labels)}"


def test_cpu_is_a_ratio_per_stable_process_index():
    agg = Aggregate(None, saturation_lag_ms=5.0)
    for node, cpu in (("locust-client-zz", 50.0), ("locust-client-aa", 150.0)):
        agg.update_node(node, {"started": 0, "finished": 0, "turns": 0, "active": 0,
                               "skipped_ticks": 0, "member_errors": 0, "cpu_percent": cpu,
                               "live_turns": []})
    samples = {s.labels["process"]: s.value for f in m.make_registry(agg).collect()
               if f.name == m.CPU_RATIO for s in f.samples}
    assert samples == {"0": 0.5, "1": 1.5}  # in the order the processes first reported
    local = Aggregate(None, saturation_lag_ms=5.0)
    local.update_node("local", {"cpu_percent": 20.0, "live_turns": []})
    assert [s.labels for f in m.make_registry(local).collect() if f.name == m.CPU_RATIO
            for s in f.samples] == [{"process": "local"}]
