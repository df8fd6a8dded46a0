"""Ship records while the loop thread does not answer: none may be lost.

Used by test_shipping.py as ``python tests/swarm/ship_probe.py OUT.json``. A
real :class:`CallerNode` holds one finished call's record; its loop thread is
then kept busy (a native wait), so a health snapshot times out. A worker's
report and a local run's ship are taken in that state, with the real
``Worker._on_report`` and ``Coordinator.ship`` (their ``self`` reduced to the
attributes they use). The record must come out of each exactly once: shipped,
or still in the outbox for the next report. Last, with the loop answering
again, Locust's send fails after the report was built: the record goes back.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from loadcaller.swarm import bootstrap

bootstrap.patch()

import gevent.lock  # noqa: E402
from locust.exception import RPCSendError  # noqa: E402

from loadcaller.calls.call import CallRecord  # noqa: E402
from loadcaller.compile import compile_profile  # noqa: E402
from loadcaller.profile import parse_profile  # noqa: E402
from loadcaller.swarm import node as node_module  # noqa: E402
from loadcaller.swarm.aggregate import Aggregate  # noqa: E402
from loadcaller.swarm.coordinator import Coordinator  # noqa: E402
from loadcaller.swarm.node import CallerNode  # noqa: E402
from loadcaller.swarm.worker import Worker  # noqa: E402

PROFILE = """name: probe
target: {url: "ws://127.0.0.1:9/media"}
load: {users: 1, duration: 1s}
scenarios:
  - name: quick
    steps: [wait_for_agent, hangup]
"""


def finished(node: CallerNode, call_id: str) -> None:
    """What the engine does when a call ends (its on_call_end hook)."""
    node._on_call_end(CallRecord(call_id, "twilio", "quick", "completed", "done",
                                 t_start_ns=10**12, t_end_ns=10**12 + 10**9))


def attempt(fn: Any, *args: Any) -> str | None:
    try:
        fn(*args)
    except BaseException as exc:  # what the old code let out (gevent.Timeout is one)
        return type(exc).__name__
    return None


def main() -> None:
    out: dict[str, Any] = {}
    node_module.SNAPSHOT_TIMEOUT_S = 0.5
    spec = compile_profile(parse_profile(PROFILE, "probe.yaml"))
    node = CallerNode(spec, node_id="probe")
    release = threading.Event()
    node.loop.call_soon(release.wait, 60)  # the loop thread stops answering

    finished(node, "w-1")
    worker = SimpleNamespace(node=node, _report_lock=gevent.lock.Semaphore(), _unsent={})
    data: dict[str, Any] = {}
    out["worker_raised"] = attempt(Worker._on_report, worker, "probe", data)
    out["worker_shipped"] = [r["call_id"] for r in data.get("loadcaller", {}).get("records", [])]
    out["worker_left"] = [r["call_id"] for r in node.drain()]

    finished(node, "c-1")
    results = Path(tempfile.mkdtemp())
    agg = Aggregate(results, saturation_lag_ms=5.0)
    coord = SimpleNamespace(node=node, agg=agg, _ship_lock=gevent.lock.Semaphore(),
                            runner=SimpleNamespace(user_count=0, cpu_warning_emitted=False))
    out["coordinator_raised"] = attempt(Coordinator.ship, coord)
    agg.close()
    out["coordinator_written"] = [json.loads(line)["call_id"] for line in
                                  (results / "calls.jsonl").read_text().splitlines()]
    out["coordinator_left"] = [r["call_id"] for r in node.drain()]

    release.set()  # the loop answers again; now Locust's send fails after the report
    finished(node, "s-1")

    def locust_send_stats(*_: Any) -> None:  # Locust's: fire report_to_master, then send
        Worker._on_report(worker, "probe", {})
        raise RPCSendError("ZMQ sent failure")

    worker._locust_send_stats = locust_send_stats
    send_stats = getattr(Worker, "_send_stats", None)  # None: Locust's own, unwrapped
    out["send_raised"] = attempt(send_stats or locust_send_stats, worker)
    out["send_left"] = [r["call_id"] for r in node.drain()]

    Path(sys.argv[1]).write_text(json.dumps(out))
    sys.stdout.flush()
    os._exit(0)  # the loop thread and the hub need no tidy shutdown here


if __name__ == "__main__":
    main()
