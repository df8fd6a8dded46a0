"""A worker process: places calls for a master and ships what they measured.

How this works: a Locust :class:`~locust.runners.WorkerRunner` connects to the
master, which tells it how many users to run. Every ``report_to_master``
carries the records of calls finished since the last report (each exactly
once) and the worker's cumulative snapshot. When the master says ``stop``,
Locust stops the users (killing a user's greenlet hangs its call up), then
fires ``test_stop``: there the worker waits for the last hang-ups and sends a
final report at once, before Locust sends "stopped" to the master, so the
master has every record when its own stop returns.

Signals: a worker forked by ``--processes`` ignores the first SIGINT/SIGTERM
(the terminal sends it to the whole group; the master coordinates the stop).
A standalone worker stops its calls, ships the records and leaves on the
first. A second signal makes either leave at once.

A forked worker also watches its master from a native thread (the hub may be
the thing that is stuck): when the master dies, even by SIGKILL, the worker
hangs its calls up and exits within :data:`LEAVE_DEADLINE_S` of noticing,
instead of calling the agent until Locust's 60 s heartbeat timeout.

A report takes the snapshot first and drains the records second: the snapshot
is the step that can fail (the loop thread must answer), and it must not take
drained records down with it. Records that Locust then fails to send go back
to the outbox for the next report.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import gevent
import gevent.lock
import gevent.monkey
from locust.env import Environment
from locust.runners import STATE_INIT, WorkerRunner

from loadcaller.compile import RunSpec
from loadcaller.swarm import options as o
from loadcaller.swarm.environment import hang_up_now, make_environment
from loadcaller.swarm.node import CallerNode
from loadcaller.swarm.user import VoiceUser, attach_node
from loadcaller.swarm.wire import HANGUP_NOW, HANGUP_SIGNAL, PAYLOAD_KEY

log = logging.getLogger(__name__)

EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}
EXIT_ORPHANED = 1  # the master died
PARENT_POLL_S = 0.25
LEAVE_DEADLINE_S = 3.0  # after the master's death or a second signal: then os._exit

_start_new_thread = gevent.monkey.get_original("_thread", "start_new_thread")
_native_sleep = gevent.monkey.get_original("time", "sleep")


class Worker:
    """One worker process's state (see the module docstring)."""

    def __init__(self, spec: RunSpec, opts: o.SwarmOptions) -> None:
        self.spec = spec
        self.opts = opts
        self.env: Environment = make_environment(spec, headless=True)
        self.node: CallerNode | None = None
        self.master_gone = False
        self._report_lock = gevent.lock.Semaphore()
        # records in the report being sent, by the greenlet sending it
        self._unsent: dict[gevent.Greenlet, list[dict[str, Any]]] = {}
        events = self.env.events
        events.init.add_listener(self._on_init)
        events.report_to_master.add_listener(self._on_report)
        events.test_stop.add_listener(self._on_test_stop)
        self.runner: WorkerRunner = self.env.create_worker_runner(opts.master_host,
                                                                  opts.master_port)
        self.runner.register_message(HANGUP_NOW, self._on_hangup_now)
        self._locust_send_stats = self.runner._send_stats
        self.runner._send_stats = self._send_stats  # type: ignore[method-assign]
        events.init.fire(environment=self.env, runner=self.runner, web_ui=None)

    def _on_init(self, environment: Environment, runner: Any, **_kw: Any) -> None:
        # the loop thread is created here, after any fork
        self.node = CallerNode(self.spec, node_id=runner.client_id,
                               saturation_lag_ms=self.opts.saturation_lag_ms,
                               saturation_window_s=self.opts.saturation_window_s)
        attach_node(self.node, self.spec)

    def _on_report(self, client_id: str, data: dict[str, Any]) -> None:
        node = self.node
        if node is None:
            return
        with self._report_lock:  # snapshots leave in the order they were taken
            payload: dict[str, Any] = {}
            try:
                payload["node"] = node.snapshot()  # first: it can time out
            except (Exception, gevent.Timeout) as exc:
                log.warning("no health snapshot in this report (%s); records still ship",
                            type(exc).__name__)
            payload["records"] = self._unsent[gevent.getcurrent()] = node.drain()
            data[PAYLOAD_KEY] = payload

    def _send_stats(self) -> None:
        """Locust's report to the master; records it could not send go back to the outbox."""
        me = gevent.getcurrent()
        try:
            self._locust_send_stats()
        except BaseException:
            unsent = self._unsent.get(me)
            if unsent and self.node is not None:
                self.node.put_back(unsent)
            raise
        finally:
            self._unsent.pop(me, None)

    def _on_test_stop(self, environment: Environment, **_kw: Any) -> None:
        if self.node is None:
            return
        self.node.wait_idle(10.0)
        if not self.master_gone:
            self.runner._send_stats()  # the last records, before Locust reports "stopped"
        # users are gone: Locust's post-stop sleep needs no grace any more
        self.env.stop_timeout = 0.0

    def _on_hangup_now(self, environment: Environment, msg: Any, **_kw: Any) -> None:
        hang_up_now(self.runner)

    def run(self, *, forked: bool) -> int:
        """Serve the master until it says quit (or, standalone, until a signal)."""
        got: list[int] = []

        def on_signal(sig: signal.Signals) -> None:
            got.append(EXIT_SIGNAL[sig])
            if len(got) > 1:  # the second: leave now
                _force_exit(got[0], f"{sig.name} again")
            if not forked:
                self.env.stop_timeout = 0.0
                gevent.spawn(self._leave)
            elif self.runner.worker_state == STATE_INIT and not self.runner.user_count:
                # forked and never given load (the master was stopped while this one
                # connected): nothing to hang up or ship, and no quit will come
                _force_exit(got[0], f"{sig.name} before any load")
            # forked otherwise: the master got it too and coordinates the stop

        handlers = [gevent.signal_handler(s, on_signal, s) for s in EXIT_SIGNAL]
        if forked:  # the master's "hang up now" while this worker waits out the grace
            handlers.append(gevent.signal_handler(HANGUP_SIGNAL, hang_up_now, self.runner))
        try:
            self.runner.greenlet.join()
        finally:
            for h in handlers:
                h.cancel()
            if self.node is not None:
                self.node.close()
                VoiceUser.node = None
        if self.master_gone:
            return EXIT_ORPHANED
        return got[0] if got else 0

    def on_master_gone(self) -> None:  # hub thread
        print(f"loadcaller worker {os.getpid()}: the master is gone; hanging up",
              file=sys.stderr, flush=True)
        self.master_gone = True
        self.env.stop_timeout = 0.0
        gevent.spawn(self._leave)

    def _leave(self) -> None:
        self.runner.stop()  # test_stop ships the last records
        self.env.events.quitting.fire(environment=self.env, reverse=True)  # tells the master
        self.runner.greenlet.kill(block=True)


