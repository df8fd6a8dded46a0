"""The loop thread of a running swarm serves executors and plain threads (aiortc needs both)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .conftest import Agent

PROBE = Path(__file__).with_name("loop_probe.py")


def test_executor_and_thread_queue_round_trips_complete_in_the_loop_thread(tmp_path,
                                                                            agent: Agent):
    out = tmp_path / "probe.json"
    proc = subprocess.run([sys.executable, str(PROBE), agent.url, str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(out.read_text())
    assert found["active_calls"] > 0  # probed while calls were in progress
    assert found["in_loop_thread"] is True
    assert found["executor_thread"] != found["loop_thread"]  # a real pool thread did the work
    assert found["queue_value"] == 42
    assert found["callback_from_thread"] is True
    assert found["threading_patched"] is False
    assert found["calls_finished"] > 0
