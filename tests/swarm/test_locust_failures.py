"""Locust's own failure statistics stay bounded however many distinct reasons an agent sends.

Locust keeps one row per distinct failure message (web UI, ``--csv`` failures,
``--html``), so an agent that puts a call id in each close reason grew it by a row
per failed call. The probe runs in a subprocess: Locust and gevent must not patch
the pytest process.
"""

from __future__ import annotations

import subprocess
import sys

from loadcaller.calls.results import MAX_REASONS

PROBE = """
import sys
from loadcaller.swarm import bootstrap
bootstrap.patch()
from locust.env import Environment
from loadcaller.calls.call import CallRecord
from loadcaller.swarm.user import VoiceUser
env = Environment(user_classes=[VoiceUser])
env.create_local_runner()
user = VoiceUser(env)
for i in range(int(sys.argv[1])):
    user._report(CallRecord(call_id=f"c{i}", transport="twilio", scenario="s",
                            outcome="dropped", reason=f"closed 1011 session {i}",
                            t_start_ns=0, t_end_ns=10**9, setup_ns=None, greeting_ns=None,
                            turns=[]))
print(len(env.stats.errors), env.stats.total.num_failures)
"""


def test_a_reason_per_call_adds_no_locust_failure_row_past_the_bound() -> None:
    calls = MAX_REASONS + 200
    done = subprocess.run([sys.executable, "-c", PROBE, str(calls)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    rows, failures = map(int, done.stdout.split())
    assert failures == calls  # every failed call counted
    assert rows == MAX_REASONS + 1  # the distinct reasons, then one pooled row
