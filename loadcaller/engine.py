"""The engine: places calls for a compiled run and gathers what they measured.

Free of Locust and gevent, so it runs (and is tested) as a library: the swarm
(``loadcaller/swarm/``) drives :meth:`Engine.place_call` from Locust users, one
engine per process, in the process's asyncio loop thread.

:meth:`Engine.place_call` always returns a record: whatever building the
transport or running the call raises becomes that call's ``error`` (reason
``local: ...``) rather than an exception in a Locust user, and a call that
failed that way before it was set up backs off (:data:`SETUP_BACKOFF_S`)
before the next, as a ``failed_setup`` does in the swarm, so a broken
configuration cannot spin a core redialling.

Each call holds a file descriptor or more (a TCP socket; a SIP call two or
three), so the engine raises the soft RLIMIT_NOFILE to the hard limit
(:func:`raise_open_file_limit`); :func:`open_file_warning` says when even that
is short for the callers planned. A call that still runs out is ``error:
local: too many open files ...``, not the agent's ``failed_setup``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import random
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chaos.faultset import FaultSet
from chaos.packet import build_impairment
from chaos.proxy import ChaosProxy
from loadcaller.calls.call import Call, CallRecord
from loadcaller.calls.callerdata import target_for_row
from loadcaller.calls.clock import SATURATION_LAG_MS, MediaClock
from loadcaller.calls.histogram import warm_histograms
from loadcaller.calls.load import SETUP_BACKOFF_S
from loadcaller.calls.results import Results
from loadcaller.calls.scenario import CallPolicy, Scenario
from loadcaller.calls.stretches import WINDOW_S, WindowedLag
from loadcaller.compile import RunSpec
from loadcaller.media.impair import Impairment
from loadcaller.media.outcomes import CallOutcome
from loadcaller.timebase import now_ns
from loadcaller.transports.base import CallTransport, close_shared

log = logging.getLogger(__name__)

FDS_PER_CALLER = 3  # a SIP call: signalling, RTP (and a TCP/TLS stream); Twilio needs 1
FDS_BASE = 64  # the process itself: Locust, /metrics, results files, the loop, logs


def raise_open_file_limit() -> tuple[int, int]:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit; return (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (OSError, ValueError):  # some kernels cap it below the hard limit
            pass
    return soft, hard


def planned_users(spec: RunSpec) -> int:
    """The most callers the run's plan or load shape asks for at once."""
    counts = [spec.plan.users]
    for name in ("users", "start_users", "end_users", "max_users", "spike_users",
                 "max_concurrency"):
        value = getattr(spec.shape, name, None)
        if isinstance(value, int):
            counts.append(value)
    return max(counts)


def open_file_warning(users_per_process: int) -> str | None:
    """A warning when the open-file limit (raised first) is short for this many callers."""
    soft, hard = raise_open_file_limit()
    need = FDS_BASE + FDS_PER_CALLER * users_per_process
    if soft >= need:
        return None
    return (f"the open-file limit is {soft} (hard limit {hard}) but {users_per_process} callers "
            f"per process may need about {need}: calls beyond it end as error: local: too many "
            "open files. Raise it (ulimit -n, or LimitNOFILE= for a service) or spread the "
            "callers over more processes (--processes)")


