"""Every Prometheus metric name and bucket set the callers export, in one place.

How this works: nothing here observes samples as they happen. The process
that writes the results (the only process in a local run, the master in a
distributed one) keeps plain bucket counters (:class:`BucketHistogram`) fed
from finished call records, plus each caller process's latest health report;
:class:`SwarmCollector` turns that state into metric families on every
scrape, in a :class:`~prometheus_client.CollectorRegistry` of our own. A
histogram merged from workers is therefore exactly the sum of their bucket
counts. No label identifies a call.

A process's ``process`` label is its index in the order processes first
reported (``0``, ``1``, ...; ``local`` in a run without workers), not Locust's
per-run client id: a dashboard's series stay the same from one run to the next.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from loadcaller.calls.histogram import Histogram

# ---- names -----------------------------------------------------------------------

TURN_LATENCY = "loadcaller_turn_latency_seconds"  # labels: scenario, transport, turn
TURNS_TOTAL = "loadcaller_turns"  # _total added by the client; labels: outcome
BARGEIN_REACTION = "loadcaller_bargein_reaction_seconds"  # labels: scenario, transport, turn
BARGEINS_TOTAL = "loadcaller_bargeins"  # labels: outcome (stopped, not_stopped, ...)
EXPECTATION_FAILED = "loadcaller_turn_expectation_failed"  # labels: scenario, transport
GREETING_LATENCY = "loadcaller_greeting_latency_seconds"  # labels: scenario, transport
CALL_SETUP = "loadcaller_call_setup_seconds"  # labels: transport
CALLS_TOTAL = "loadcaller_calls"  # labels: outcome
CALLS_STARTED = "loadcaller_calls_started"
CALLS_NOT_STARTED = "loadcaller_calls_not_started"  # open model: missed their start time
ACTIVE_CALLS = "loadcaller_active_calls"
USERS = "loadcaller_users"
WORKERS = "loadcaller_workers"
MEDIA_CLOCK_LAG = "loadcaller_media_clock_lag_seconds"
SEND_JITTER = "loadcaller_send_jitter_seconds"  # each frame's distance from its ideal instant
LOOP_LAG = "loadcaller_event_loop_lag_seconds"
HUB_LAG = "loadcaller_gevent_hub_lag_seconds"
BRIDGE_HANDOFF = "loadcaller_bridge_handoff_seconds"  # labels: direction
CPU_RATIO = "loadcaller_generator_cpu_ratio"  # labels: process (0, 1, ... or "local")
SATURATED = "loadcaller_generator_saturated"  # 0/1: the current (or last) window
SATURATED_WINDOWS = "loadcaller_generator_saturated_windows"  # counter (_total), all processes
# Always 1; its labels name the run (run: the results directory's name, profile). Dashboards
# join it on (job, instance) to pick one run: the other series carry no run label, so a
# run's cardinality does not depend on how it is named.
RUN_INFO = "loadcaller_run_info"  # labels: run, profile
# served by the reference agent (loadcaller/agent/metrics.py), not by the callers
AGENT_REPLIES = "loadcaller_agent_replies"  # _total; labels: reply (backend, fallback)
AGENT_FALLBACKS = "loadcaller_agent_fallbacks"  # _total; labels: reason (timeout, error)

# ---- ports grafana/prometheus/prometheus.yml scrapes ------------------------------

METRICS_PORT = 9646  # a run's /metrics (--metrics-port)
CHAOS_CONTROL_PORT = 9100  # the chaos proxy's control API (the demo's, when free)
AGENT_METRICS_PORT = 9647  # the reference agent's /metrics (the demo's agent, when free)

# ---- buckets ---------------------------------------------------------------------

# Voice latencies: 50 ms to 20 s, finest where agents live (200 ms - 2 s).
LATENCY_BUCKETS: tuple[float, ...] = (
    0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0,
    1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0, 15.0, 20.0,
)
# Call setup: 1 ms (a websocket upgrade on a LAN takes a few) to 40 s (SIP's default
# setup_timeout); finest where setups live, so histogram_quantile interpolates within
# a few ms, not across [0, 50 ms] of the latency buckets.
SETUP_BUCKETS: tuple[float, ...] = (
    0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1,
    0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 40.0,
)
# The generator's own lag: 0.1 ms to 250 ms; saturation starts at a few ms.
LAG_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25,
)


@dataclass
class BucketHistogram:
    """Cumulative-at-export bucket counts with a sum, mergeable by addition."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)  # per bucket, last one is +Inf
    total: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def merge(self, other: BucketHistogram) -> None:
        for i, n in enumerate(other.counts):
            self.counts[i] += n
        self.total += other.total

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, float]]:
        """Prometheus buckets: (upper bound, count of values <= bound)."""
        out, running = [], 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += n
            out.append(("+Inf" if bound == float("inf") else repr(bound), float(running)))
        return out

    @classmethod
    def from_hdr(cls, encoded: bytes | Iterable[bytes], bounds: Sequence[float],
                 unit_s: float = 1e-6) -> BucketHistogram:
        """Buckets from HdrHistograms (``Histogram.encode()``, values in ``unit_s``)."""
        out = cls(tuple(bounds))
        edges = np.asarray(out.bounds, dtype=np.float64)
        for blob in [encoded] if isinstance(encoded, bytes) else encoded:
            values_us, counts = Histogram.decode(blob).recorded()
            values = values_us * unit_s
            per_bucket = np.bincount(np.searchsorted(edges, values, side="left"),
                                     weights=counts, minlength=len(out.counts))
            for i, n in enumerate(per_bucket):
                out.counts[i] += int(n)
            out.total += float(np.multiply(values, counts).sum())  # no BLAS: see summary_ms
        return out


def bucket_index(bounds: Sequence[float], value: float) -> int:
    """Index of the bucket a value falls in (``le`` semantics)."""
    return bisect.bisect_left(bounds, value)


class MetricsSource(Protocol):
    """What the collector reads on each scrape (see ``swarm.aggregate.Aggregate``)."""

    def metric_families(self) -> Iterator[Metric]: ...


def histogram_family(name: str, doc: str, labels: Sequence[str],
                     series: Iterable[tuple[Sequence[str], BucketHistogram]]) -> Metric:
    fam = HistogramMetricFamily(name, doc, labels=list(labels))
    for values, hist in series:
        fam.add_metric(list(values), hist.cumulative(), sum_value=hist.total)
    return fam


def counter_family(name: str, doc: str, labels: Sequence[str],
                   series: Iterable[tuple[Sequence[str], float]]) -> Metric:
    fam = CounterMetricFamily(name, doc, labels=list(labels))
    for values, v in series:
        fam.add_metric(list(values), v)
    return fam


def gauge_family(name: str, doc: str, labels: Sequence[str],
                 series: Iterable[tuple[Sequence[str], float]]) -> Metric:
    fam = GaugeMetricFamily(name, doc, labels=list(labels))
    for values, v in series:
        fam.add_metric(list(values), v)
    return fam


class SwarmCollector:
    """A prometheus_client collector over a :class:`MetricsSource`."""

    def __init__(self, source: MetricsSource) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        yield from self.source.metric_families()

    def describe(self) -> list[Metric]:
        return []  # families depend on what was measured; never called at registration


def make_registry(source: MetricsSource) -> CollectorRegistry:
    """Our own registry (not the global default), holding only our collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SwarmCollector(source))
    return registry
