"""``loadcaller demo``: a whole run on this machine, with nothing started by hand.

Starts a mock backend API and the reference voice agent as child processes on
127.0.0.1, runs the embedded demo profile (20 concurrent callers, three turns
each, about 30 s) against the agent through the same Locust swarm as
``loadcaller run`` (live /metrics included), prints progress and the results
table, and checks the callers' numbers against the agent's own ground truth
(:mod:`loadcaller.report.groundtruth`): a check out of bounds (median or p95
absolute difference, or mean bias) is printed as failed and the demo exits 1
(:data:`EXIT_CHECK_FAILED`) where it would have exited 0.
Call :func:`loadcaller.swarm.bootstrap.patch` before importing this module.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import sys
import time
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from loadcaller import metrics
from loadcaller.compile import compile_profile
from loadcaller.gates.parse import cli_gates, fault_names
from loadcaller.profile import parse_profile
from loadcaller.redact import redact_url
from loadcaller.report.groundtruth import check_lines, compare, out_of_bounds
from loadcaller.report.html import write_run_report
from loadcaller.report.profile_copy import write_profile_copy
from loadcaller.swarm.options import SwarmOptions
from loadcaller.swarm.procs import ProcService, start_process_service
from loadcaller.swarm.resultsdir import claim_results_dir
from loadcaller.swarm.run import run_swarm

EXIT_CHECK_FAILED = 1  # the callers' numbers disagree with the agent's ground truth


def demo_profile_text() -> str:
    return resources.files("loadcaller").joinpath("data/demo.yaml").read_text(encoding="utf-8")


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (the proxy must listen before the agent starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Where grafana/prometheus/prometheus.yml looks for the demo's chaos proxy and agent
CHAOS_CONTROL_PORT = metrics.CHAOS_CONTROL_PORT
AGENT_PORT = metrics.AGENT_METRICS_PORT


def port_or_free(preferred: int) -> int:
    """``preferred`` if nothing listens there on 127.0.0.1, else a free port."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
        except OSError:
            return free_port()
    return preferred


def demo_chaos(port: int, upstream: str, duration_s: float,
               control_port: int | None = None) -> dict[str, Any]:
    """The demo's chaos: backend latency, then a renamed field, then calm again.

    With ``control_port`` the proxy also serves its control API there, whose
    ``/metrics`` (chaos_fault_active, injections) the Grafana dashboards read.
    """
    q = duration_s / 4
    control = {} if control_port is None else {
        "control": {"listen": f"127.0.0.1:{control_port}"}}
    return {
        **control,
        "routes": [{"name": "backend", "kind": "http", "listen": f"127.0.0.1:{port}",
                    "upstream": upstream}],
        "faults": [
            {"name": "backend_latency", "type": "latency", "route": "backend",
             "delay": "1200ms", "at": f"{q:g}s", "for": f"{q:g}s"},
            {"name": "schema_rename", "type": "schema_drift", "route": "backend",
             "op": "rename", "path": "$.reply", "to": "response",
             "at": f"{2.2 * q:g}s", "for": f"{q:g}s"},
        ],
    }


# Chaos on the RTP path of the SIP demo: loss in short bursts, both ways.
SIP_MEDIA = {"outbound": {"type": "gilbert_elliott", "mean_loss": 0.01, "mean_burst": 2},
             "inbound": {"type": "gilbert_elliott", "mean_loss": 0.01, "mean_burst": 2}}


def add_agent_fallbacks(phases: list[dict[str, Any]], truth: Path) -> None:
    """Count the agent's fallback replies (its backend failed it) in each phase."""
    if not phases or not truth.exists():
        return
    for ph in phases:
        ph["agent_fallbacks"] = 0
    for line in truth.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        t = rec.get("t_last_speech_recv")
        if t is None or rec.get("reply") != "agent_fallback":
            continue
        phase = phases[0]
        for ph in phases:
            if ph["from"] <= t + 0.05:
                phase = ph
        phase["agent_fallbacks"] += 1


