"""A signal while the calls in progress have their stop_timeout grace hangs them up at
once: a CI job's cancel or a Kubernetes SIGTERM (30 s to the kill) must not wait it out."""

from __future__ import annotations

import signal
import time
from collections import Counter

import pytest

from .conftest import Agent, children_of, process_alive, read_jsonl, start_run, wait_until

TRUSTING = ("--saturation-lag-ms", "1000")


@pytest.mark.parametrize(("processes", "sig", "code"), [
    ((), signal.SIGINT, 130), (("--processes", "2"), signal.SIGTERM, 143)])
def test_a_signal_in_the_grace_after_the_duration_hangs_up_at_once(tmp_path, agent: Agent,
                                                                   processes, sig, code):
    profile = tmp_path / "p.yaml"
    profile.write_text(f"""name: grace
target: {{url: "{agent.url}"}}
load: {{users: 4, spawn_rate: 20, duration: 3s, stop_timeout: 60s}}
call: {{turn_timeout: 5s}}
scenarios:
  - name: long
    steps: [wait_for_agent, {{pause: 60s}}, hangup]
""")
    run = start_run(profile, tmp_path / "r", *TRUSTING, *processes)
    time.sleep(6.0)  # the duration is up; the calls wait out their grace (the signal goes to
    # the master alone, as Kubernetes sends it: not to the process group)
    assert run.proc.poll() is None
    run.signal(sig)
    t_signal = time.monotonic()
    wait_until(lambda: run.proc.poll() is not None, 20, "the run to end after the signal")
    assert time.monotonic() - t_signal < 15  # not the 60 s grace
    rc, _, err = run.wait()
    assert rc == code, err
    assert "Traceback" not in err
    outcomes = Counter(c["outcome"] for c in read_jsonl(run.out_dir / "calls.jsonl"))
    assert outcomes == {"cancelled": 4}, outcomes
    assert run.summary()["calls"]["finished"] == 4


def test_a_signal_while_forked_workers_connect_ends_the_run_in_seconds(tmp_path, agent: Agent):
    """Workers stopped before they connected get no quit message: the master waited 15 s
    for them, then killed them."""
    profile = tmp_path / "p.yaml"
    profile.write_text(f"""name: early
target: {{url: "{agent.url}"}}
load: {{users: 4, spawn_rate: 20, duration: 20s}}
scenarios:
  - name: s
    steps: [wait_for_agent, {{pause: 5s}}, hangup]
""")
    run = start_run(profile, tmp_path / "r", *TRUSTING, "--processes", "2")
    wait_until(lambda: len(children_of(run.proc.pid)) >= 2, 20, "the workers to be forked")
    workers = children_of(run.proc.pid)
    run.signal(signal.SIGTERM)  # they are still starting: not connected yet
    t_signal = time.monotonic()
    wait_until(lambda: run.proc.poll() is not None, 20, "the run to end after the signal")
    assert time.monotonic() - t_signal < 8
    rc, _, err = run.wait()
    assert rc == 143, err
    assert "Traceback" not in err
    wait_until(lambda: not any(process_alive(p) for p in workers), 5, "the workers to leave")
