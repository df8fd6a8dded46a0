"""A worker process: places calls for a master and ships what they measured.

How this works: a Locust :class:`~locust.runners.WorkerRunner` connects to the
master, which tells it how many users to run. Every ``report_to_master``
carries the records of calls finished since the last report (each exactly
once) and the worker's cumulative snapshot. When the master says ``stop``,
Locust stops the users (killing a user's greenlet hangs its call up), then
fires ``test_stop``: there the worker waits for the last hang-ups and sends a
final report at once, before Locust sends "stopped" to the master, so the
master has every record when its own stop returns.

A worker forked by ``--processes`` ignores SIGINT/SIGTERM (the terminal sends
them to the whole group; the master coordinates the stop). A standalone
worker stops its calls, ships the records and leaves on either signal.
"""

from __future__ import annotations

import signal
from typing import Any

import gevent
import gevent.lock
from locust.env import Environment
from locust.runners import WorkerRunner

from loadcaller.compile import RunSpec
from loadcaller.swarm import options as o
from loadcaller.swarm.environment import make_environment
from loadcaller.swarm.node import CallerNode
from loadcaller.swarm.user import VoiceUser, attach_node
from loadcaller.swarm.wire import HANGUP_NOW, PAYLOAD_KEY

EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Worker:
    """One worker process's state (see the module docstring)."""

    def __init__(self, spec: RunSpec, opts: o.SwarmOptions) -> None:
        self.spec = spec
        self.env: Environment = make_environment(spec, headless=True)
        self.node: CallerNode | None = None
        self._report_lock = gevent.lock.Semaphore()
        events = self.env.events
        events.init.add_listener(self._on_init)
        events.report_to_master.add_listener(self._on_report)
        events.test_stop.add_listener(self._on_test_stop)
        self.runner: WorkerRunner = self.env.create_worker_runner(opts.master_host,
                                                                  opts.master_port)
        self.runner.register_message(HANGUP_NOW, self._on_hangup_now)
        events.init.fire(environment=self.env, runner=self.runner, web_ui=None)

    def _on_init(self, environment: Environment, runner: Any, **_kw: Any) -> None:
        # the loop thread is created here, after any fork
        self.node = CallerNode(self.spec, node_id=runner.client_id)
        attach_node(self.node, self.spec)

    def _on_report(self, client_id: str, data: dict[str, Any]) -> None:
        if self.node is not None:
            with self._report_lock:  # snapshots leave in the order they were taken
                data[PAYLOAD_KEY] = {"records": self.node.drain(), "node": self.node.snapshot()}

    def _on_test_stop(self, environment: Environment, **_kw: Any) -> None:
        if self.node is None:
            return
        self.node.wait_idle(10.0)
        self.runner._send_stats()  # the last records, before Locust reports "stopped"
        # users are gone: Locust's post-stop sleep needs no grace any more
        self.env.stop_timeout = 0.0

    def _on_hangup_now(self, environment: Environment, msg: Any, **_kw: Any) -> None:
        self.env.stop_timeout = 0.0

    def run(self, *, handle_signals: bool) -> int:
        """Serve the master until it says quit (or, standalone, until a signal)."""
        got: list[int] = []

        def on_signal(sig: signal.Signals) -> None:
            got.append(EXIT_SIGNAL[sig])
            self.env.stop_timeout = 0.0
            gevent.spawn(self._leave)

        if handle_signals:
            handlers = [gevent.signal_handler(s, on_signal, s) for s in EXIT_SIGNAL]
        else:
            handlers = [gevent.signal_handler(s, lambda: None) for s in EXIT_SIGNAL]
        try:
            self.runner.greenlet.join()
        finally:
            for h in handlers:
                h.cancel()
            if self.node is not None:
                self.node.close()
                VoiceUser.node = None
        return got[0] if got else 0

    def _leave(self) -> None:
        self.runner.stop()  # test_stop ships the last records
        self.env.events.quitting.fire(environment=self.env, reverse=True)  # tells the master
        self.runner.greenlet.kill(block=True)


def run_worker(spec: RunSpec, opts: o.SwarmOptions, *, forked: bool = False) -> int:
    """Run a worker until the master lets it go; return the exit code."""
    worker = Worker(spec, opts)
    return worker.run(handle_signals=not forked)