def run_demo(*, users: int | None, duration: str | None, results_dir: Path | None,
             think: str, backend_latency: str, swarm: SwarmOptions | None = None,
             chaos: bool = True, transport: str = "twilio", gates: Sequence[str] = ()) -> int:
    """Run the demo; return the process exit code. ``gates``: ``--gate`` texts."""
    gate_list = cli_gates(list(gates), fault_names(demo_chaos(0, "", 1.0)) if chaos else [])
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = results_dir or Path("loadcaller-results") / f"demo-{stamp}"
    base = swarm or SwarmOptions()
    claim_results_dir(out, overwrite=base.overwrite)  # before the agent writes there
    out.mkdir(parents=True, exist_ok=True)
    say = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    say(f"loadcaller demo: results in {out}")
    backend = start_process_service("mock backend", ["backend", "--port", "0",
                                                     "--latency", backend_latency])
    agent: ProcService | None = None
    try:
        overrides: dict[str, Any] = {}
        if users is not None:
            overrides["load.users"] = users
        if duration is not None:
            overrides["load.duration"] = duration
        backend_url = backend.url
        if chaos:
            port = free_port()
            seconds = parse_profile(demo_profile_text(), "demo.yaml", overrides).load.duration
            control_port = port_or_free(CHAOS_CONTROL_PORT)
            overrides["chaos"] = demo_chaos(port, backend.url, seconds, control_port)
            backend_url = f"http://127.0.0.1:{port}"
        agent_port = port_or_free(AGENT_PORT) if transport == "twilio" else 0
        agent = start_process_service("reference agent", [
            "agent", "--transport", transport, "--port", str(agent_port),
            "--backend-url", f"{backend_url}/v1/turn",
            "--think", think, "--ground-truth", str(out / "agent_turns.jsonl")])
        say(f"  mock backend  {backend.url}  (latency {backend_latency})")
        if chaos:
            say(f"  chaos proxy   {backend_url}  (backend latency +1.2 s, then a renamed "
                "field, midway)")
            say(f"  chaos metrics http://127.0.0.1:{control_port}/metrics")
        say(f"  agent         {redact_url(agent.url)}  (think {think})")
        if transport == "twilio":
            say(f"  agent metrics http://127.0.0.1:{agent_port}/metrics")
        overrides["target.url"] = agent.url
        if transport == "sip" and chaos:
            overrides["media"] = SIP_MEDIA
            say("  media path    1% packet loss each way, in bursts (Gilbert-Elliott)")
        profile = parse_profile(demo_profile_text(), "demo.yaml", overrides)
        spec = compile_profile(profile, source="demo.yaml")
        spec = dataclasses.replace(spec, gates=spec.gates + gate_list)
        write_profile_copy(profile, out)
        say(f"  callers       {spec.plan.users} concurrent, {spec.plan.duration_s:g}s, "
            f"{len(spec.scenarios)} scenarios")
        opts = dataclasses.replace(base, role="local", results_dir=out,
                                   extra_run_info={"demo": True})

        def check(summary: dict[str, Any]) -> None:
            agent.stop()  # type: ignore[union-attr]  # flushes its ground truth
            gt = compare(out / "turns.jsonl", out / "agent_turns.jsonl")
            gt["out_of_bounds"] = out_of_bounds(gt)
            summary["ground_truth"] = gt
            add_agent_fallbacks(summary.get("phases") or [], out / "agent_turns.jsonl")

        def self_check(summary: dict[str, Any], code: int) -> int:
            """The ground-truth check's verdict, before JUnit and the Pushgateway see it."""
            lines, passed = check_lines(summary.get("ground_truth", {}))
            print("".join(f"  {line}\n" for line in lines))
            return EXIT_CHECK_FAILED if code == 0 and not passed else code

        _, code = run_swarm(spec, opts, on_summary=check, report=False,
                            final_code=self_check)
        (out / "demo.json").write_text(json.dumps({"backend": redact_url(backend.url),
                                                   "agent": redact_url(agent.url)}))
        write_run_report(out, code)
        return code
    finally:
        if agent is not None:
            agent.stop()
        backend.stop()
