"""--master and --worker as separate commands, as on separate machines."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

from .conftest import Agent, free_port, read_jsonl, start_run, write_profile


def test_master_and_remote_worker(tmp_path, agent: Agent):
    profile = write_profile(tmp_path / "p.yaml", url=agent.url, users=3, duration="5s")
    port = free_port()
    master = start_run(profile, tmp_path / "r", "--master", "--master-port", str(port),
                       "--master-bind-host", "127.0.0.1", "--expect-workers", "1",
                       "--expect-workers-timeout", "60", "--saturation-lag-ms", "1000")
    time.sleep(2.5)  # the master waits for its worker meanwhile
    worker = subprocess.Popen(
        [sys.executable, "-m", "loadcaller", "run", str(profile), "--worker", "--master-host",
         "127.0.0.1", "--master-port", str(port), "--saturation-lag-ms", "1000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        code, _, err = master.wait(timeout=120)
        assert code == 0, err
        # the master's quit lets the worker go
        _, w_err = worker.communicate(timeout=60)
        assert worker.returncode == 0, w_err
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert "Traceback" not in w_err
    # while it waited it said so, and its progress clock starts with the load
    assert "waiting for workers: 0 of 1 connected" in err
    elapsed = [int(m) for m in re.findall(r"^\[\s*(\d+)s/5s\]", err, re.MULTILINE)]
    assert elapsed and elapsed[0] <= 2, elapsed
    summary = master.summary()
    calls = read_jsonl(master.out_dir / "calls.jsonl")
    (w,) = summary["swarm"]["processes"].values()
    assert w["finished"] == w["records_received"] == summary["calls"]["finished"] == len(calls)
    assert len(calls) >= 3
