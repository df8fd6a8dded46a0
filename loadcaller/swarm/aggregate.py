"""One place that counts the whole run: results files, summary, /metrics.

How this works: every caller process (the only process in a local run, each
worker in a distributed one) sends two things: the records of calls that
finished (each exactly once, drained from a queue) and a cumulative snapshot
of its own health and counters (replaced on every report, so a repeated or
late report never double counts). :class:`Aggregate` lives in the process
that writes the results: it feeds each record to one
:class:`~loadcaller.calls.results.Results` (turns.jsonl, calls.jsonl,
summary.json) and to the Prometheus bucket counters, and merges the
snapshots into the generator's health.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import Metric

from loadcaller import metrics as m
from loadcaller.calls.call import CallRecord
from loadcaller.calls.histogram import Histogram
from loadcaller.calls.measure import TurnResult
from loadcaller.calls.results import Results
from loadcaller.media.outcomes import NOT_FAILED, TurnOutcome
from loadcaller.timebase import NS_PER_S

# a run is saturated when its lag p99 is over the threshold and at least this many
# ticks (200 ms of audio) were late
MIN_LATE_TICKS = 10



def record_to_wire(rec: CallRecord) -> dict[str, Any]:
    """A call record as plain data for Locust's messages (msgpack)."""
    return dataclasses.asdict(rec)


def record_from_wire(data: dict[str, Any]) -> CallRecord:
    turns = [TurnResult(**t) for t in data.get("turns", ())]
    return CallRecord(**{**data, "turns": turns})


