"""Twilio-stream calls with churn through ``loadcaller run``, beside SIPp's UAC.

Run from the repository root::

    python benchmarks/churn_scale.py [--users 200 500] [--call-s 12] [--seconds 20]
    python benchmarks/churn_scale.py --users 500 --tree /tmp/before --tree .   # A/B

Everything runs on 127.0.0.1, each peer in its own process. For each N and each
``--tree`` (a source tree holding ``loadcaller/``; default: this one), a
profile of N users making short calls (``--call-s`` seconds: wait for the
greeting, say a phrase, pause, say another, hang up, and dial again) runs
through ``loadcaller run`` against benchmarks/twilio_target.py (a reply every
``--every`` seconds): about N / call-s call set-ups per second. Once the users
have spawned and ``--settle`` seconds have passed, the loadcaller process's CPU
(all threads, from /proc) is read over ``--seconds``; /metrics is scraped at
both ends of the window for the media clock lag and send jitter p99 (linear
within Prometheus buckets); calls.jsonl gives the call-seconds and set-ups in
the window. The summary gives the saturated windows and the periods the clock
skipped (whole run): a clock that skips sends fewer frames, so its CPU per
call-second is no longer comparable.

Then SIPp's UAC (benchmarks/sip_scale.py's, ``short`` calls of the same length
at the same N) is measured the same way, for CPU per call-second. With several
trees, rows measured one after another share the machine's load: compare them
by ratio, with the load average printed beside each. Prints figures only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from procstat import tree_cpu_times
from sip_scale import NOT_FAILED, _stop, calls_in_window, measure, run_sipp_uac
from swarm_common import scrape, tempdir

from loadcaller.audio.pack import load_pack_audio

HERE = Path(__file__).resolve().parent
LAG = "loadcaller_media_clock_lag_seconds"
JITTER = "loadcaller_send_jitter_seconds"


def p99_between(m0: dict[str, float], m1: dict[str, float], name: str) -> float:
    """p99 in ms of histogram ``name`` between two scrapes (histogram_quantile's way)."""
    def buckets(m: dict[str, float]) -> dict[float, float]:
        out = {}
        for key, value in m.items():
            if key.startswith(f"{name}_bucket{{"):
                le = key.split('le="', 1)[1].split('"', 1)[0]
                out[math.inf if le == "+Inf" else float(le)] = value
        return out

    before, after = buckets(m0), buckets(m1)
    rows = sorted((le, n - before.get(le, 0.0)) for le, n in after.items())
    total = rows[-1][1] if rows else 0.0
    if total <= 0:
        return math.nan
    rank, lower, below = 0.99 * total, 0.0, 0.0
    for le, cum in rows:
        if cum >= rank:
            return 1000 * (lower if math.isinf(le) else
                           lower + (le - lower) * (rank - below) / max(cum - below, 1e-9))
        lower, below = le, cum
    return math.nan


def write_profile(path: Path, url: str, users: int, spawn_rate: float, call_s: float,
                  duration_s: float) -> None:
    said = sum(len(load_pack_audio(p)) / 8000 for p in ("hello_order", "order_number"))
    gap_ms = max(0, int((call_s - said - 2.5) * 500))  # the greeting is about 2.5 s
    path.write_text(f"""name: churn-scale
target: {{url: "{url}", setup_timeout: 20s}}
load: {{users: {users}, spawn_rate: {spawn_rate:g}, duration: {duration_s:.0f}s, stop_timeout: 0s}}
call: {{turn_timeout: 30s, max_call_duration: {call_s + 30:.0f}s}}
scenarios:
  - name: short
    steps:
      - wait_for_agent
      - say: {{phrase: hello_order}}
      - pause: {gap_ms}ms
      - say: {{phrase: order_number}}
      - pause: {gap_ms}ms
      - hangup
""")


def run_tree(tree: Path, n: int, args: argparse.Namespace, url: str, work: Path) -> dict[str, Any]:
    ramp_s = n / args.spawn_rate
    duration = ramp_s + args.settle + args.seconds + 60  # SIGINT ends it sooner
    work.mkdir(parents=True, exist_ok=True)
    profile = work / "profile.yaml"
    write_profile(profile, url, n, args.spawn_rate, args.call_s, duration)
    out, log = work / "results", work / "loadcaller.stderr"
    # the tree first; a PYTHONPATH already set (a profiling sitecustomize) stays after it
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(tree.resolve()), os.environ.get("PYTHONPATH", "")) if p)}
    cmd = [sys.executable, "-m", "loadcaller", "run", str(profile), "--results-dir", str(out),
           "--progress-every", "0", "--metrics-port", "0", "--saturation-lag-ms", "5"]
    if args.processes:
        cmd += ["--processes", str(args.processes)]
    with log.open("wb") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=err, start_new_session=True, env=env, cwd=tree)
    try:
        metrics = ""
        for _ in range(600):  # 60 s at most
            for line in log.read_text(errors="replace").splitlines():
                word = line.split()
                if len(word) == 2 and word[0] == "metrics" and word[1].startswith("http"):
                    metrics = word[1]
            if metrics or proc.poll() is not None:
                break
            time.sleep(0.1)
        if not metrics:
            raise RuntimeError(f"no /metrics:\n{log.read_text(errors='replace')[-2000:]}")
        time.sleep(ramp_s)
        m0 = scrape(metrics)  # before the settle: the scrape's own cost stays out
        time.sleep(args.settle)
        spy = profiler(args, proc.pid, f"{n}-{tree.resolve().name}")
        w = measure(args.seconds, lambda: tree_cpu_times(proc.pid), lambda: 0.0, 0)
        if spy is not None:
            spy.wait(30)
        m1 = scrape(metrics)
    finally:
        code = _stop(proc, signal.SIGINT, 30.0 + n / 20, group=True)
    calls = calls_in_window(out / "calls.jsonl", w.t0, w.t1)
    ended = sum(calls["ended"].values())
    failed = sum(n for outcome, n in calls["ended"].items() if outcome not in NOT_FAILED)
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    gen = summary.get("generator", {})
    up = calls["call_s"] / w.wall
    cpu_s = w.user_s + w.system_s
    return {"side": f"ours {tree.name or tree.resolve().name}", "users": n,
            "calls_up": up, "setups_s": calls["started"] / w.wall, "ended": ended,
            "failed": failed, "cpu_pct": 100 * cpu_s / w.wall,
            "ms_per_call_s": 1000 * cpu_s / (up * w.wall) if up else math.nan,
            "lag_p99": p99_between(m0, m1, LAG), "jitter_p99": p99_between(m0, m1, JITTER),
            "sat_windows": len(gen.get("saturated_windows") or []) if gen else math.nan,
            "sat_at": " ".join(f"{w['since_start_s'][0]:g}-{w['since_start_s'][1]:g}s:"
                               f"{w['lag_p99_ms']:.0f}ms"
                               for w in gen.get("saturated_windows") or ()
                               if "since_start_s" in w),
            "skipped": gen.get("skipped_ticks", math.nan), "load": w.load, "exit": code}


