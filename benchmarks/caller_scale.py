"""Caller-process CPU per concurrent call and media-clock lag at 100/300/600 calls.

    python benchmarks/caller_scale.py [--calls 100 300 600] [--seconds 20]

The target (benchmarks/twilio_target.py) runs in another process. Each level
holds N concurrent calls for --seconds (calls last longer than the window, so
concurrency stays at N), then reports caller CPU % of one core (and the share of it
spent in the kernel: sends and receives on loopback), CPU per call,
the media clock's lag p50/p99, sub-tick duration p99, send jitter p99 and the
periods it skipped (a clock that skips sends fewer frames: its CPU per call is
then not comparable). Goal: 500 concurrent
calls in one process with lag p99 < 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from procstat import cpu_seconds

from loadcaller.audio.pack import load_pack_audio
from loadcaller.calls.load import LoadPlan
from loadcaller.calls.scenario import CallPolicy, Pause, Say, Scenario, WaitForAgent
from loadcaller.calls.utterance import make_utterance
from loadcaller.compile import RunSpec
from loadcaller.engine import Engine
from loadcaller.transports.twilio_stream import TwilioTarget

HERE = Path(__file__).parent


def cpu() -> tuple[float, float]:
    """This process's (user, system) CPU seconds."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime, ru.ru_stime


async def level(url: str, n: int, seconds: float, target_pid: int = 0) -> dict[str, float]:
    say = Say(make_utterance("hello", load_pack_audio("hello_order")))
    steps = (WaitForAgent(),) + (say, WaitForAgent(), Pause(500_000_000)) * 50
    spec = RunSpec(name="bench", target=TwilioTarget(url=url, setup_timeout=30),
                   plan=LoadPlan(n, 1000, seconds), policy=CallPolicy(turn_timeout_ns=10**10),
                   scenarios=(Scenario("bench", steps),), seed=1)
    engine = Engine(spec, None)
    tasks = []
    for i in range(n):
        tasks.append(asyncio.ensure_future(engine.place_call(f"c{i}")))
        if i % 50 == 49:
            await asyncio.sleep(0.05)
    while len(engine.active) < n or any(c.record.setup_ns is None for c in engine.active):
        await asyncio.sleep(0.2)
    await asyncio.sleep(2.0)  # settle
    engine.clock.lag = type(engine.clock.lag)()
    engine.clock.spread = type(engine.clock.spread)()
    engine.clock.send_jitter = type(engine.clock.send_jitter)()
    skipped0 = engine.clock.skipped
    c0, t0 = cpu(), time.monotonic()
    tc0 = cpu_seconds(target_pid) if target_pid else 0.0
    await asyncio.sleep(seconds)
    c1, t1 = cpu(), time.monotonic()
    tc1 = cpu_seconds(target_pid) if target_pid else 0.0
    lag, spread = engine.clock.lag.summary_ms(), engine.clock.spread.summary_ms()
    jitter = engine.clock.send_jitter.summary_ms()
    turns = engine.results.turn_latency.count
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await engine.close()
    user, system = c1[0] - c0[0], c1[1] - c0[1]
    cpu_pct = 100 * (user + system) / (t1 - t0)
    return {"calls": n, "cpu_pct": cpu_pct, "cpu_ms_per_call_s": 10 * cpu_pct / n,
            "sys_share": 100 * system / max(user + system, 1e-9),
            "lag_p50": lag["p50"], "lag_p99": lag["p99"], "tick_p99": spread["p99"],
            "jitter_p99": jitter["p99"], "skipped": engine.clock.skipped - skipped0,
            "ticks": lag["count"], "turns_done": turns,
            "target_cpu_pct": 100 * (tc1 - tc0) / (t1 - t0), "load": os.getloadavg()[0]}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--calls", type=int, nargs="+", default=[100, 300, 600])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--reply-every", type=float, default=5.0,
                    help="the target's reply interval per call (s)")
    ap.add_argument("--chunk-ms", type=int, default=0,
                    help="the target streams each reply in messages of this many ms, paced "
                         "(0: one burst per reply)")
    args = ap.parse_args()
    target = subprocess.Popen([sys.executable, str(HERE / "twilio_target.py"), "--every",
                               str(args.reply_every), "--chunk-ms", str(args.chunk_ms)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert target.stdout is not None
        url = target.stdout.readline().split()[1]
        print(f"target {url} (separate process)")
        print(f"{'calls':>6} {'CPU %':>7} {'sys %':>6} {'CPU ms/call/s':>14} {'lag p50':>8} "
              f"{'lag p99':>8} {'tick p99':>9} {'jitter p99':>10} {'skipped':>8} "
              f"{'target CPU %':>13} {'loadavg':>8}")
        for n in args.calls:
            r = await level(url, n, args.seconds, target.pid)
            print(f"{r['calls']:>6} {r['cpu_pct']:>7.1f} {r['sys_share']:>6.0f} "
                  f"{r['cpu_ms_per_call_s']:>14.3f} "
                  f"{r['lag_p50']:>8.2f} {r['lag_p99']:>8.2f} {r['tick_p99']:>9.2f} "
                  f"{'-' if r['jitter_p99'] is None else format(r['jitter_p99'], '.2f'):>10} "
                  f"{r['skipped']:>8} "
                  f"{r['target_cpu_pct']:>13.1f} {r['load']:>8.2f}", flush=True)
    finally:
        target.terminate()


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