class MasterWatch:
    """Notices, from a native thread, that the process that forked this one is gone.

    It polls ``getppid()`` (portable, unlike ``PR_SET_PDEATHSIG``, and it lets
    the worker hang up rather than be killed): the hub gets
    :attr:`on_gone` to run, and if the process is still there
    :data:`LEAVE_DEADLINE_S` later, it exits anyway.
    """

    def __init__(self, parent_pid: int) -> None:
        self.parent_pid = parent_pid
        self.hub = gevent.get_hub()
        self.on_gone: Callable[[], None] | None = None

    def start(self) -> None:
        _start_new_thread(self._main, ())

    def _main(self) -> None:
        while os.getppid() == self.parent_pid:
            _native_sleep(PARENT_POLL_S)
        on_gone = self.on_gone
        if on_gone is None:  # not serving yet: nothing to hang up
            _force_exit(EXIT_ORPHANED, "the master is gone")
        self.hub.loop.run_callback_threadsafe(on_gone)
        _native_sleep(LEAVE_DEADLINE_S)  # the hub had its chance to hang up cleanly
        _force_exit(EXIT_ORPHANED, "the master is gone")


def run_worker(spec: RunSpec, opts: o.SwarmOptions, *, forked: bool = False,
               parent_pid: int | None = None) -> int:
    """Run a worker until the master lets it go; return the exit code.

    ``forked``: started by ``--processes`` from the master ``parent_pid`` (its
    pid taken before the fork, so a master that dies at once is noticed too).
    """
    watch = None
    if forked:
        watch = MasterWatch(os.getppid() if parent_pid is None else parent_pid)
        watch.start()
    worker = Worker(spec, opts)
    if watch is not None:
        watch.on_gone = worker.on_master_gone
    return worker.run(forked=forked)


def _force_exit(code: int, why: str) -> None:
    """Leave now, from any thread: calls not hung up yet are cut by the kernel."""
    print(f"loadcaller worker {os.getpid()}: {why}: exiting now", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(code)
