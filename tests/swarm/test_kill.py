"""--processes under SIGKILL and repeated Ctrl-C: nothing keeps calling, nothing hangs."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator

from .conftest import (
    Agent,
    Run,
    children_of,
    http_get,
    metric_sum,
    parse_metrics,
    process_alive,
    read_jsonl,
    start_run,
    wait_until,
    write_profile,
)

TRUSTING = ("--saturation-lag-ms", "1000")


def _calls_going(run, workers: int = 2) -> bool:  # type: ignore[no-untyped-def]
    samples = parse_metrics(http_get(run.metrics_url))
    return (samples.get("loadcaller_workers") == workers
            and samples.get("loadcaller_active_calls", 0) >= 2
            and metric_sum(samples, "loadcaller_calls_total") >= 2)


def _workers_of(pid: int) -> list[int]:
    workers = children_of(pid)
    assert len(workers) == 2, workers
    return workers


def _kill_leftovers(pids: list[int]) -> None:
    for pid in pids:  # only the workers this test's run forked
        if process_alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_a_worker_killed_mid_run_is_reported_and_the_run_completes(tmp_path, agent: Agent):
    profile = write_profile(tmp_path / "p.yaml", url=agent.url, users=4, duration="16s")
    run = start_run(profile, tmp_path / "r", "--processes", "2", *TRUSTING)
    wait_until(lambda: _calls_going(run), 60, "calls on both workers")
    victim = _workers_of(run.proc.pid)[0]
    os.kill(victim, signal.SIGKILL)
    t_kill = time.monotonic()
    code, _, err = run.wait(120)
    assert code == 0, err
    assert "stopped answering" in err and "Traceback" not in err
    summary = run.summary()
    swarm = summary["swarm"]
    assert len(swarm["workers_lost"]) == 1
    (lost_id,) = swarm["workers_lost"]
    (alive_id,) = set(swarm["processes"]) - {lost_id}
    lost, alive = swarm["processes"][lost_id], swarm["processes"][alive_id]
    assert lost["lost"] is True
    assert "lost" not in alive
    assert alive["records_received"] == alive["finished"] == alive["started"] > 0
    calls = read_jsonl(run.out_dir / "calls.jsonl")
    assert len(calls) == summary["calls"]["finished"] == (
        lost["records_received"] + alive["records_received"])
    assert any(c["t_end"] > t_kill + 5 for c in calls)  # the survivor went on calling


@contextlib.contextmanager
def _two_workers_calling(tmp_path, agent: Agent) -> Iterator[tuple[Run, list[int]]]:
    """A --processes 2 run with calls going on both workers; afterwards nothing is left."""
    profile = write_profile(tmp_path / "p.yaml", url=agent.url, users=4, duration="60s",
                            turns=3)
    run = start_run(profile, tmp_path / "r", "--processes", "2", *TRUSTING)
    workers: list[int] = []
    try:
        wait_until(lambda: _calls_going(run), 60, "calls on both workers")
        workers += _workers_of(run.proc.pid)
        yield run, workers
    finally:
        for pid in workers:  # a stopped worker must go on to find its master gone
            if process_alive(pid):
                os.kill(pid, signal.SIGCONT)
        _kill_leftovers(workers)
        run.wait(10)  # the pipes close once every writer is gone


def test_workers_leave_within_seconds_when_the_master_is_killed(tmp_path, agent: Agent):
    with _two_workers_calling(tmp_path, agent) as (run, workers):
        run.proc.kill()
        run.proc.wait(10)
        wait_until(lambda: not any(process_alive(p) for p in workers), 5,
                   "the workers to leave after their master's SIGKILL")


def test_a_second_ctrl_c_exits_at_once(tmp_path, agent: Agent):
    with _two_workers_calling(tmp_path, agent) as (run, workers):
        for pid in workers:  # stuck workers: the first Ctrl-C would wait for them
            os.kill(pid, signal.SIGSTOP)
        run.signal(signal.SIGINT)
        time.sleep(1.0)
        assert run.proc.poll() is None  # still waiting for its workers
        run.signal(signal.SIGINT)
        t_second = time.monotonic()
        wait_until(lambda: run.proc.poll() is not None, 5, "the master to exit")
        assert time.monotonic() - t_second < 5
        assert run.proc.returncode == 130
        for pid in workers:  # unstuck, they find their master gone and leave
            os.kill(pid, signal.SIGCONT)
        wait_until(lambda: not any(process_alive(p) for p in workers), 5,
                   "the workers to leave after their master exited")
    _, _, err = run.wait()
    assert "again: exiting now" in err
