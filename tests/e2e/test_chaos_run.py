"""A profile's chaos section and media impairments, run as a user runs them."""

from __future__ import annotations

import json
import socket
import statistics

from .conftest import read_jsonl, run_cli, start, write_profile


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_chaos_section_starts_the_proxy_and_tags_every_turn(tmp_path, services):
    backend = await start("backend", "--port", "0", "--latency", "10ms")
    services.append(backend)
    port = free_port()
    agent = await start("agent", "--port", "0", "--think", "100ms", "--backend-timeout", "5",
                        "--backend-url", f"http://127.0.0.1:{port}/v1/turn")
    services.append(agent)
    chaos = f"""chaos:
  routes:
    - {{name: crm, kind: http, listen: "127.0.0.1:{port}", upstream: "{backend.url}"}}
  faults:
    - {{name: slow_crm, type: latency, route: crm, delay: 1500ms, at: 8s, for: 8s}}
"""
    profile = write_profile(tmp_path / "p.yaml", url=agent.url, users=4, duration="22s",
                            turns=3, turn_timeout="8s", extra=chaos + "seed: 3")
    out = tmp_path / "r"
    code, _, err = await run_cli("run", str(profile), "--results-dir", str(out),
                                 "--progress-every", "0")
    assert code == 0, err
    turns = read_jsonl(out / "turns.jsonl")
    slow = [t["latency_ms"] for t in turns if t["faults"] == ["slow_crm"]]
    clean = [t["latency_ms"] for t in turns if t["faults"] == []]
    assert slow and clean
    assert all(t["outcome"] == "answered" for t in turns)
    # the CRM's extra 1.5 s shows in the caller's latency while, and only while, it was on
    assert statistics.median(slow) > statistics.median(clean) + 1200
    phases = json.loads((out / "summary.json").read_text())["phases"]
    assert [p["faults"] for p in phases][:2] == [[], ["slow_crm"]]
    assert sum(p["turns"] for p in phases) == len(turns)


async def run_and_read(profile, out, *, expect: int = 0) -> list[dict]:
    """Run a profile; the calls that were not cut short by the end of the run."""
    code, _, err = await run_cli("run", str(profile), "--results-dir", str(out),
                                 "--progress-every", "0")
    assert code == expect, err
    return [c for c in read_jsonl(out / "calls.jsonl") if c["outcome"] != "cancelled"]


async def test_media_impairment_without_a_proxy(tmp_path, services):
    agent = await start("agent", "--port", "0", "--think", "100ms")
    services.append(agent)
    # every caller frame lost on the way to the agent: it greets, but never hears a turn
    profile = write_profile(tmp_path / "p.yaml", url=agent.url, users=2, duration="4s",
                            turns=2, turn_timeout="2s",
                            extra="media: {outbound: {type: loss, loss: 1.0}}")
    calls = await run_and_read(profile, tmp_path / "r", expect=1)  # every call fails
    assert calls and all(c["greeting_ms"] is not None for c in calls)
    assert {t["outcome"] for t in read_jsonl(tmp_path / "r" / "turns.jsonl")} == {"no_response"}

    # every agent frame lost on the way to the caller: the caller hears nothing at all
    profile = write_profile(tmp_path / "q.yaml", url=agent.url, users=2, duration="3s",
                            turns=1, turn_timeout="2s",
                            extra="media: {inbound: {type: loss, loss: 1.0}}")
    calls = await run_and_read(profile, tmp_path / "q", expect=1)
    assert calls and {c["outcome"] for c in calls} == {"no_response"}


async def test_two_processes_share_one_chaos_proxy(tmp_path, services):
    backend = await start("backend", "--port", "0", "--latency", "10ms")
    services.append(backend)
    port = free_port()
    agent = await start("agent", "--port", "0", "--think", "100ms",
                        "--backend-url", f"http://127.0.0.1:{port}/v1/turn")
    services.append(agent)
    chaos = f"""chaos:
  routes:
    - {{name: crm, kind: http, listen: "127.0.0.1:{port}", upstream: "{backend.url}"}}
  faults:
    - {{name: slow_crm, type: latency, route: crm, delay: 800ms, at: 8s, for: 6s}}
"""
    # one call per caller (each takes about 19 s): its three turns end about 5.5, 12 and
    # 19 s in, so the fault covers each call's middle turn and neither of the others
    profile = write_profile(tmp_path / "p.yaml", url=agent.url, users=4, duration="6s",
                            turns=3, extra=chaos)
    out = tmp_path / "r"
    code, _, err = await run_cli("run", str(profile), "--results-dir", str(out),
                                 "--progress-every", "0", "--processes", "2",
                                 "--metrics-port", "0")
    assert code == 0, err
    assert err.count("Traceback") == 0, err[-5000:]  # (not `in`: its diff of a long err is slow)
    turns = read_jsonl(out / "turns.jsonl")
    assert turns and all(t["outcome"] == "answered" for t in turns)
    # the CRM's extra 800 ms shows in the turns each process tagged with it: one process
    # serves the proxy, the other only follows its timeline, and both must be right
    clean = statistics.median(t["latency_ms"] for t in turns if t["faults"] == [])
    by_process: dict[str, list[dict]] = {}
    for t in turns:
        by_process.setdefault(t["call_id"].split("-")[0], []).append(t)
    assert len(by_process) == 2, sorted(by_process)
    for tag, own in by_process.items():
        slow = [t["latency_ms"] for t in own if t["faults"] == ["slow_crm"]]
        assert slow, f"process {tag} tagged no turn with the fault"
        assert statistics.median(slow) > clean + 600, (tag, slow, clean)
    # and per phase: calm, then the fault, then calm again, latency up only in the middle
    phases = json.loads((out / "summary.json").read_text())["phases"]
    assert [p["faults"] for p in phases] == [[], ["slow_crm"], []], phases
    p50 = [p["latency_ms"]["p50"] for p in phases]
    assert p50[1] > max(p50[0], p50[2]) + 600, p50
    assert sum(p["turns"] for p in phases) == len(turns)
