"""Entry point of a swarm run: pick this process's role, fork local workers.

``--processes N`` forks N workers (``gevent.fork``, before any thread or
event loop exists) that connect to this process as their master on a free
127.0.0.1 port; this process then coordinates them exactly as a ``--master``
coordinates remote workers. Each process creates its own event loop thread
afterwards, in Locust's ``init`` event.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

import gevent

from loadcaller.calls.results import failure_verdict
from loadcaller.compile import RunSpec
from loadcaller.gates.evaluate import GateResult
from loadcaller.gates.verdict import judge_gates, print_gates, publish
from loadcaller.printable import printable
from loadcaller.report.html import write_run_report
from loadcaller.swarm import options as o
from loadcaller.swarm.coordinator import Coordinator, OnSummary, run_coordinator
from loadcaller.swarm.resultsdir import claim_results_dir
from loadcaller.swarm.wire import HANGUP_SIGNAL
from loadcaller.swarm.worker import run_worker


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _fork_workers(spec: RunSpec, opts: o.SwarmOptions, port: int) -> list[int]:
    worker_opts = dataclasses.replace(opts, role="worker", master_host="127.0.0.1",
                                      master_port=port, web=False, metrics_port=None)
    pids = []
    master_pid = os.getpid()
    for _ in range(opts.processes):
        pid = gevent.fork()
        if pid == 0:  # the child never returns into the caller's code
            signal.signal(HANGUP_SIGNAL, signal.SIG_IGN)  # until the worker handles it
            code = 1
            try:
                code = run_worker(spec, worker_opts, forked=True, parent_pid=master_pid)
            except BaseException as exc:
                print(f"loadcaller worker {os.getpid()}: {exc!r}", file=sys.stderr)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        pids.append(pid)
    return pids


def _reap(pids: list[int], timeout_s: float = 15.0, nudge_s: float = 2.0) -> None:
    """Wait for forked workers to leave; kill any still there after the timeout.

    A worker still there after ``nudge_s`` gets SIGTERM: one the master was stopped
    before it connected gets no quit message and leaves on it at once (it waited
    the whole timeout); one shipping its last records carries on.
    """
    start = time.monotonic()
    deadline = start + timeout_s
    left = set(pids)
    nudged = False
    while left and time.monotonic() < deadline:
        if not nudged and time.monotonic() - start > nudge_s:
            nudged = True
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        for pid in list(left):
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                left.discard(pid)
        gevent.sleep(0.1)
    for pid in left:
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except ProcessLookupError:
            pass


def run_swarm(spec: RunSpec, opts: o.SwarmOptions, *, on_summary: OnSummary | None = None,
              on_ready: Any = None, report: bool = True,
              final_code: Callable[[dict[str, Any], int], int] | None = None,
              ) -> tuple[dict[str, Any], int]:
    """Run ``spec`` in this process's role; return the summary (empty on a worker)
    and the exit code (see :func:`judged_exit`). With ``report`` the process that
    wrote summary.json also writes report.html (the demo writes its own, later).
    ``final_code`` (the demo's ground-truth self-check) may change the judged code
    before JUnit and the Pushgateway are given it."""
    failure: list[str | None] = []
    gates: list[GateResult] = []

    def judge(summary: dict[str, Any]) -> None:  # before summary.json is written
        if on_summary is not None:
            on_summary(summary)
        summary["failure"] = failure_verdict(summary, max_failed_ratio=opts.max_failed_ratio)
        failure.append(summary["failure"])
        gates.extend(judge_gates(spec.gates, summary, opts.results_dir))

    summary, code = _run_role(spec, opts, on_summary=judge, on_ready=on_ready)
    gates_failed = print_gates(gates)
    code = judged_exit(code, failure[0] if failure else None, gates_failed=gates_failed)
    if failure:  # judged: this process wrote the summary
        if final_code is not None:
            code = final_code(summary, code)
        publish(gates, summary, code=code, junit=opts.junit_path,
                pushgateway=opts.pushgateway_url)
        if report:
            write_run_report(opts.results_dir, code)
    return summary, code


def judged_exit(code: int, failure: str | None, *, gates_failed: int = 0) -> int:
    """The exit code once the calls and the SLO gates are judged; prints why calls failed.

    Precedence: a signal (130, 143), then incomplete results (5: summary.json or call
    records could not be written), then the generator's saturation (3: even the
    failures may be the tool's), then failed calls (``failure``, from
    :func:`~loadcaller.calls.results.failure_verdict`) or failed gates (1), then 0:
    any code other than 0 that the run already had is kept. Bad input (2) never
    gets this far. A master that never got its workers (4) has no calls to judge.
    ``loadcaller --help`` (:data:`loadcaller.cli.EXIT_CODES_HELP`) has the same table.
    """
    if failure is not None:
        print(f"loadcaller: {printable(failure, one_line=True)}", file=sys.stderr, flush=True)
    if failure is None and not gates_failed:
        return code
    return o.EXIT_FAILED if code == o.EXIT_OK else code


def _run_role(spec: RunSpec, opts: o.SwarmOptions, *, on_summary: OnSummary,
              on_ready: Any) -> tuple[dict[str, Any], int]:
    if opts.role == "worker":
        return {}, run_worker(spec, opts)
    if opts.results_dir is not None:
        claim_results_dir(opts.results_dir, overwrite=opts.overwrite)
    if opts.processes > 0:
        port = free_port()
        pids = _fork_workers(spec, opts, port)
        master = dataclasses.replace(opts, master_bind_host="127.0.0.1",
                                     expect_workers=opts.processes)
        try:
            return run_coordinator(spec, master, master_port=port, on_summary=on_summary,
                                   on_ready=on_ready, forked=pids)
        finally:
            _reap(pids)
    if opts.role == "master":
        return run_coordinator(spec, opts, master_port=opts.master_port, on_summary=on_summary,
                               on_ready=on_ready)
    return run_coordinator(spec, opts, on_summary=on_summary, on_ready=on_ready)


__all__ = ["Coordinator", "free_port", "judged_exit", "run_swarm"]
