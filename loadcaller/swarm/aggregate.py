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

Nothing a process sends is trusted: each record and snapshot passes
:mod:`loadcaller.swarm.wire`'s checks or is counted and dropped with a warning
(``swarm.rejected_*`` in summary.json), and a failed write of the results
files is counted (``swarm.records_not_written``), never raised: the run goes
on and its summary is still written.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import Metric

from loadcaller import metrics as m
from loadcaller.calls.call import CallRecord
from loadcaller.calls.histogram import Histogram
from loadcaller.calls.results import Results
from loadcaller.calls.stretches import MIN_LATE_TICKS, WINDOW_S, merge_stretches
from loadcaller.media.outcomes import NOT_FAILED, TurnOutcome
from loadcaller.swarm.wire import (
    CALL_OUTCOMES,
    TURN_OUTCOMES,
    WireError,
    record_from_wire,
    record_to_wire,
    snapshot_from_wire,
)
from loadcaller.timebase import NS_PER_S

log = logging.getLogger(__name__)

MAX_WARNINGS = 20  # rejected records and snapshots warned about; the rest are only counted
MAX_NODES = 4096  # processes that may report (a flood of made-up ids is refused)

__all__ = ["Aggregate", "record_from_wire", "record_to_wire"]


class Aggregate:
    """The run's totals, fed by records and per-process snapshots."""

    def __init__(self, results_dir: Path | None, *, saturation_lag_ms: float,
                 saturation_window_s: float = WINDOW_S,
                 phases: bool = False, scenarios: Collection[str] | None = None,
                 transports: Collection[str] | None = None) -> None:
        self.results = Results(results_dir, phases=phases)
        self.scenarios = scenarios  # the only names a record may carry (None: any)
        self.transports = transports
        self.rejected: Counter[str] = Counter()  # "records", "snapshots", "messages"
        self.records_not_written = 0  # counted, but a write to the results files failed
        self.write_error: str | None = None
        self.lost_workers: set[str] = set()
        self.saturation_lag_ms = saturation_lag_ms
        self.saturation_window_s = saturation_window_s
        self.t0_monotonic: float | None = None  # the load's start: stretches are listed from it
        self.nodes: dict[str, dict[str, Any]] = {}
        self.process_index: dict[str, str] = {}  # node id -> /metrics' stable `process` label
        self.run_labels: dict[str, str] = {}  # loadcaller_run_info's labels (run, profile)
        self.records_by_node: Counter[str] = Counter()
        self.turn_latency: dict[tuple[str, str, str], m.BucketHistogram] = {}
        self.greeting: dict[tuple[str, str], m.BucketHistogram] = {}
        self.setup: dict[tuple[str], m.BucketHistogram] = {}
        self.users = 0
        self.workers = 0
        self.locust_cpu_warning = False
        self.turn_outcomes: Counter[str] = Counter()  # /metrics: live turns included
        self.live_turn_latency = Histogram()  # the progress line's: live turns included
        self._live_seen: dict[str, set[int]] = {}  # call id -> turn indexes seen live
        self._live_marked: dict[str, set[str]] = {}  # call id -> "setup", "greeting" seen live
        # barge-in reaction by (scenario, transport, turn); barge-ins by outcome; failed
        # expect: checks by (scenario, transport): from finished calls' records
        self.bargein: dict[tuple[str, str, str], m.BucketHistogram] = {}
        self.bargein_outcomes: Counter[str] = Counter()
        self.expect_failed: Counter[tuple[str, str]] = Counter()
        self._merge_cache: dict[str, tuple[tuple[bytes, ...], Histogram]] = {}

    def declare_series(self, turns_by_scenario: dict[str, int], transport: str) -> None:
        """Export the run's latency histograms at zero before any call reports.

        A series that first appears with its count already at 2 shows Prometheus no
        increase (``rate()`` starts from its first sample): in a short run where
        every call of a scenario finishes within one scrape, latency panels would
        stay empty. Zero series from the start make every observation an increase.
        """
        self._hist(self.setup, (transport,), m.SETUP_BUCKETS)
        for scenario, turns in turns_by_scenario.items():
            self._hist(self.greeting, (scenario, transport))
            for index in range(turns):
                self._hist(self.turn_latency, (scenario, transport, str(index)))

    # ---- input -------------------------------------------------------------------

    def add_report(self, node_id: str, payload: Any) -> None:
        """One report of a caller process (untrusted): its snapshot, then its records.

        The snapshot goes first: its live turns must be known before the records
        of the calls they belong to.
        """
        if not isinstance(payload, dict) or not payload.keys() <= {"records", "node"}:
            self.reject("snapshots", node_id, WireError("the report is not a mapping of "
                                                        "records and node"))
            return
        if payload.get("node") is not None:
            self.update_node(node_id, payload["node"])
        self.add_records(node_id, payload.get("records", []))

    def add_records(self, node_id: str, records: Any) -> None:
        """Count and write finished calls' records; a bad one is rejected, never raised.

        A failed write (disk full) does not lose the record: it is counted in the
        summary and in :attr:`records_not_written`.
        """
        if not isinstance(records, list):
            self.reject("records", node_id, WireError(
                f"records is {type(records).__name__}, not a list"))
            return
        for data in records:
            try:
                rec = record_from_wire(data, scenarios=self.scenarios,
                                       transports=self.transports)
            except WireError as exc:
                self.reject("records", node_id, exc)
                continue
            self._record(rec)
            self.records_by_node[node_id] += 1
            self._observe(rec)

    def _record(self, rec: CallRecord) -> None:
        try:
            self.results.record_call(rec)  # counts first, then writes its lines
        except OSError as exc:
            self.records_not_written += 1
            if self.write_error is None:
                self.write_error = f"{type(exc).__name__}: {exc}"
                log.error("writing the results files failed (%s); calls go on being counted "
                          "in summary.json, but their lines are lost", self.write_error)

    def reject(self, kind: str, node_id: str, exc: Exception) -> None:
        """Count and drop something a process sent that cannot be trusted."""
        self.rejected[kind] += 1
        n = sum(self.rejected.values())
        if n <= MAX_WARNINGS:
            log.warning("rejected a %s from %s: %s", kind.rstrip("s"), str(node_id)[:80], exc)
        if n == MAX_WARNINGS:
            log.warning("further rejections are only counted (summary.json: swarm.rejected_*)")

    def _observe(self, rec: CallRecord) -> None:
        marked = self._live_marked.pop(rec.call_id, set())  # latencies already observed live
        if rec.setup_ns is not None and "setup" not in marked:
            self._observe_setup(rec.transport, rec.setup_ns)
        if rec.greeting_ns is not None and "greeting" not in marked:
            self._observe_greeting(rec.scenario, rec.transport, rec.greeting_ns)
        seen = self._live_seen.pop(rec.call_id, set())  # turns already observed live
        for turn in rec.turns:
            if turn.step == "silence":  # dead air (summary.json), not a turn
                continue
            if turn.index not in seen:
                self._observe_turn(rec.scenario, rec.transport, turn.index, turn.outcome,
                                   turn.latency_ns)
            if turn.bargein is not None:
                self.bargein_outcomes[turn.bargein] += 1
                reaction = turn.bargein_reaction_ns
                if reaction is not None:
                    turn_key = (rec.scenario, rec.transport, str(turn.index))
                    self._hist(self.bargein, turn_key).observe(max(0, reaction) / NS_PER_S)
            if turn.expect_ok is False:
                self.expect_failed[(rec.scenario, rec.transport)] += 1

    def _observe_turn(self, scenario: str, transport: str, index: int, outcome: str,
                      latency_ns: int | None) -> None:
        self.turn_outcomes[outcome] += 1
        if latency_ns is not None:
            self.live_turn_latency.record_ns(max(0, latency_ns))
            key = (scenario, transport, str(index))
            self._hist(self.turn_latency, key).observe(latency_ns / NS_PER_S)

    def add_live_turns(self, turns: list[dict[str, Any]]) -> None:
        """Turns of calls still in progress (see ``CallerNode.snapshot``), for /metrics.

        Each is observed once; when its call's record arrives only the turns not
        seen live are observed, so /metrics counts every turn exactly once.
        """
        for t in turns:
            if t["outcome"] in SILENCE_OUTCOMES:  # a silence step's line, not a turn
                continue
            seen = self._live_seen.setdefault(t["call_id"], set())
            if t["index"] in seen:
                continue
            seen.add(t["index"])
            self._observe_turn(t["scenario"], t["transport"], t["index"], t["outcome"],
                               t["latency_ns"])

    def add_live_calls(self, calls: list[dict[str, Any]]) -> None:
        """Set-up and greeting latencies of calls still in progress (see
        ``CallerNode.snapshot``), for /metrics: each observed once, as turns are."""
        for c in calls:
            marked = self._live_marked.setdefault(c["call_id"], set())
            if c["setup_ns"] is not None and "setup" not in marked:
                marked.add("setup")
                self._observe_setup(c["transport"], c["setup_ns"])
            if c["greeting_ns"] is not None and "greeting" not in marked:
                marked.add("greeting")
                self._observe_greeting(c["scenario"], c["transport"], c["greeting_ns"])

    def _observe_setup(self, transport: str, setup_ns: int) -> None:
        self._hist(self.setup, (transport,), m.SETUP_BUCKETS).observe(setup_ns / NS_PER_S)

    def _observe_greeting(self, scenario: str, transport: str, greeting_ns: int) -> None:
        self._hist(self.greeting, (scenario, transport)).observe(greeting_ns / NS_PER_S)

    @staticmethod
    def _hist(table: dict[Any, m.BucketHistogram], key: Any,
              bounds: tuple[float, ...] = m.LATENCY_BUCKETS) -> m.BucketHistogram:
        hist = table.get(key)
        if hist is None:
            hist = table[key] = m.BucketHistogram(bounds)
        return hist

    def update_node(self, node_id: str, snapshot: Any) -> None:
        """Replace a process's cumulative snapshot (see ``CallerNode.snapshot``).

        A snapshot that fails :func:`~loadcaller.swarm.wire.snapshot_from_wire`
        is rejected; the process's previous one stays.
        """
        try:
            if node_id not in self.nodes and len(self.nodes) >= MAX_NODES:
                raise WireError(f"more than {MAX_NODES} processes reporting")
            if not isinstance(node_id, str) or len(node_id) > 256:
                raise WireError("the process id is not a short string")
            snap = snapshot_from_wire(snapshot, scenarios=self.scenarios,
                                      transports=self.transports)
        except WireError as exc:
            self.reject("snapshots", node_id, exc)
            return
        self.add_live_turns(snap.pop("live_turns"))
        self.add_live_calls(snap.pop("live_calls"))
        if node_id not in self.process_index:
            workers = sum(1 for label in self.process_index.values() if label != "local")
            self.process_index[node_id] = "local" if node_id == "local" else str(workers)
        self.nodes[node_id] = snap

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

    def saturated_windows(self) -> list[dict[str, Any]]:
        """The run's saturated stretches, every process's windows merged (stretches.py).

        Each gets ``since_start_s`` ([from, to] in seconds since the load started)
        when the start is known.
        """
        out: list[dict[str, Any]] = merge_stretches(
            {n: s.get("stretches") or () for n, s in self.nodes.items()})
        if self.t0_monotonic is not None:
            for w in out:
                w["since_start_s"] = [round(max(0.0, w["from"] - self.t0_monotonic), 1),
                                      round(max(0.0, w["to"] - self.t0_monotonic), 1)]
        return out

    def _saturation(self, lag: Histogram) -> tuple[float, list[str]]:
        """Lag p99 and the reasons, if any, not to trust the run.

        Each process judges its media clock per window (calls/stretches.py: lag
        p99 above the threshold with at least :data:`MIN_LATE_TICKS` late ticks,
        or a skipped tick): one saturated window anywhere is enough, whatever
        the whole run's p99 says.
        """
        lag_p99 = lag.percentile_ms(99) if lag.count else 0.0
        skipped = sum(int(s.get("skipped_ticks", 0)) for s in self.nodes.values())
        reasons = []
        windows = self.saturated_windows()
        if windows:
            worst = max(w["lag_p99_ms"] for w in windows)
            reasons.append(f"media clock lag p99 up to {worst:.1f} ms > "
                           f"{self.saturation_lag_ms:g} ms (at least {MIN_LATE_TICKS} ticks "
                           f"late) or skipped ticks in {len(windows)} stretch(es) of the run")
        if skipped:
            reasons.append(f"{skipped} media clock ticks skipped")
        if self.locust_cpu_warning:
            reasons.append("Locust CPU warning (a caller process above 90% CPU)")
        return lag_p99, reasons

    def saturated(self) -> bool:
        """The final verdict: any window of any process saturated (or Locust's warning)."""
        return bool(self._saturation(self._merged("media_clock_lag"))[1])

    def saturated_now(self) -> bool:
        """The live verdict: a process's current or last window saturated."""
        return any(bool(s.get("saturated_now")) for s in self.nodes.values())

    def progress(self) -> dict[str, Any]:
        """The few figures a progress line shows, cheaply.

        Full summaries walk every histogram bucket while holding the GIL, which
        the loop thread's media clock would feel; this takes percentiles only.
        """
        r = self.results
        lat = self.live_turn_latency
        p50, p95 = lat.percentiles_ms((50, 95)) if lat.count else (None, None)
        lag = self._merged("media_clock_lag")
        lag_p99 = lag.percentile_ms(99) if lag.count else 0.0
        jitter = self._merged("send_jitter")
        return {
            "calls": {"finished": r.calls_finished,
                      "failed": sum(n for o, n in r.call_outcomes.items() if o not in NOT_FAILED)},
            # counts and percentiles as /metrics has them, the turns of calls in progress
            # included (the finished calls' alone said "turns 0", then "57 answered,
            # p50 -", for the first 24 s of the demo); summary.json has the final figures
            "turns": {"count": sum(self.turn_outcomes.values()),
                      "answered": self.turn_outcomes.get(TurnOutcome.ANSWERED, 0),
                      "latency_ms": {"p50": p50, "p95": p95}},
            "generator": {"media_clock_lag_ms": {"p99": lag_p99},
                          "send_jitter_ms": {"p99": jitter.percentile_ms(99) if jitter.count
                                             else 0.0},
                          "saturated": self.saturated_now()},
        }

    def generator_health(self) -> dict[str, Any]:
        """The merged health of every caller process; ``saturated`` decides trust."""
        lag = self._merged("media_clock_lag")
        _, reasons = self._saturation(lag)
        skipped = sum(int(s.get("skipped_ticks", 0)) for s in self.nodes.values())
        cpu = {n: float(s.get("cpu_percent", 0.0)) for n, s in self.nodes.items()}
        # the run's CPU per process (1 = one core busy); overall: the busiest process's,
        # since a caller process saturates alone
        runs = {n: {"mean": float(s.get("cpu_ratio_mean", 0.0)),
                    "peak": float(s.get("cpu_ratio_peak", 0.0))} for n, s in self.nodes.items()}
        return {
            "media_clock_lag_ms": lag.summary_ms(),
            "send_jitter_ms": self._merged("send_jitter").summary_ms(),
            "event_loop_lag_ms": self._merged("loop_lag").summary_ms(),
            "gevent_hub_lag_ms": self._merged("hub_lag").summary_ms(),
            "bridge_handoff_ms": {"to_loop": self._merged("handoff_to_loop").summary_ms(),
                                  "to_greenlet": self._merged("handoff_to_greenlet").summary_ms()},
            "skipped_ticks": skipped,
            "member_errors": sum(int(s.get("member_errors", 0)) for s in self.nodes.values()),
            "cpu_ratio_mean": max((r["mean"] for r in runs.values()), default=0.0),
            "cpu_ratio_peak": max((r["peak"] for r in runs.values()), default=0.0),
            "cpu_ratio_by_process": runs,
            # the machines' CPUs, agent and all (loadcaller/hostcpu.py): the busiest's
            "host_cpu": self._host_cpu(),
            # the last reporting interval's (the drain's), kept for older readers
            "cpu_percent": round(max(cpu.values(), default=0.0), 1),
            "cpu_percent_by_process": cpu,
            "processes": len(self.nodes),
            "saturation_lag_ms": self.saturation_lag_ms,
            "saturation_window_s": self.saturation_window_s,
            "windows_judged": sum(int(s.get("windows_judged", 0)) for s in self.nodes.values()),
            "saturated_windows": self.saturated_windows(),
            "saturated": bool(reasons),
            "saturation_reasons": reasons,
        }

    def _host_cpu(self) -> dict[str, float | int] | None:
        hosts = [s["host_cpu"] for s in self.nodes.values() if s.get("host_cpu")]
        if not hosts:
            return None
        return {key: max(h[key] for h in hosts)
                for key in ("busy_mean", "busy_peak", "steal_peak", "cpus")}

    def per_node_counts(self) -> dict[str, dict[str, Any]]:
        """Each process's own counters next to the records the aggregate got from it, keyed
        by Locust's node id, with the stable index /metrics labels its series with."""
        out: dict[str, dict[str, Any]] = {}
        for node_id, snap in sorted(self.nodes.items()):
            out[node_id] = {"process": self.process_index.get(node_id),  # /metrics' label
                            "started": int(snap.get("started", 0)),
                            "finished": int(snap.get("finished", 0)),
                            "turns": int(snap.get("turns", 0)),
                            "records_received": self.records_by_node.get(node_id, 0)}
            if node_id in self.lost_workers:
                out[node_id]["lost"] = True  # stopped answering: its calls in progress are lost
        return out

    def summary(self, run: dict[str, Any]) -> dict[str, Any]:
        """summary.json's content (the engine's schema plus ``swarm`` and ``open_model``)."""
        self.results.calls_started = sum(int(s.get("started", 0)) for s in self.nodes.values())
        out = self.results.summary(self.generator_health(), run)
        out["swarm"] = {"processes": self.per_node_counts(),
                        "workers_lost": sorted(self.lost_workers),
                        "rejected_records": self.rejected["records"],
                        "rejected_snapshots": self.rejected["snapshots"],
                        "rejected_messages": self.rejected["messages"],  # Locust's own
                        # counted in this summary, missing from calls.jsonl/turns.jsonl
                        "records_not_written": self.records_not_written,
                        "write_error": self.write_error}
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
        # every known outcome from zero, so that the first of each is an increase too
        turn_outcomes = {**dict.fromkeys(TURN_OUTCOMES, 0), **self.turn_outcomes}
        yield m.counter_family(m.TURNS_TOTAL, "Turns measured, by outcome", ("outcome",),
                               (((o,), n) for o, n in sorted(turn_outcomes.items())))
        yield m.histogram_family(m.BARGEIN_REACTION, "Caller's interrupting onset to the end "
                                 "of the agent's audio as heard", ("scenario", "transport", "turn"),
                                 sorted(self.bargein.items()))
        yield m.counter_family(m.BARGEINS_TOTAL, "Barge-ins, by what the agent did", ("outcome",),
                               (((o,), n) for o, n in sorted(self.bargein_outcomes.items())))
        yield m.counter_family(m.EXPECTATION_FAILED, "Replies that did not say what expect: "
                               "asked for", ("scenario", "transport"),
                               sorted(self.expect_failed.items()))
        yield m.histogram_family(m.GREETING_LATENCY, "Call answered to first agent speech",
                                 ("scenario", "transport"), sorted(self.greeting.items()))
        yield m.histogram_family(m.CALL_SETUP, "Dial to call set up", ("transport",),
                                 sorted(self.setup.items()))
        call_outcomes = {**dict.fromkeys(CALL_OUTCOMES, 0), **r.call_outcomes}
        yield m.counter_family(m.CALLS_TOTAL, "Calls finished, by outcome", ("outcome",),
                               (((o,), n) for o, n in sorted(call_outcomes.items())))
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
                               (m.SEND_JITTER, "send_jitter",
                                "Each frame's distance from its ideal send instant"),
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
        yield m.gauge_family(m.CPU_RATIO, "CPU of each caller process (1 = one core busy)",
                             ("process",),
                             sorted(((self.process_index.get(n, n),),
                                     float(s.get("cpu_percent", 0.0)) / 100.0)
                                    for n, s in self.nodes.items()))
        yield m.gauge_family(m.SATURATED, "1 when the generator itself is the bottleneck "
                             "in a process's current (or last) window", (),
                             [((), 1.0 if self.saturated_now() else 0.0)])
        yield m.counter_family(m.SATURATED_WINDOWS, "Windows in which a caller process's "
                               "generator saturated", (),
                               [((), sum(int(s.get("windows_saturated", 0))
                                         for s in self.nodes.values()))])
        if self.run_labels:
            labels = tuple(sorted(self.run_labels))
            yield m.gauge_family(m.RUN_INFO, "Always 1: names the run this process serves",
                                 labels, [(tuple(self.run_labels[k] for k in labels), 1.0)])

    def close(self) -> None:
        try:
            self.results.close()
        except OSError as exc:  # the last buffered lines could not be written either
            if self.write_error is None:
                self.write_error = f"{type(exc).__name__}: {exc}"
            log.error("closing the results files failed: %s", exc)


SILENCE_OUTCOMES = frozenset((TurnOutcome.REPROMPTED, TurnOutcome.NO_REPROMPT))
