"""Run a short swarm and, while calls are in progress, probe its loop thread.

Used by test_loop_thread.py as ``python tests/swarm/loop_probe.py AGENT_URL OUT.json``:
inside the uvloop thread of the running swarm, ``loop.run_in_executor`` and a
``threading.Thread`` + ``queue.Queue`` round trip must both complete (aiortc
depends on both; with Locust's default monkey patching they never do).
"""

from __future__ import annotations

import asyncio
import json
import queue
import sys
import threading
from pathlib import Path
from typing import Any

from loadcaller.swarm import bootstrap

bootstrap.patch()

import gevent  # noqa: E402

from loadcaller.compile import compile_profile  # noqa: E402
from loadcaller.profile import parse_profile  # noqa: E402
from loadcaller.swarm.coordinator import Coordinator  # noqa: E402
from loadcaller.swarm.options import SwarmOptions  # noqa: E402
from loadcaller.swarm.run import run_swarm  # noqa: E402

PROFILE = """
name: probe
target: {url: "%s"}
load: {users: 2, spawn_rate: 10, duration: 8s, stop_timeout: 0s}
scenarios:
  - name: quick
    steps: [wait_for_agent, {say: {phrase: hello_order}}, wait_for_agent, hangup]
"""


async def probe(loop_thread_id: int | None) -> dict[str, Any]:
    """Both round trips, each bounded by a timeout, from inside the loop."""
    loop = asyncio.get_running_loop()
    here = threading.get_ident()
    executor_ident = await asyncio.wait_for(
        loop.run_in_executor(None, threading.get_ident), 5.0)
    q: queue.Queue[int] = queue.Queue()
    t = threading.Thread(target=lambda: q.put(42), daemon=True)
    t.start()
    from_thread = await asyncio.wait_for(loop.run_in_executor(None, q.get, True, 5.0), 6.0)
    done = asyncio.Event()
    t2 = threading.Thread(target=lambda: loop.call_soon_threadsafe(done.set), daemon=True)
    t2.start()
    await asyncio.wait_for(done.wait(), 5.0)
    return {"in_loop_thread": here == loop_thread_id, "executor_thread": executor_ident,
            "loop_thread": here, "queue_value": from_thread, "callback_from_thread": True,
            "threading_patched": threading.Thread.__module__ != "threading"}


def main() -> int:
    url, out = sys.argv[1], Path(sys.argv[2])
    spec = compile_profile(parse_profile(PROFILE % url, "probe.yaml"))
    found: dict[str, Any] = {}

    def on_ready(c: Coordinator) -> None:
        def run_probe() -> None:
            for _ in range(200):  # bounded: up to 20 s for calls to be in progress
                if c.node is not None and c.node.active > 0:
                    break
                gevent.sleep(0.1)
            assert c.node is not None
            found["active_calls"] = c.node.active
            found.update(c.node.loop.run(lambda: probe(c.node.loop.thread_id),  # type: ignore[union-attr]
                                         timeout_s=15.0))

        gevent.spawn(run_probe)

    opts = SwarmOptions(metrics_port=None, progress_every_s=0, saturation_lag_ms=1000.0)
    summary, code = run_swarm(spec, opts, on_ready=on_ready)
    found["calls_finished"] = summary["calls"]["finished"]
    out.write_text(json.dumps(found))
    return code


if __name__ == "__main__":
    sys.exit(main())
