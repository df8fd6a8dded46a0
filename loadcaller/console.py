"""What a person sees: live progress during a run and the table at the end."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from loadcaller.hostcpu import BUSY_WARN
from loadcaller.printable import printable


def progress_line(elapsed_s: float, duration_s: float, active: int, summary: dict[str, Any]) -> str:
    calls, turns, gen = summary["calls"], summary["turns"], summary["generator"]
    lat = turns["latency_ms"]
    p50 = "-" if lat["p50"] is None else f"{lat['p50']:.0f}"
    p95 = "-" if lat["p95"] is None else f"{lat['p95']:.0f}"
    lag = gen["media_clock_lag_ms"]["p99"]
    jitter = (gen.get("send_jitter_ms") or {}).get("p99")
    # past the duration no call starts; the calls in progress finish (load.stop_timeout)
    ending = "no new calls, " if duration_s > 0 and elapsed_s > duration_s else ""
    return (
        f"[{elapsed_s:5.0f}s/{duration_s:.0f}s] {ending}active {active:4d} | "
        f"calls {calls['finished']:5d} "
        f"done {calls['failed']:4d} failed | turns {turns['count']:5d} "
        f"({turns['answered']} answered) p50 {p50} ms p95 {p95} ms | "
        f"clock lag p99 {0.0 if lag is None else lag:.1f} ms"
        + ("" if jitter is None else f", send jitter p99 {jitter:.1f} ms")
        + ("  GENERATOR SATURATED" if gen["saturated"] else "")
    )


def _f(v: Any) -> str:
    return "-" if v is None else f"{v:,.1f}"


def _row(name: str, s: dict[str, Any]) -> str:
    return (f"  {name:<22}{s['count']:>7}  {_f(s['p50']):>9}  {_f(s['p95']):>9}  "
            f"{_f(s['p99']):>9}  {_f(s['max']):>9}")


def _pct(ratio: float | None) -> str:
    return "-" if ratio is None else f"{100 * ratio:.2f}%"


STEAL_NOTE = 0.05  # hypervisor steal worth saying at the peak
MAX_LISTED = 10  # saturated stretches printed; summary.json has them all


def _cpu(gen: dict[str, Any]) -> str:
    """The run's CPU (busiest process), or the last interval's from an older summary."""
    if isinstance(gen.get("cpu_ratio_mean"), int | float):
        return (f"CPU mean {100 * gen['cpu_ratio_mean']:.0f}%, "
                f"peak {100 * gen.get('cpu_ratio_peak', 0.0):.0f}% of a core")
    return f"CPU {gen.get('cpu_percent', 0.0):.0f}%"


BUSY_CPU_RATIO = 0.5  # a generator process below half a core was not short of CPU itself


def saturation_advice(gen: dict[str, Any]) -> str:
    """What to change after a saturated run, from the generator's own CPU.

    Lag with an idle generator means something else held the cores (often the
    agent under test on the same machine): more processes would not help.
    """
    peak = gen.get("cpu_ratio_peak")
    if isinstance(peak, int | float) and not isinstance(peak, bool) and peak < BUSY_CPU_RATIO:
        return (f"Its busiest process used at most {100 * peak:.0f}% of a core, so other "
                "programs on this machine (the agent under test?) held the CPU: run them "
                "elsewhere, or the callers on a quieter machine.")
    return "Use fewer calls per process or more processes (--processes)."


def _when(w: dict[str, Any]) -> str:
    since = w.get("since_start_s")
    if since:
        return f"{since[0]:7.1f}s to {since[1]:7.1f}s after the start"
    return f"monotonic {w['from']:.1f}s to {w['to']:.1f}s"


def print_summary(summary: dict[str, Any], out: TextIO = sys.stdout) -> None:
    """The end-of-run table."""
    p = lambda line="": print(line, file=out)  # noqa: E731
    calls, turns, gen = summary["calls"], summary["turns"], summary["generator"]
    p()
    p(f"  {'latency (ms)':<22}{'count':>7}  {'p50':>9}  {'p95':>9}  {'p99':>9}  {'max':>9}")
    p(_row("turn latency", turns["latency_ms"]))
    if turns.get("generator_saturated") and turns.get("latency_ms_unsaturated"):
        p(_row("  unsaturated turns", turns["latency_ms_unsaturated"]))
    p(_row("greeting latency", summary["greeting_latency_ms"]))
    p(_row("call setup", summary["setup_ms"]))
    p()
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(calls["outcomes"].items())) or "none"
    p(f"  calls: {calls['started']} started, {calls['completed']} completed, "
      f"{calls['failed']} failed  ({outcomes})")
    t_out = ", ".join(f"{k} {v}" for k, v in sorted(turns["outcomes"].items())) or "none"
    p(f"  turns: {turns['count']} measured, {turns['answered']} answered  ({t_out})")
    for reason, n in calls.get("top_failure_reasons", {}).items():
        p(f"    {n:5d} x {printable(reason, one_line=True)}")  # the agent's: no ESC
    media = summary.get("media")
    if media:
        loss = media["loss_ratio"]
        mos, jit = media["mos"], media["jitter_ms"]
        p(f"  media (RTP, {media['calls']} calls): loss {_pct(loss)}, jitter p95 "
          f"{_f(jit['p95'])} ms, MOS p50 {_f(mos['p50'])}, worst 5% {_f(mos['p5'])}")
    phases = summary.get("phases") or []
    if phases:
        p()
        p(f"  {'chaos phase':<30}{'turns':>6}  {'p50 ms':>9}  {'p95 ms':>9}  {'unanswered':>10}"
          f"  {'agent fallbacks':>15}")
        for ph in phases:
            name = printable("+".join(ph["faults"]) or "(no fault)", one_line=True)
            lat = ph["latency_ms"]
            miss = ph["turns"] - ph["outcomes"].get("answered", 0)
            fb = ph.get("agent_fallbacks")
            p(f"  {name:<30}{ph['turns']:>6}  {_f(lat['p50']):>9}  {_f(lat['p95']):>9}  "
              f"{miss:>10}  {'-' if fb is None else fb:>15}")
        p()
    lag = gen["media_clock_lag_ms"]
    jit = gen.get("send_jitter_ms") or {}
    p(f"  generator: media clock lag p50 {lag['p50'] or 0:.2f} ms, p99 {lag['p99'] or 0:.2f} ms, "
      f"send jitter p99 {jit.get('p99') or 0:.2f} ms, {_cpu(gen)}")
    host = gen.get("host_cpu")
    if host:
        p(f"  this machine: CPUs busy mean {100 * host['busy_mean']:.0f}%, peak "
          f"{100 * host['busy_peak']:.0f}% ({host['cpus']} CPUs"
          + (f", {100 * host['steal_peak']:.0f}% stolen by the hypervisor at the peak)"
             if host["steal_peak"] >= STEAL_NOTE else ")"))
    windows = gen.get("saturated_windows") or []
    if windows:
        tagged = turns.get("generator_saturated", 0)
        p(f"  saturated stretches ({len(windows)}; {tagged} turns measured in them are left out "
          "of 'unsaturated turns'):")
        for w in windows[:MAX_LISTED]:
            p(f"    {_when(w)}  lag p99 {w['lag_p99_ms']:.1f} ms  "
              f"({', '.join(w['processes'])})")
        if len(windows) > MAX_LISTED:
            p(f"    ... and {len(windows) - MAX_LISTED} more (summary.json)")
    if gen["saturated"]:
        p("  !! THE GENERATOR WAS SATURATED: its own lag, not the agent, may have set these "
          f"numbers. {saturation_advice(gen)}")
    if host and host["busy_peak"] >= BUSY_WARN:
        p(f"  !! THIS MACHINE'S CPUS WERE {100 * host['busy_peak']:.0f}% BUSY: an agent (or its "
          "backend, or a proxy) running here waited for CPU, and its latency includes that "
          "wait. Run it on another machine, or place fewer calls.")
    run = summary.get("run", {})
    if run.get("results_dir"):
        p(f"  results: {run['results_dir']}")
    p()
