"""The gates' part of a run's end: judge, print, write JUnit, push.

Called by :func:`loadcaller.swarm.run.run_swarm` on the process that wrote the
summary: :func:`judge_gates` before summary.json is written (it adds
``gates``), :func:`print_gates` after the results table, and
:func:`publish` once the exit code is known.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from loadcaller.gates.evaluate import GateResult, evaluate, format_value
from loadcaller.gates.parse import Gate

_RUN_PROBLEMS = {130: "stopped by SIGINT", 143: "stopped by SIGTERM",
                 5: "the results are incomplete: summary.json or some call records could "
                    "not be written",
                 3: "the generator saturated: its own lag may have set the numbers",
                 4: "the master did not get its workers"}


def run_problem(code: int, summary: dict[str, Any],
                results: Sequence[GateResult] = ()) -> str | None:
    """Why the run's exit code is not 0 (None when it is): the JUnit ``run`` case's failure.

    Every non-zero code has a reason here or, for failed gates alone, in those gates'
    own cases, so a suite that is all green means exit 0.
    """
    if code == 0:
        return None
    if code in _RUN_PROBLEMS:
        return f"{_RUN_PROBLEMS[code]} (exit {code})"
    if summary.get("failure"):
        return f"{summary['failure']} (exit {code})"
    gt = summary.get("ground_truth")
    if isinstance(gt, dict) and gt.get("out_of_bounds"):
        why = gt["out_of_bounds"]
        why = "; ".join(map(str, why)) if isinstance(why, list) else str(why)
        return f"the callers' numbers disagree with the agent's ground truth: {why} (exit {code})"
    if any(not r.passed for r in results):
        return None  # exit 1 for failed gates alone: each gate's own case says which
    return f"the run exited {code}"


def judge_gates(gates: Sequence[Gate], summary: dict[str, Any],
                results_dir: Path | None) -> list[GateResult]:
    """Evaluate ``gates`` and record them in ``summary["gates"]`` (always a list).

    A run that placed no call at all (``--duration 0s``: validate and compile
    only, or stopped before its first call) has nothing to judge: its gates are
    not evaluated, and it says so.
    """
    if gates and not summary.get("calls", {}).get("started"):
        print(f"  SLO gates: {len(gates)} not judged: no call was placed", flush=True)
        summary["gates"] = []
        return []
    turns = None if results_dir is None else results_dir / "turns.jsonl"
    results = evaluate(gates, summary, turns)
    summary["gates"] = [r.to_json() for r in results]
    return results


def print_gates(results: Sequence[GateResult], out: TextIO | None = None,
                err: TextIO | None = None) -> int:
    """Print each gate's verdict (stdout) and a line naming the failed ones (stderr).

    Returns how many failed.
    """
    if not results:
        return 0
    out, err = out or sys.stdout, err or sys.stderr
    print("  SLO gates:", file=out)
    for r in results:
        print(f"    {r.line()}", file=out)
    print(file=out, flush=True)
    failed = [r for r in results if not r.passed]
    if failed:
        names = "; ".join(f"{r.gate.label} (measured {format_value(r.gate, r.value)})"
                          for r in failed)
        print(f"loadcaller: {len(failed)} of {len(results)} SLO gates failed: {names}",
              file=err, flush=True)
    return len(failed)


def publish(results: Sequence[GateResult], summary: dict[str, Any], *, code: int,
            junit: Path | None, pushgateway: str | None, err: TextIO | None = None) -> None:
    """Write ``--junit`` and push to ``--pushgateway``; either failing is a warning."""
    err = err or sys.stderr
    if junit is not None:
        from loadcaller.gates.junit import write_junit

        problem = run_problem(code, summary, results)
        try:
            write_junit(junit, results, summary, run_problem=problem)
        except OSError as exc:
            print(f"loadcaller: warning: could not write {junit}: {exc}", file=err, flush=True)
    if pushgateway is not None:
        from loadcaller.gates.push import push_run

        warning = push_run(pushgateway, summary, results, code)
        if warning is not None:
            print(f"loadcaller: warning: {warning}", file=err, flush=True)