def profiler(args: argparse.Namespace, pid: int, name: str) -> subprocess.Popen[bytes] | None:
    """py-spy over the window, every thread, idle samples too (``--profile DIR``):
    DIR/NAME.json in speedscope's format, samples in time order per thread, so a
    stall of the loop thread shows as a run of samples in one place."""
    if args.profile is None:
        return None
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    args.profile.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([spy, "record", "-p", str(pid), "--threads", "--nonblocking",
                             "-r", "200", "-d", f"{args.seconds:.0f}", "-f", "speedscope",
                             "--idle",
                             "-o", str(args.profile / f"{name}.json")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def sipp_row(n: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    ns = argparse.Namespace(spawn_rate=args.spawn_rate, settle=args.settle,
                            seconds=args.seconds, short_call=args.call_s)
    r = run_sipp_uac(n, "short", ns, work)
    return {"side": "sipp UAC", "users": n, "calls_up": r.mean_up, "setups_s": math.nan,
            "ended": r.completed + r.failed, "failed": r.failed, "cpu_pct": r.cpu_pct,
            "ms_per_call_s": r.ms_per_call_s, "lag_p99": math.nan, "jitter_p99": math.nan,
            "sat_windows": math.nan, "skipped": math.nan, "load": r.load, "exit": None}


def show(r: dict[str, Any]) -> None:
    def f(v: Any, fmt: str = ".2f") -> str:
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)

    print(f"{r['side']:<22} {r['users']:>5} {f(r['calls_up'], '.0f'):>6} "
          f"{f(r['setups_s'], '.1f'):>8} {r['ended']:>6} {r['failed']:>5} "
          f"{f(r['cpu_pct'], '.1f'):>6} {f(r['ms_per_call_s'], '.3f'):>9} "
          f"{f(r['lag_p99']):>8} {f(r['jitter_p99']):>9} {f(r['sat_windows'], '.0f'):>4} "
          f"{f(r['skipped'], '.0f'):>7} "
          f"{f(r['load']):>5} {f(r['exit'], 'd'):>4}  {r.get('sat_at', '')}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--users", type=int, nargs="+", default=[200, 500])
    ap.add_argument("--spawn-rate", type=float, default=50.0)
    ap.add_argument("--call-s", type=float, default=12.0, help="each call's length")
    ap.add_argument("--every", type=float, default=5.0, help="the target's reply interval")
    ap.add_argument("--chunk-ms", type=int, default=0,
                    help="the target streams each reply in messages of this many ms, paced "
                         "(0: one burst per reply)")
    ap.add_argument("--settle", type=float, default=5.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--tree", type=Path, action="append",
                    help="a source tree to run loadcaller from (repeatable; default .)")
    ap.add_argument("--processes", type=int, default=0,
                    help="loadcaller run --processes N (0: its default)")
    ap.add_argument("--no-sipp-uac", action="store_true")
    ap.add_argument("--profile", type=Path, metavar="DIR",
                    help="py-spy (pip install py-spy) every thread over each window into DIR")
    args = ap.parse_args()
    trees = args.tree or [Path(".")]
    target = subprocess.Popen([sys.executable, str(HERE / "twilio_target.py"), "--every",
                               str(args.every), "--chunk-ms", str(args.chunk_ms)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert target.stdout is not None
        url = target.stdout.readline().split()[1]
        print(f"target {url}; calls of {args.call_s:g} s, spawn rate {args.spawn_rate:g}/s, "
              f"window {args.seconds:g} s after {args.settle:g} s settle")
        print(f"{'side':<22} {'users':>5} {'up':>6} {'setups/s':>8} {'ended':>6} {'fail':>5} "
              f"{'CPU %':>6} {'ms/call-s':>9} {'lag p99':>8} {'jit p99':>9} {'sat':>4} "
              f"{'skipped':>7} {'load':>5} {'exit':>4}  saturated (since load start: lag p99)")
        work = tempdir()
        try:
            for n in args.users:
                for i, tree in enumerate(trees):
                    show(run_tree(tree, n, args, url, work / f"{n}-{i}"))
                if not args.no_sipp_uac and shutil.which("sipp"):
                    try:
                        show(sipp_row(n, args, work / f"sipp-{n}"))
                    except RuntimeError as exc:
                        print(f"sipp UAC at {n}: {exc}")
        finally:
            shutil.rmtree(work, ignore_errors=True)
    finally:
        target.terminate()
        target.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
