"""Timing error the gevent/asyncio bridge adds, at 200 concurrent callers.

Run from the repository root::

    python benchmarks/swarm_bridge.py [--users 200] [--duration 30]

Runs the same closed load twice against the reference agent (in its own
process): once under Locust (``loadcaller run``) and once on a plain asyncio
closed loop over the same engine (written here). Prints, for the Locust run, the bridge's hand-off
delays (greenlet -> loop: how late a call starts; loop -> greenlet: how late
Locust hears of it), and for both runs the media clock lag, which is what a
turn measurement can be off by: the difference is the bridge's cost.
Goal: p99 of the added error <= 2 ms. This prints figures; it does not pass or fail.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from swarm_common import AgentProcess, run_cli, tempdir, write_profile

PLAIN = """
import asyncio, sys, time
from pathlib import Path
from loadcaller.compile import compile_profile
from loadcaller.engine import Engine, drain
from loadcaller.profile import load_profile
from loadcaller.runner import run_async

async def main():
    spec = compile_profile(load_profile(Path(sys.argv[1])))
    engine, plan = Engine(spec, Path(sys.argv[2])), spec.plan
    end = time.monotonic() + plan.duration_s

    async def user(u):
        n = 0
        while time.monotonic() < end:
            n += 1
            await engine.place_call(f"u{u}-{n}")

    users = []
    for u in range(plan.users):  # started at the profile's spawn rate, like Locust's
        users.append(asyncio.ensure_future(user(u)))
        await asyncio.sleep(1 / plan.spawn_rate)
    await asyncio.wait(users, timeout=plan.duration_s + plan.stop_timeout_s)
    for task in users:
        task.cancel()
    await drain(engine)
    engine.results.write_summary(engine.results.summary(engine.generator_health(), {}))
    await engine.close()

run_async(main())
"""


def fmt(s: dict) -> str:
    return f"p50 {s['p50'] or 0:7.3f} ms  p99 {s['p99'] or 0:7.3f} ms  (n={s['count']})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--duration", type=float, default=30.0)
    args = ap.parse_args()
    work = tempdir()
    agent = AgentProcess()
    try:
        profile = write_profile(work, agent.url, users=args.users, duration=f"{args.duration}s")
        swarm = run_cli(profile, work / "swarm", "--metrics-port", "-1")
        proc = subprocess.run([sys.executable, "-c", PLAIN, str(profile), str(work / "plain")],
                              capture_output=True, text=True, timeout=args.duration + 300)
        if proc.returncode != 0:
            raise RuntimeError(f"the plain asyncio run failed:\n{proc.stderr[-2000:]}")
        plain = json.loads((work / "plain" / "summary.json").read_text())
    finally:
        agent.stop()
    g, p = swarm["generator"], plain["generator"]
    print(f"{args.users} callers, {args.duration:g} s, reference agent in its own process")
    print(f"calls finished: locust {swarm['calls']['finished']}, "
          f"plain {plain['calls']['finished']}")
    print(f"bridge greenlet -> loop      {fmt(g['bridge_handoff_ms']['to_loop'])}")
    print(f"bridge loop -> greenlet      {fmt(g['bridge_handoff_ms']['to_greenlet'])}")
    print(f"media clock lag, locust      {fmt(g['media_clock_lag_ms'])}")
    print(f"media clock lag, plain       {fmt(p['media_clock_lag_ms'])}")
    print(f"event loop lag, locust       {fmt(g['event_loop_lag_ms'])}")
    print(f"gevent hub lag, locust       {fmt(g['gevent_hub_lag_ms'])}")
    added = (g["media_clock_lag_ms"]["p99"] or 0) - (p["media_clock_lag_ms"]["p99"] or 0)
    print(f"added by the bridge (lag p99, locust - plain): {added:+.3f} ms")
    print(f"turn latency p50/p95: locust {swarm['turns']['latency_ms']['p50']}/"
          f"{swarm['turns']['latency_ms']['p95']} ms, plain {plain['turns']['latency_ms']['p50']}/"
          f"{plain['turns']['latency_ms']['p95']} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
