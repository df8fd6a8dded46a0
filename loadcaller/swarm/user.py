"""The Locust user: one synthetic caller placing one call after another.

Each call and each of its turns becomes a Locust request, so Locust's
statistics, web UI, ``--csv`` and ``--html`` show them: request type ``CALL``
named by scenario (response time = call duration) and ``TURN`` named by
scenario and turn index (response time = turn latency). Failed calls and
unanswered turns are Locust failures. Percentiles that count come from the
results directory's full histograms, not from Locust's rounded figures.
"""

from __future__ import annotations

import itertools
import random
import time
from typing import ClassVar

import gevent
from locust import User, constant, task

from loadcaller.calls.call import CallRecord
from loadcaller.calls.load import MIN_CALL_INTERVAL_S, SETUP_BACKOFF_S
from loadcaller.calls.results import reason_key
from loadcaller.compile import RunSpec
from loadcaller.media.outcomes import NOT_FAILED, CallOutcome
from loadcaller.swarm.node import CallerNode
from loadcaller.swarm.shapes import Open, OpenPacing
from loadcaller.timebase import NS_PER_MS

CALL = "CALL"
TURN = "TURN"


class CallFailed(Exception):
    """A call ended in a failure outcome (Locust failure for the CALL request)."""


class TurnNotAnswered(Exception):
    """A turn got no reply (Locust failure for the TURN request)."""


class VoiceUser(User):
    """Places calls through this process's :class:`CallerNode`."""

    node: ClassVar[CallerNode | None] = None
    open_shape: ClassVar[Open | None] = None
    wait_time = constant(0)
    _started: ClassVar[itertools.count[int]] = itertools.count()
    # Locust keeps a row per distinct failure message: reasons are pooled as summary.json's
    _failure_keys: ClassVar[set[str]] = set()

    def on_start(self) -> None:
        self._pacing: OpenPacing | None = None
        self._index = next(self._started)  # caller data's per_user row
        shape = self.open_shape
        if shape is not None:
            interval = shape.per_user_interval_s
            self._pacing = OpenPacing(interval, shape.late_after_s,
                                      time.monotonic() + random.uniform(0, interval))
            if self.node is not None:
                self.node.pacings.add(self._pacing)

    def on_stop(self) -> None:
        if self._pacing is not None and self.node is not None:
            # what it missed until now stays counted; it schedules nothing more
            self.node.pacings.discard(self._pacing)
            missed = self._pacing.overdue(time.monotonic())
            self.node.open_counts["scheduled"] += missed
            self.node.open_counts["missed"] += missed

    @task
    def call(self) -> None:
        node = self.node
        if node is None:
            raise RuntimeError("VoiceUser.node is not set: no caller node in this process")
        if self._pacing is not None:
            start, missed = self._pacing.next_start(time.monotonic())
            node.open_counts["scheduled"] += missed + 1
            node.open_counts["missed"] += missed
            gevent.sleep(max(0.0, start - time.monotonic()))
            node.open_counts["started"] += 1
        started = time.monotonic()
        rec = node.place_call(self._index)
        self._report(rec)
        if self._pacing is None:  # the open model's pacing sets its own starts
            if rec.outcome == CallOutcome.FAILED_SETUP:
                gevent.sleep(SETUP_BACKOFF_S)
            else:  # an agent that ends every call at once is not dialled 500 times a second
                gevent.sleep(max(0.0, started + MIN_CALL_INTERVAL_S - time.monotonic()))

    def _report(self, rec: CallRecord) -> None:
        fire = self.environment.events.request.fire
        failed = rec.outcome not in NOT_FAILED
        error = None
        if failed:
            key = reason_key(VoiceUser._failure_keys, rec.outcome, rec.reason)
            VoiceUser._failure_keys.add(key)
            error = CallFailed(key)
        fire(request_type=CALL, name=rec.scenario,
             response_time=(rec.t_end_ns - rec.t_start_ns) / NS_PER_MS, response_length=0,
             exception=error, context={"call_id": rec.call_id})
        for turn in rec.turns:
            if turn.step == "silence":  # dead air, not a turn (summary.json's dead_air)
                continue
            lat = turn.latency_ns
            fire(request_type=TURN, name=f"{rec.scenario} turn {turn.index}",
                 response_time=0.0 if lat is None else lat / NS_PER_MS, response_length=0,
                 exception=None if lat is not None else TurnNotAnswered(turn.outcome),
                 context={"call_id": rec.call_id})


def attach_node(node: CallerNode, spec: RunSpec) -> None:
    """Make this process's users place their calls through ``node``."""
    shape = spec.shape
    node.open_model = isinstance(shape, Open)
    VoiceUser.node = node
    VoiceUser.open_shape = shape if isinstance(shape, Open) else None