class Aggregate:
    """The run's totals, fed by records and per-process snapshots."""

    def __init__(self, results_dir: Path | None, *, saturation_lag_ms: float,
                 phases: bool = False) -> None:
        self.results = Results(results_dir, phases=phases)
        self.saturation_lag_ms = saturation_lag_ms
        self.nodes: dict[str, dict[str, Any]] = {}
        self.records_by_node: Counter[str] = Counter()
        self.turn_latency: dict[tuple[str, str, str], m.BucketHistogram] = {}
        self.greeting: dict[tuple[str, str], m.BucketHistogram] = {}
        self.setup: dict[tuple[str], m.BucketHistogram] = {}
        self.users = 0
        self.workers = 0
        self.locust_cpu_warning = False
        self.turn_outcomes: Counter[str] = Counter()  # /metrics: live turns included
        self._live_seen: Counter[str] = Counter()
        self._merge_cache: dict[str, tuple[tuple[bytes, ...], Histogram]] = {}

    # ---- input -------------------------------------------------------------------

    def add_records(self, node_id: str, records: list[dict[str, Any]]) -> None:
        for data in records:
            rec = record_from_wire(data)
            self.results.record_call(rec)
            self.records_by_node[node_id] += 1
            self._observe(rec)

    def _observe(self, rec: CallRecord) -> None:
        if rec.setup_ns is not None:
            self._hist(self.setup, (rec.transport,)).observe(rec.setup_ns / NS_PER_S)
        if rec.greeting_ns is not None:
            key = (rec.scenario, rec.transport)
            self._hist(self.greeting, key).observe(rec.greeting_ns / NS_PER_S)
        seen = self._live_seen.pop(rec.call_id, 0)  # turns already observed live
        for turn in rec.turns[seen:]:
            self._observe_turn(rec.scenario, rec.transport, turn.index, turn.outcome,
                               turn.latency_ns)

    def _observe_turn(self, scenario: str, transport: str, index: int, outcome: str,
                      latency_ns: int | None) -> None:
        self.turn_outcomes[outcome] += 1
        if latency_ns is not None:
            key = (scenario, transport, str(index))
            self._hist(self.turn_latency, key).observe(latency_ns / NS_PER_S)

    def add_live_turns(self, turns: list[dict[str, Any]]) -> None:
        """Turns of calls still in progress (see ``CallerNode.snapshot``), for /metrics.

        Each is observed once; when its call's record arrives only the turns not
        seen live are observed, so /metrics counts every turn exactly once.
        """
        for t in turns:
            self._live_seen[t["call_id"]] += 1
            self._observe_turn(t["scenario"], t["transport"], t["index"], t["outcome"],
                               t["latency_ns"])

    @staticmethod
    def _hist(table: dict[Any, m.BucketHistogram], key: Any) -> m.BucketHistogram:
        hist = table.get(key)
        if hist is None:
            hist = table[key] = m.BucketHistogram(m.LATENCY_BUCKETS)
        return hist

    def update_node(self, node_id: str, snapshot: dict[str, Any]) -> None:
        """Replace a process's cumulative snapshot (see ``CallerNode.snapshot``)."""
        self.add_live_turns(snapshot.pop("live_turns", []))
        self.nodes[node_id] = snapshot

    # ---- output ------------------------------------------------------------------

    def _merged(self, key: str) -> Histogram:
        """One health histogram merged over processes (cached until a snapshot changes)."""
        blobs = tuple(snap.get(key) or b"" for snap in self.nodes.values())
        cached = self._merge_cache.get(key)
        if cached is not None and cached[0] == blobs:
            return cached[1]
        merged = Histogram()
        for blob in blobs:
            if blob:
                merged.merge(Histogram.decode(blob))
        self._merge_cache[key] = (blobs, merged)
        return merged

    def active_calls(self) -> int:
        return sum(int(s.get("active", 0)) for s in self.nodes.values())

    def open_model(self) -> dict[str, int] | None:
        rows = [s["open"] for s in self.nodes.values() if s.get("open")]
        if not rows:
            return None
        return {k: sum(int(r.get(k, 0)) for r in rows) for k in ("scheduled", "started", "missed")}

    def late_ticks(self) -> tuple[int, int]:
        """(media clock ticks later than the saturation threshold, all ticks), merged."""
        blobs = [s["media_clock_lag"] for s in self.nodes.values() if s.get("media_clock_lag")]
        split = m.BucketHistogram.from_hdr(blobs, (self.saturation_lag_ms / 1000.0,))
        return split.counts[1], split.count

    def _saturation(self, lag: Histogram) -> tuple[float, list[str]]:
        """Lag p99 and the reasons, if any, not to trust the run.

        Lag p99 above the threshold, with at least :data:`MIN_LATE_TICKS` late
        ticks: one scheduling hiccup in a run of seconds is not saturation.
        """
        lag_p99 = lag.percentile_ms(99) if lag.count else 0.0
        skipped = sum(int(s.get("skipped_ticks", 0)) for s in self.nodes.values())
        reasons = []
        if lag_p99 > self.saturation_lag_ms:
            late, ticks = self.late_ticks()
            if late >= MIN_LATE_TICKS:
                reasons.append(f"media clock lag p99 {lag_p99:.1f} ms > "
                               f"{self.saturation_lag_ms:g} ms ({late} of {ticks} ticks late)")
        if skipped:
            reasons.append(f"{skipped} media clock ticks skipped")
        if self.locust_cpu_warning:
            reasons.append("Locust CPU warning (a caller process above 90% CPU)")
        return lag_p99, reasons

    def saturated(self) -> bool:
        return bool(self._saturation(self._merged("media_clock_lag"))[1])

    def progress(self) -> dict[str, Any]:
        """The few figures a progress line shows, cheaply.

        Full summaries walk every histogram bucket while holding the GIL, which
        the loop thread's media clock would feel; this takes percentiles only.
        """
        r = self.results
        lat = r.turn_latency
        p50, p95 = lat.percentiles_ms((50, 95)) if lat.count else (None, None)
        lag_p99, reasons = self._saturation(self._merged("media_clock_lag"))
        return {
            "calls": {"finished": r.calls_finished,
                      "failed": sum(n for o, n in r.call_outcomes.items() if o not in NOT_FAILED)},
            "turns": {"count": sum(r.turn_outcomes.values()),
                      "answered": r.turn_outcomes.get(TurnOutcome.ANSWERED, 0),
                      "latency_ms": {"p50": p50, "p95": p95}},
            "generator": {"media_clock_lag_ms": {"p99": lag_p99}, "saturated": bool(reasons)},
        }

    def generator_health(self) -> dict[str, Any]:
        """The merged health of every caller process; ``saturated`` decides trust."""
        lag = self._merged("media_clock_lag")
        _, reasons = self._saturation(lag)
        skipped = sum(int(s.get("skipped_ticks", 0)) for s in self.nodes.values())
        cpu = {n: float(s.get("cpu_percent", 0.0)) for n, s in self.nodes.items()}
        return {
            "media_clock_lag_ms": lag.summary_ms(),
            "event_loop_lag_ms": self._merged("loop_lag").summary_ms(),
            "gevent_hub_lag_ms": self._merged("hub_lag").summary_ms(),
            "bridge_handoff_ms": {"to_loop": self._merged("handoff_to_loop").summary_ms(),
                                  "to_greenlet": self._merged("handoff_to_greenlet").summary_ms()},
            "skipped_ticks": skipped,
            "member_errors": sum(int(s.get("member_errors", 0)) for s in self.nodes.values()),
            "cpu_percent": round(max(cpu.values(), default=0.0), 1),
            "cpu_percent_by_process": cpu,
            "processes": len(self.nodes),
            "saturation_lag_ms": self.saturation_lag_ms,
            "saturated": bool(reasons),
            "saturation_reasons": reasons,
        }

    def per_node_counts(self) -> dict[str, dict[str, int]]:
        """Each process's own counters next to the records the aggregate got from it."""
        out = {}
        for node_id, snap in sorted(self.nodes.items()):
            out[node_id] = {"started": int(snap.get("started", 0)),
                            "finished": int(snap.get("finished", 0)),
                            "turns": int(snap.get("turns", 0)),
                            "records_received": self.records_by_node.get(node_id, 0)}
        return out

    def summary(self, run: dict[str, Any]) -> dict[str, Any]:
        """summary.json's content (the engine's schema plus ``swarm`` and ``open_model``)."""
        self.results.calls_started = sum(int(s.get("started", 0)) for s in self.nodes.values())
        out = self.results.summary(self.generator_health(), run)
        out["swarm"] = {"processes": self.per_node_counts()}
        open_model = self.open_model()
        if open_model is not None:
            out["open_model"] = open_model
        return out

    def metric_families(self) -> Iterator[Metric]:
        """The Prometheus view of this state (``loadcaller.metrics`` names)."""
        r = self.results
        yield m.histogram_family(m.TURN_LATENCY, "Caller end of speech to agent reply onset",
                                 ("scenario", "transport", "turn"),
                                 sorted(self.turn_latency.items()))
        yield m.counter_family(m.TURNS_TOTAL, "Turns measured, by outcome", ("outcome",),
                               (((o,), n) for o, n in sorted(self.turn_outcomes.items())))
        yield m.histogram_family(m.GREETING_LATENCY, "Call answered to first agent speech",
                                 ("scenario", "transport"), sorted(self.greeting.items()))
        yield m.histogram_family(m.CALL_SETUP, "Dial to call set up", ("transport",),
                                 sorted(self.setup.items()))
        yield m.counter_family(m.CALLS_TOTAL, "Calls finished, by outcome", ("outcome",),
                               (((o,), n) for o, n in sorted(r.call_outcomes.items())))
        started = sum(int(s.get("started", 0)) for s in self.nodes.values())
        yield m.counter_family(m.CALLS_STARTED, "Calls started", (), [((), started)])
        open_model = self.open_model()
        if open_model is not None:
            yield m.counter_family(m.CALLS_NOT_STARTED, "Open model: calls that could not "
                                   "start on time", (), [((), open_model["missed"])])
        yield m.gauge_family(m.ACTIVE_CALLS, "Calls in progress", (), [((), self.active_calls())])
        yield m.gauge_family(m.USERS, "Locust users (callers)", (), [((), self.users)])
        yield m.gauge_family(m.WORKERS, "Caller processes reporting", (),
                             [((), len(self.nodes))])
        for name, key, doc in ((m.MEDIA_CLOCK_LAG, "media_clock_lag", "Media clock tick lateness"),
                               (m.LOOP_LAG, "loop_lag", "asyncio loop timer lateness"),
                               (m.HUB_LAG, "hub_lag", "gevent hub timer lateness")):
            blobs = [s[key] for s in self.nodes.values() if s.get(key)]
            yield m.histogram_family(name, doc, (),
                                     [((), m.BucketHistogram.from_hdr(blobs, m.LAG_BUCKETS))])
        handoff = []
        for direction, key in (("to_loop", "handoff_to_loop"),
                               ("to_greenlet", "handoff_to_greenlet")):
            blobs = [s[key] for s in self.nodes.values() if s.get(key)]
            handoff.append(((direction,), m.BucketHistogram.from_hdr(blobs, m.LAG_BUCKETS)))
        yield m.histogram_family(m.BRIDGE_HANDOFF, "gevent/asyncio bridge hand-off delay",
                                 ("direction",), handoff)
        yield m.gauge_family(m.CPU_PERCENT, "CPU of each caller process", ("process",),
                             [((n,), float(s.get("cpu_percent", 0.0)))
                              for n, s in sorted(self.nodes.items())])
        yield m.gauge_family(m.SATURATED, "1 when the generator itself is the bottleneck", (),
                             [((), 1.0 if self.saturated() else 0.0)])

    def close(self) -> None:
        self.results.close()
