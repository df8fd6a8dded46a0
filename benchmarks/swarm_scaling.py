"""Concurrent calls sustained with media clock lag p99 < 5 ms, 1 and 2 processes.

Run from the repository root::

    python benchmarks/swarm_scaling.py [--step 50] [--max-users 400] [--step-time 15]

For each process count, one run with a step shape (``--step`` more callers
every ``--step-time`` seconds) against the reference agent in its own
process. ``/metrics`` is scraped every second; for each step the share of
media clock ticks later than 5 ms is computed from the merged
``loadcaller_media_clock_lag_seconds`` buckets over the step's steady part.
The highest step where that share stays under 1% (lag p99 < 5 ms) is what the
generator sustains. The agent shares this machine's cores, so on a small
machine it, not the callers, may be the limit: the table shows both.
This prints figures; it does not pass or fail.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from swarm_common import AgentProcess, scrape, tempdir, write_profile

LAG_LE = 'loadcaller_media_clock_lag_seconds_bucket{le="0.005"}'
LAG_ALL = "loadcaller_media_clock_lag_seconds_count"


def one_run(url: str, processes: int, step: int, max_users: int, step_time: float,
            port: int) -> list[tuple[int, float, float]]:
    """[(users, active calls, share of ticks > 5 ms)] per step."""
    steps = max_users // step
    duration = steps * step_time
    work = tempdir()
    shape = (f"shape: {{type: step, start_users: {step}, step_users: {step}, "
             f"step_time: {step_time}s, max_users: {max_users}}}")
    profile = write_profile(work, url, users=max_users, duration=f"{duration}s",
                            spawn_rate=max(step / 2, 10), extra=shape)
    args = [sys.executable, "-m", "loadcaller", "run", str(profile), "--results-dir",
            str(work / "r"), "--progress-every", "0", "--metrics-port", str(port),
            "--saturation-lag-ms", "1000"]
    if processes > 1:
        args += ["--processes", str(processes)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples: list[tuple[float, dict[str, float]]] = []
    t0 = None
    deadline = time.monotonic() + duration + 120
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            m = scrape(f"http://127.0.0.1:{port}/metrics")
        except OSError:
            time.sleep(0.5)
            continue
        if t0 is None and m.get("loadcaller_users", 0) > 0:
            t0 = time.monotonic()
        if t0 is not None:
            samples.append((time.monotonic() - t0, m))
        time.sleep(1.0)
    proc.terminate()
    proc.wait(60)
    rows = []
    for k in range(steps):
        lo, hi = k * step_time + step_time * 0.35, (k + 1) * step_time - 0.5
        window = [m for t, m in samples if lo <= t <= hi]
        if len(window) < 2:
            continue
        a, b = window[0], window[-1]
        n = b.get(LAG_ALL, 0) - a.get(LAG_ALL, 0)
        late = n - (b.get(LAG_LE, 0) - a.get(LAG_LE, 0))
        active = sum(m.get("loadcaller_active_calls", 0) for m in window) / len(window)
        rows.append(((k + 1) * step, active, late / n if n else float("nan")))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--step", type=int, default=50)
    ap.add_argument("--max-users", type=int, default=400)
    ap.add_argument("--step-time", type=float, default=15.0)
    ap.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    agent = AgentProcess()
    best = {}
    try:
        for n, procs in enumerate(args.processes):
            rows = one_run(agent.url, procs, args.step, args.max_users, args.step_time,
                           19646 + n)
            print(f"\n{procs} process(es):  users  active calls  ticks > 5 ms")
            ok, failed = 0.0, False
            for users, active, share in rows:
                good = share < 0.01
                print(f"                 {users:5d}  {active:12.0f}  {share * 100:10.2f} %"
                      f"{'' if good else '   (lag p99 >= 5 ms)'}")
                failed = failed or not good
                if not failed:  # every step up to here held
                    ok = active
            best[procs] = ok
            print(f"  sustained at lag p99 < 5 ms (every step up to it): {ok:.0f} concurrent calls")
    finally:
        agent.stop()
    if 1 in best and 2 in best and best[1]:
        print(f"\nscaling 2 processes / 1 process: {best[2] / best[1]:.2f}x (goal >= 1.8x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
