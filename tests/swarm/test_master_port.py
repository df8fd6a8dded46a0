"""The master's worker port: loopback unless told otherwise, and nothing a peer sends crashes it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from .conftest import (
    Agent,
    free_port,
    listening_addresses,
    read_jsonl,
    start_run,
    wait_until,
    write_profile,
)

ROGUE = Path(__file__).with_name("rogue_worker.py")


def test_master_listens_on_loopback_only_by_default(tmp_path, agent: Agent):
    profile = write_profile(tmp_path / "p.yaml", url=agent.url, users=1, duration="5s")
    port = free_port()
    master = start_run(profile, tmp_path / "r", "--master", "--master-port", str(port),
                       "--expect-workers", "1", "--expect-workers-timeout", "30")
    try:
        wait_until(lambda: bool(listening_addresses(port)), 30, "the master's worker port")
        assert listening_addresses(port) == {"127.0.0.1"}
    finally:
        master.signal(signal.SIGINT)
        master.wait(60)


def test_a_rogue_peer_sending_malformed_reports_is_counted_and_the_run_completes(
        tmp_path, agent: Agent):
    profile = write_profile(tmp_path / "p.yaml", url=agent.url, users=2, duration="6s")
    port = free_port()
    master = start_run(profile, tmp_path / "r", "--master", "--master-port", str(port),
                       "--expect-workers", "1", "--expect-workers-timeout", "60",
                       "--saturation-lag-ms", "1000")
    worker = None
    try:
        wait_until(lambda: bool(listening_addresses(port)), 30, "the master's worker port")
        rogue = subprocess.run([sys.executable, str(ROGUE), str(port)], capture_output=True,
                               text=True, timeout=60)
        assert rogue.returncode == 0, rogue.stderr
        sent = json.loads(rogue.stdout)
        # the master got it all before its one real worker joins and the load starts
        worker = subprocess.Popen(
            [sys.executable, "-m", "loadcaller", "run", str(profile), "--worker",
             "--master-port", str(port), "--saturation-lag-ms", "1000"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        code, _, err = master.wait(timeout=120)
        _, w_err = worker.communicate(timeout=60)
    finally:
        for p in (master.proc, worker):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    assert code == 0, err
    assert "Traceback" not in err and "Traceback" not in w_err
    assert "rejected a record" in err and "rejected a snapshot" in err  # warned
    summary = master.summary()
    swarm = summary["swarm"]
    assert swarm["rejected_records"] == sent["records"]
    assert swarm["rejected_snapshots"] == sent["snapshots"]
    assert swarm["rejected_messages"] == sent["messages"]  # and the master kept listening
    # the real worker's calls are all there, nothing of the rogue's
    (w,) = swarm["processes"].values()
    calls = read_jsonl(master.out_dir / "calls.jsonl")
    assert w["finished"] == w["records_received"] == summary["calls"]["finished"] == len(calls)
    assert len(calls) >= 2
    assert all(c["call_id"] != "rogue-1" and c["scenario"] == "quick" for c in calls)