class Engine:
    """Places calls and owns the process's media clock and results."""

    def __init__(self, spec: RunSpec, results_dir: Path | None, *,
                 saturation_lag_ms: float = SATURATION_LAG_MS,
                 saturation_window_s: float = WINDOW_S) -> None:
        self.spec = spec
        raise_open_file_limit()
        warm_histograms()  # build lookup tables now, not inside a tick
        self.clock = MediaClock()
        self.windows = self.clock.windows = WindowedLag(threshold_ms=saturation_lag_ms,
                                                        window_s=saturation_window_s)
        self.results = Results(results_dir, phases=spec.chaos is not None)
        self.rng = random.Random(spec.seed)
        self.active: set[Call] = set()
        self._weights = [s.weight for s in spec.scenarios]
        self._persona_weights = [p.weight for p in spec.personas]
        self._t0 = time.monotonic()
        self._cpu0 = _cpu_s()
        # hooks (metrics, the swarm's record shipping): called in the loop with each record
        self.on_call_end: list[Callable[[CallRecord], None]] = []
        self.proxy: ChaosProxy | None = None
        self._follower: FaultSet | None = None
        self._starting: asyncio.Future[None] | None = None
        self._calls = 0
        self.setup_backoff_s = SETUP_BACKOFF_S

    async def start(self) -> None:
        """Start what the run needs besides calls: the chaos proxy, if the profile has one.

        Idempotent; :meth:`place_call` calls it. Start it yourself to learn the proxy's
        bound ports before the agent starts (``engine.proxy.listeners``).
        """
        if self._starting is None:  # the first caller starts it; the others wait for it
            self._starting = asyncio.ensure_future(self._start())
        await asyncio.shield(self._starting)

    async def _start(self) -> None:
        if self.spec.chaos is None:
            return
        proxy = ChaosProxy(self.spec.chaos, seed=self.spec.seed)
        try:
            await proxy.start()
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            # Another process of this run (--processes N) owns the proxy. Follow its
            # timeline, started at about the same instant, to tag this process's turns.
            log.warning("chaos proxy: %s; another process of this run serves it, "
                        "turns here are tagged from the same timeline", exc.strerror)
            follower = FaultSet(seed=self.spec.seed, clock=time.monotonic)
            follower.load(self.spec.chaos, time.monotonic())
            self._follower = follower
            return
        self.proxy = proxy

    def faults_now(self) -> list[str]:
        """Names of the chaos faults active right now (tags every measured turn)."""
        if self.proxy is not None:
            return self.proxy.active_faults()
        return self._follower.active() if self._follower is not None else []

    def _impairment(self, spec: Any, salt: int) -> Impairment | None:
        if spec is None:
            return None
        seed = (self.spec.seed or 0) * 1_000_003 + self._calls * 2 + salt
        return build_impairment(spec, random.Random(seed))

    def _finished(self, rec: CallRecord) -> None:
        self.tag_saturated(rec)
        try:
            self.results.record_call(rec)
            for hook in self.on_call_end:
                hook(rec)
        except Exception:  # e.g. the disk is full: say so, and let the calls go on
            log.exception("recording call %s failed", rec.call_id)

    def tag_saturated(self, rec: CallRecord) -> None:
        """Tag the turns measured while this process's generator was saturated.

        Decided as the call ends, by every window overlapping the turn's measured
        span (speech end to reply onset; speech end alone for an unanswered turn):
        closed windows by their verdict, the open one by its ticks so far, which
        include every tick of the turn. Lag that comes later did not touch it.
        """
        stretches = self.windows.all_stretches()
        if not stretches:
            return
        rec.turns = [dataclasses.replace(t, generator_saturated=True)
                     if self.windows.saturated_between(
                         t.t_speech_end_ns, t.t_reply_onset_ns or t.t_speech_end_ns, stretches)
                     else t for t in rec.turns]

    def pick(self, user: int | None = None) -> tuple[Scenario, CallPolicy, str, int | None]:
        """A call's scenario, policy, persona name and caller-data row (seeded choices).

        The scenario by its weight; its persona the one it names, else by the
        personas' weights; the row by ``data.order`` (``user``: the Locust user's index).
        """
        spec = self.spec
        si = self.rng.choices(range(len(spec.scenarios)), self._weights)[0]
        if not spec.personas:
            return spec.scenarios[si], spec.policy, "", None
        named = spec.scenario_persona[si] if spec.scenario_persona else None
        persona = spec.personas[named] if named is not None else self.rng.choices(
            spec.personas, self._persona_weights)[0]
        row = None if spec.data is None else spec.data.pick(
            calls=self._calls - 1, rng=self.rng, user=user)
        return persona.scenarios[row or 0][si], persona.policy, persona.name, row

    def new_transport(self, call_id: str, row: int | None = None) -> CallTransport:
        """The target's transport for one call, inside the profile's media impairments."""
        target = self.spec.target
        if row is not None and self.spec.data is not None:
            target = target_for_row(target, self.spec.data.rows[row])
        transport = target.new_transport(call_id=call_id)
        outbound = self._impairment(self.spec.media_outbound, 0)
        inbound = self._impairment(self.spec.media_inbound, 1)
        if outbound is None and inbound is None:
            return transport
        return transport.with_impairment(outbound=outbound, inbound=inbound)

    async def place_call(self, call_id: str, user: int | None = None) -> CallRecord:
        """Place one call and run its scenario to the end; the record is written.

        Never raises but for cancellation: see the module docstring.
        """
        await self.start()
        self.clock.start()
        self._calls += 1
        scenario, policy, persona, row = self.pick(user)
        self.results.calls_started += 1
        t_start = now_ns()
        try:
            call = Call(call_id=call_id, transport=self.new_transport(call_id, row),
                        scenario=scenario, clock=self.clock, policy=policy,
                        on_finish=self._finished,
                        faults_now=self.faults_now if self.spec.chaos is not None else None)
            call.record.persona = persona
        except Exception as exc:
            rec = CallRecord(call_id, self.spec.transport, scenario.name, CallOutcome.ERROR,
                             f"local: cannot start the call's transport: "
                             f"{type(exc).__name__}: {exc}", t_start_ns=t_start,
                             t_end_ns=now_ns(), persona=persona)
            self._finished(rec)
            await asyncio.sleep(self.setup_backoff_s)
            return rec
        self.active.add(call)
        try:
            rec = await call.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Call.run records its own failures; this is a bug in it
            log.exception("call %s", call_id)
            rec = call.fail(f"local: {type(exc).__name__}: {exc}")
        finally:
            self.active.discard(call)
        if rec.outcome == CallOutcome.ERROR and rec.setup_ns is None:
            await asyncio.sleep(self.setup_backoff_s)  # a local failure before the call was up
        return rec

    def generator_health(self) -> dict[str, Any]:
        """The generator's own health: is it, not the agent, the bottleneck?"""
        wall = max(1e-9, time.monotonic() - self._t0)
        lag = self.clock.lag.summary_ms()
        return {
            "media_clock_lag_ms": lag,
            "tick_ms": self.clock.spread.summary_ms(),
            "send_jitter_ms": self.clock.send_jitter.summary_ms(),
            "skipped_ticks": self.clock.skipped,
            "member_errors": self.clock.member_errors,
            "cpu_percent": round(100.0 * (_cpu_s() - self._cpu0) / wall, 1),
            "saturated": bool(self.windows.all_stretches()),  # any window (stretches.py)
        }

    async def close(self) -> None:
        await self.clock.stop()
        if self.proxy is not None:
            await self.proxy.stop()
            self.proxy = None
        await close_shared()
        self.results.close()


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def drain(engine: Engine, timeout_s: float = 5.0) -> None:
    """Wait briefly for calls still hanging up."""
    deadline = time.monotonic() + timeout_s
    while engine.active and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
