"""The caller side of one Locust process: loop thread, engine, outbox, health.

How this works: :class:`CallerNode` starts the process's uvloop thread and its
:class:`~loadcaller.engine.Engine`. Locust users call :meth:`place_call` from
their greenlets. The engine reports every finished call (completed, failed or
cancelled) on the loop thread; the node puts the record in an outbox that
whoever ships results drains (:meth:`drain`, on the hub thread): every record
leaves exactly once (a shipper that fails after draining hands them back with
:meth:`put_back`). :meth:`snapshot` is the process's cumulative state
(counters, health histograms), plus the turns measured since the last
snapshot in calls still in progress (so /metrics shows turns while long calls
go on; the aggregate never counts a turn twice).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import itertools
import os
import resource
import time
import uuid
from typing import Any

import gevent

from loadcaller.calls.call import CallRecord
from loadcaller.calls.clock import SATURATION_LAG_MS
from loadcaller.calls.histogram import Histogram
from loadcaller.calls.stretches import WINDOW_S
from loadcaller.compile import RunSpec
from loadcaller.engine import Engine
from loadcaller.hostcpu import HostCpu
from loadcaller.swarm.bridge import LoopThread
from loadcaller.swarm.shapes import OpenPacing
from loadcaller.swarm.wire import record_to_wire
from loadcaller.timebase import now_ns

LAG_PROBE_S = 0.05  # how often the loop and hub lag probes wake
CPU_WINDOW_S = 5.0
SNAPSHOT_TIMEOUT_S = 10.0  # the loop thread answers in microseconds unless it is stuck


@dataclasses.dataclass(slots=True)
class _LiveSent:
    """What a call in progress has sent to live /metrics so far."""

    turns: int = 0
    setup: bool = False
    greeting: bool = False


class CpuMeter:
    """This process's CPU use: over the last few seconds (percent of one core), and
    the run's mean and peak (ratios, 1 = one core busy; the peak over whole
    :data:`CPU_WINDOW_S` windows, the mean until one has passed)."""

    def __init__(self) -> None:
        self._start = self._mark = (time.monotonic(), _cpu_s())
        self._last = 0.0
        self.peak: float | None = None

    def percent(self) -> float:
        wall, cpu = time.monotonic(), _cpu_s()
        dt = wall - self._mark[0]
        if dt >= 0.5:
            self._last = round(100.0 * (cpu - self._mark[1]) / dt, 1)
        if dt >= CPU_WINDOW_S:
            self._mark = (wall, cpu)
            self.peak = max(self.peak or 0.0, self._last / 100.0)
        return self._last

    def run_ratios(self) -> tuple[float, float]:
        """(mean, peak) CPU since this process started placing calls."""
        wall, cpu = time.monotonic(), _cpu_s()
        mean = (cpu - self._start[1]) / max(1e-9, wall - self._start[0])
        return round(mean, 3), round(max(self.peak if self.peak is not None else mean, mean), 3)


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class CallerNode:
    """Runs calls for Locust users in this process (see the module docstring)."""

    def __init__(self, spec: RunSpec, *, node_id: str | None = None,
                 saturation_lag_ms: float = SATURATION_LAG_MS,
                 saturation_window_s: float = WINDOW_S) -> None:
        self.spec = spec
        self.node_id = node_id or f"{os.uname().nodename}-{os.getpid()}"
        self._tag = uuid.uuid4().hex[:6]
        self._ids = itertools.count(1)
        self.loop = LoopThread()
        self.loop.start()
        self.engine = Engine(spec, None, saturation_lag_ms=saturation_lag_ms,
                             saturation_window_s=saturation_window_s)
        self.engine.on_call_end.append(self._on_call_end)
        self._outbox: collections.deque[dict[str, Any]] = collections.deque()
        self._live_sent: dict[str, _LiveSent] = {}  # call id -> what was sent live
        self.loop_lag = Histogram()  # the hub thread's, from the loop's _loop_lags
        self._loop_lags: list[int] = []  # loop thread: probe values not yet snapshot
        # the hub thread's copies of the media clock's histograms (Batched.take_new)
        self._health: dict[str, Histogram] = {}
        self.hub_lag = Histogram()
        self.open_counts = {"scheduled": 0, "started": 0, "missed": 0}
        self.open_model = False
        self.pacings: set[OpenPacing] = set()  # open model: each live user's schedule
        self.loop.call_soon(self._start_loop_probe)
        self._hub_probe = gevent.spawn(self._probe_hub)
        self._cpu = CpuMeter()
        self._host = HostCpu()  # the machine's, agent and all (loadcaller/hostcpu.py)

    # ---- calls -----------------------------------------------------------------

    def place_call(self, user: int | None = None) -> CallRecord:
        """Place one call from a greenlet; killing the greenlet hangs the call up.

        ``user``: the Locust user's index in this process (caller data's per_user row).
        """
        call_id = f"{self._tag}-{next(self._ids):06d}"
        return self.loop.run(lambda: self.engine.place_call(call_id, user))

    def _on_call_end(self, rec: CallRecord) -> None:  # loop thread
        self._live_sent.pop(rec.call_id, None)
        self._outbox.append(record_to_wire(rec))

    def _live(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:  # loop thread
        """What calls still in progress measured and did not send yet, for live /metrics:
        (their new turns, their set-up and greeting latencies once known)."""
        turns, calls = [], []
        for call in self.engine.active:
            rec = call.record
            sent = self._live_sent.get(rec.call_id)
            if sent is None:
                sent = self._live_sent[rec.call_id] = _LiveSent()
            for turn in rec.turns[sent.turns:]:
                turns.append({"call_id": rec.call_id, "scenario": rec.scenario,
                              "transport": rec.transport, "index": turn.index,
                              "outcome": turn.outcome, "latency_ns": turn.latency_ns})
            sent.turns = len(rec.turns)
            setup = None if sent.setup else rec.setup_ns
            greeting = None if sent.greeting or call.script is None else call.script.greeting_ns
            if setup is not None or greeting is not None:
                calls.append({"call_id": rec.call_id, "scenario": rec.scenario,
                              "transport": rec.transport, "setup_ns": setup,
                              "greeting_ns": greeting})
                sent.setup |= setup is not None
                sent.greeting |= greeting is not None
        return turns, calls

    def drain(self) -> list[dict[str, Any]]:
        """Take every finished record not yet taken (hub thread)."""
        out = []
        while self._outbox:
            out.append(self._outbox.popleft())
        return out

    def put_back(self, records: list[dict[str, Any]]) -> None:
        """Return drained records that could not be shipped; they leave first next time."""
        self._outbox.extendleft(reversed(records))

    @property
    def active(self) -> int:
        return len(self.engine.active)

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait (greenlet) until no call is in progress; False on timeout."""
        deadline = now_ns() + int(timeout_s * 1e9)
        while self.engine.active and now_ns() < deadline:
            gevent.sleep(0.05)
        return not self.engine.active

    # ---- health ----------------------------------------------------------------

    def _start_loop_probe(self) -> None:  # loop thread
        asyncio.get_running_loop().create_task(self._probe_loop(), name="loop-lag-probe")

    async def _probe_loop(self) -> None:
        while True:
            t = now_ns()
            await asyncio.sleep(LAG_PROBE_S)
            self._loop_lags.append(max(0, now_ns() - t - int(LAG_PROBE_S * 1e9)))

    def _loop_lag_new(self) -> list[int]:  # loop thread
        new, self._loop_lags = self._loop_lags, []
        return new

    def _probe_hub(self) -> None:
        while True:
            t = now_ns()
            gevent.sleep(LAG_PROBE_S)
            self.hub_lag.record_ns(max(0, now_ns() - t - int(LAG_PROBE_S * 1e9)))

    def snapshot(self) -> dict[str, Any]:
        """Cumulative counters and health histograms (encoded), for the aggregate."""
        async def take() -> dict[str, Any]:  # in the loop thread: counters and copies
            engine = self.engine
            results = engine.results
            live_turns, live_calls = self._live()
            return {
                "started": results.calls_started,
                "finished": results.calls_finished,
                "turns": sum(results.turn_outcomes.values()),
                "active": len(engine.active),
                # copied here, flushed and encoded in this thread below: flushes and
                # encodes took 3-7 ms of the loop at once every second (every frame due
                # then left late)
                **{key: batched.take_new(fresh=key not in self._health)
                   for key, batched in engine.clock.health_batches().items()},
                "loop_lag": self._loop_lag_new(),
                "skipped_ticks": engine.clock.skipped,
                "member_errors": engine.clock.member_errors,
                "live_turns": live_turns,
                "live_calls": live_calls,
                # the verdict per window (calls/stretches.py), the open one's so far
                "stretches": [[s.start_ns, s.end_ns, s.lag_p99_ns, s.windows]
                              for s in engine.windows.all_stretches()],
                "saturated_now": engine.windows.saturated_now(),
                "windows_judged": engine.windows.judged,
                "windows_saturated": engine.windows.saturated_windows,
            }

        try:
            snap = self.loop.run(take, timeout_s=SNAPSHOT_TIMEOUT_S)
        except BaseException:  # what a late take handed over is lost: start afresh
            self._health.clear()
            raise
        for key, batched in self.engine.clock.health_batches().items():
            base, new = snap[key]
            if base is not None:
                self._health[key] = base
            batched.absorb(self._health[key], new)
            snap[key] = self._health[key].encode()
        for ns in snap["loop_lag"]:
            self.loop_lag.record_ns(ns)
        snap["loop_lag"] = self.loop_lag.encode()
        snap["cpu_percent"] = self._cpu.percent()
        snap["cpu_ratio_mean"], snap["cpu_ratio_peak"] = self._cpu.run_ratios()
        self._host.sample()
        host = self._host.ratios()
        if host is not None:
            snap["host_cpu"] = host
        snap["hub_lag"] = self.hub_lag.encode()
        snap["handoff_to_loop"] = self.loop.to_loop.encode()
        snap["handoff_to_greenlet"] = self.loop.to_greenlet.encode()
        if self.open_model:
            # starts overdue right now count as missed already, busy users or not
            now = time.monotonic()
            overdue = sum(p.overdue(now) for p in self.pacings)
            counts = dict(self.open_counts)
            counts["missed"] += overdue
            counts["scheduled"] += overdue
            snap["open"] = counts
        return snap

    def close(self) -> None:
        """Stop the probes, the media clock and the loop thread."""
        self._hub_probe.kill(block=False)
        try:
            self.loop.run(self.engine.close, timeout_s=10.0)
        finally:
            self.loop.stop()
