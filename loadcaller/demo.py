"""``loadcaller demo``: a whole run on this machine, with nothing started by hand.

Starts a mock backend API and the reference voice agent as child processes on
127.0.0.1, runs the embedded demo profile (20 concurrent callers, three turns
each, about 30 s) against the agent through the same Locust swarm as
``loadcaller run`` (live /metrics included), prints progress and the results
table, and checks the callers' numbers against the agent's own ground truth.
Call :func:`loadcaller.swarm.bootstrap.patch` before importing this module.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

from loadcaller.compile import compile_profile
from loadcaller.profile import parse_profile
from loadcaller.report.groundtruth import compare
from loadcaller.swarm.options import SwarmOptions
from loadcaller.swarm.procs import ProcService, start_process_service
from loadcaller.swarm.run import run_swarm


def demo_profile_text() -> str:
    return resources.files("loadcaller").joinpath("data/demo.yaml").read_text(encoding="utf-8")


def run_demo(*, users: int | None, duration: str | None, results_dir: Path | None,
             think: str, backend_latency: str, swarm: SwarmOptions | None = None) -> int:
    """Run the demo; return the process exit code."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = results_dir or Path("loadcaller-results") / f"demo-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    say = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    say(f"loadcaller demo: results in {out}")
    backend = start_process_service("mock backend", ["backend", "--port", "0",
                                                     "--latency", backend_latency])
    agent: ProcService | None = None
    try:
        agent = start_process_service("reference agent", [
            "agent", "--port", "0", "--backend-url", f"{backend.url}/v1/turn",
            "--think", think, "--ground-truth", str(out / "agent_turns.jsonl")])
        say(f"  mock backend  {backend.url}  (latency {backend_latency})")
        say(f"  agent         {agent.url}  (think {think})")
        overrides: dict[str, Any] = {"target.url": agent.url}
        if users is not None:
            overrides["load.users"] = users
        if duration is not None:
            overrides["load.duration"] = duration
        profile = parse_profile(demo_profile_text(), "demo.yaml", overrides)
        spec = compile_profile(profile, source="demo.yaml")
        say(f"  callers       {spec.plan.users} concurrent, {spec.plan.duration_s:g}s, "
            f"{len(spec.scenarios)} scenarios")
        base = swarm or SwarmOptions()
        opts = dataclasses.replace(base, role="local", results_dir=out,
                                   extra_run_info={"demo": True})

        def check(summary: dict[str, Any]) -> None:
            agent.stop()  # type: ignore[union-attr]  # flushes its ground truth
            summary["ground_truth"] = compare(out / "turns.jsonl", out / "agent_turns.jsonl")

        summary, code = run_swarm(spec, opts, on_summary=check)
        gt = summary.get("ground_truth", {})
        if gt.get("matched"):
            print(f"  measurement check against the agent's own log: {gt['matched']} turns, "
                  f"|caller - agent| median {gt['median_abs_diff_ms']:.1f} ms, "
                  f"p95 {gt['p95_abs_diff_ms']:.1f} ms\n")
        (out / "demo.json").write_text(json.dumps({"backend": backend.url, "agent": agent.url}))
        return code
    finally:
        if agent is not None:
            agent.stop()
        backend.stop()
