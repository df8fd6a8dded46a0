"""Prometheus metrics of the chaos proxy, in a CollectorRegistry the proxy owns.

Names (shared with docs/metrics.md and the Grafana dashboards):

- chaos_faults_injected_total{fault, route}   every injection
- chaos_faults_skipped_total{fault, route}    chosen but could not apply
- chaos_fault_active{fault}                   1 while a fault is switched on
- chaos_requests_total{route, outcome}        HTTP requests / WebSocket connections
- chaos_packets_total{route, direction}       UDP datagrams relayed
- chaos_upstream_latency_seconds{route}       time to the upstream's response headers
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

# voice budgets: 5 ms to 20 s
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0)


class _ActiveCollector(Collector):
    """chaos_fault_active, computed at scrape time from the live fault set."""

    def __init__(self, states: Callable[[], Iterable[tuple[str, bool]]]) -> None:
        self._states = states

    def collect(self) -> Iterable[GaugeMetricFamily]:
        gauge = GaugeMetricFamily("chaos_fault_active", "1 while the fault is switched on",
                                  labels=["fault"])
        for name, active in self._states():
            gauge.add_metric([name], 1.0 if active else 0.0)
        yield gauge


PacketCounts = Callable[[], Iterable[tuple[str, str, int]]]


class _PacketCollector(Collector):
    """chaos_packets_total, read at scrape time from the relays' plain int counters
    (a labelled Counter.inc per packet would cost a tenth of the relay's budget)."""

    def __init__(self) -> None:
        self.sources: list[PacketCounts] = []

    def collect(self) -> Iterable[CounterMetricFamily]:
        family = CounterMetricFamily("chaos_packets", "UDP datagrams relayed",
                                     labels=["route", "direction"])
        for source in self.sources:
            for route, direction, count in source():
                family.add_metric([route, direction], float(count))
        yield family


class ChaosMetrics:
    """The proxy's metrics; `registry` is what GET /metrics exposes."""

    def __init__(self, states: Callable[[], Iterable[tuple[str, bool]]],
                 registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.injected = Counter("chaos_faults_injected_total", "Faults injected",
                                ["fault", "route"], registry=self.registry)
        self.skipped = Counter("chaos_faults_skipped_total",
                               "Faults chosen that could not apply (e.g. body not JSON)",
                               ["fault", "route"], registry=self.registry)
        self.requests = Counter("chaos_requests_total", "Requests, messages or packets seen",
                                ["route", "outcome"], registry=self.registry)
        self.upstream_latency = Histogram("chaos_upstream_latency_seconds",
                                          "Time to the upstream's response headers",
                                          ["route"], buckets=LATENCY_BUCKETS,
                                          registry=self.registry)
        self.registry.register(_ActiveCollector(states))
        self._packets = _PacketCollector()
        self.registry.register(self._packets)

    def add_packet_source(self, source: PacketCounts) -> None:
        """Expose a relay's packet counts as chaos_packets_total."""
        self._packets.sources.append(source)

    def remove_packet_source(self, source: PacketCounts) -> None:
        """Stop exposing a relay's packet counts."""
        if source in self._packets.sources:
            self._packets.sources.remove(source)

    def on_injected(self, fault: str, route: str) -> None:
        """Count one injection."""
        self.injected.labels(fault, route).inc()

    def on_skipped(self, fault: str, route: str) -> None:
        """Count one skip."""
        self.skipped.labels(fault, route).inc()
