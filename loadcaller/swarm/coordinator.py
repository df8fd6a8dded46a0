"""The process that owns the run: local callers or a master, results, /metrics.

How this works: :func:`run_coordinator` builds the Locust environment and
runner (local, or master of forked or remote workers), one
:class:`~loadcaller.swarm.aggregate.Aggregate`, the /metrics server and,
when asked, Locust's web UI. Headless, it starts the load (plain users or the
profile's shape) and ends it when the duration or shape is over; with the web
UI, the UI starts and stops it. SIGINT/SIGTERM hang every call up at once
(workers are told to drop their grace period first), then the summary is
written; a second signal exits at once (:data:`FORCED_EXIT_NOTE`). Records
reach the aggregate before Locust's own "stopped" bookkeeping: a worker ships
its last records from its ``test_stop`` hook, before it tells the master it
stopped. A worker that stops answering (Locust's heartbeat, about 3 s) is
reported on the console and in summary.json (``swarm.workers_lost``); the run
goes on with the others.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import gevent
import gevent.event
import gevent.lock
from gevent.pywsgi import WSGIServer
from locust.env import Environment
from locust.runners import STATE_MISSING, STATE_STOPPED, MasterRunner, Runner
from prometheus_client import make_wsgi_app

from loadcaller.calls.scenario import Say
from loadcaller.compile import RunSpec
from loadcaller.console import print_summary, progress_line
from loadcaller.metrics import make_registry
from loadcaller.redact import redact_url
from loadcaller.swarm import options as o
from loadcaller.swarm.aggregate import Aggregate
from loadcaller.swarm.environment import hang_up_now, make_environment
from loadcaller.swarm.node import CallerNode
from loadcaller.swarm.reports import LocustReports
from loadcaller.swarm.user import VoiceUser, attach_node
from loadcaller.swarm.wire import HANGUP_NOW, HANGUP_SIGNAL, PAYLOAD_KEY, WireError

log = logging.getLogger(__name__)

EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}
SHIP_EVERY_S = 1.0
WATCH_WORKERS_S = 0.5
FORCED_EXIT_NOTE = "no summary.json; calls.jsonl and turns.jsonl hold the calls finished so far"

OnSummary = Callable[[dict[str, Any]], None]


class Coordinator:
    """State of the owning process during one run (see the module docstring)."""

    def __init__(self, spec: RunSpec, opts: o.SwarmOptions, *, master_port: int | None) -> None:
        self.spec = spec
        self.opts = opts
        self.t0 = time.monotonic()
        # start_load ran; with the web UI the page starts runs and progress counts from here
        self.load_started = opts.web
        self.env: Environment = make_environment(spec, headless=not opts.web)
        self.agg = Aggregate(opts.results_dir, saturation_lag_ms=opts.saturation_lag_ms,
                             saturation_window_s=opts.saturation_window_s,
                             phases=spec.chaos is not None,
                             scenarios=frozenset(sc.name for sc in spec.scenarios),
                             transports=frozenset((spec.transport,)))
        # /metrics' loadcaller_run_info: the results directory names the run in Grafana
        run_id = (opts.results_dir.name if opts.results_dir is not None
                  else f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}")
        self.agg.run_labels = {"run": run_id, "profile": spec.name}
        self.agg.declare_series({sc.name: sum(isinstance(st, Say) for st in sc.steps)
                                 for sc in spec.scenarios}, spec.transport)
        self.node: CallerNode | None = None
        self.signals: list[int] = []
        self.forked: tuple[int, ...] = ()  # pids of the workers this process forked
        self.done = gevent.event.AsyncResult()
        self.runner: Runner
        if master_port is None:
            self.runner = self.env.create_local_runner()
        else:
            self.runner = self.env.create_master_runner(opts.master_bind_host, master_port)
            self._guard_messages(self.runner)
        self.env.events.init.add_listener(self._on_init)
        self.env.events.worker_report.add_listener(self._on_worker_report)
        self.env.events.test_stop.add_listener(self._on_test_stop)
        self.env.events.init.fire(environment=self.env, runner=self.runner, web_ui=None)
        self.metrics_server: WSGIServer | None = None
        self.metrics_port: int | None = None
        self.web_ui: Any = None
        self.reports = LocustReports(self.env, csv_prefix=opts.csv_prefix,
                                     html_path=opts.html_path)
        self._greenlets: list[gevent.Greenlet] = []
        self._ship_lock = gevent.lock.Semaphore()

    # ---- Locust hooks -------------------------------------------------------------

    def _guard_messages(self, runner: MasterRunner) -> None:
        """Keep the master listening whatever a peer sends.

        Locust's own handlers index into a message's data (``msg.data["state"]``,
        ``msg.data[0:4]``) on its one listener greenlet; a single malformed
        message from anyone who reaches the port would end that greenlet, and
        the master would hear no worker again. Such a message is counted
        (``swarm.rejected_messages``) and dropped instead.
        """
        handle = runner.handle_message

        def guarded(client_id: str, msg: Any) -> None:
            try:
                handle(client_id, msg)
            except Exception as exc:
                why = f"{getattr(msg, 'type', '?')!r} message: {type(exc).__name__}: {exc}"
                self.agg.reject("messages", str(client_id), WireError(why[:200]))

        runner.handle_message = guarded  # type: ignore[method-assign]

    def _on_init(self, environment: Environment, runner: Runner, **_kw: Any) -> None:
        if isinstance(runner, MasterRunner):
            return  # a master places no calls
        self.node = CallerNode(self.spec, node_id="local",
                               saturation_lag_ms=self.opts.saturation_lag_ms,
                               saturation_window_s=self.opts.saturation_window_s)
        attach_node(self.node, self.spec)

    def _on_worker_report(self, client_id: str, data: Any) -> None:
        # anyone who reaches the master's port can send this: the aggregate checks it all
        payload = data.get(PAYLOAD_KEY) if isinstance(data, dict) else None
        if payload is not None:
            self.agg.add_report(str(client_id), payload)

    def _on_test_stop(self, environment: Environment, **_kw: Any) -> None:
        if self.node is not None:
            self.node.wait_idle(10.0)
            self.ship()
        if self.opts.web:  # each run started from the UI leaves a summary behind
            self.agg.results.write_summary(self.agg.summary(self.run_info("web UI stop")))

    # ---- shipping, metrics, progress -------------------------------------------------

    def ship(self) -> None:
        """Move this process's finished records and health into the aggregate.

        The snapshot is taken before the records are drained: it is the step
        that can fail (the loop thread does not answer in time), and records
        drained before it would be lost with it. Writing them never raises (a
        failed write is counted); anything else puts the rest back in the outbox.
        """
        node = self.node
        if node is not None:
            with self._ship_lock:  # one snapshot at a time: a late one never overwrites
                try:
                    snap: dict[str, Any] | None = node.snapshot()
                except (Exception, gevent.Timeout) as exc:
                    log.warning("no health snapshot this time (%s); records still ship",
                                type(exc).__name__)
                    snap = None
                records = node.drain()
                if snap is not None:
                    self.agg.update_node(node.node_id, snap)
                for i, data in enumerate(records):
                    try:
                        self.agg.add_records(node.node_id, [data])
                    except BaseException:
                        node.put_back(records[i + 1:])  # they ship next time
                        raise
        self.agg.users = self.runner.user_count
        self.agg.locust_cpu_warning = bool(
            self.runner.cpu_warning_emitted or getattr(self.runner, "worker_cpu_warning_emitted",
                                                       False))

    def _ship_forever(self) -> None:
        while True:
            gevent.sleep(SHIP_EVERY_S)
            try:
                self.ship()
            except Exception:  # keep shipping; the final ship reports real trouble
                log.exception("shipping results failed")

    def _watch_workers(self) -> None:
        """Say when a worker stops answering (or comes back); Locust only logs it."""
        runner = self.runner
        assert isinstance(runner, MasterRunner)
        lost = self.agg.lost_workers
        while True:
            gevent.sleep(WATCH_WORKERS_S)
            for client in list(runner.clients.all):
                if client.state == STATE_MISSING and client.id not in lost:
                    lost.add(client.id)
                    print(f"  worker {client.id} stopped answering: its calls in progress "
                          f"are lost; {runner.worker_count} worker(s) go on", file=sys.stderr,
                          flush=True)
                elif client.state != STATE_MISSING and client.id in lost:
                    lost.discard(client.id)
                    print(f"  worker {client.id} is back", file=sys.stderr, flush=True)

    def _progress_forever(self) -> None:
        every = self.opts.progress_every_s
        while True:
            gevent.sleep(every)
            if not self.load_started:  # a master waiting for its workers: no clock yet
                if isinstance(self.runner, MasterRunner):
                    print(f"  waiting for workers: {len(self.runner.clients.ready)} of "
                          f"{self.opts.expect_workers} connected", file=sys.stderr, flush=True)
                continue
            summary = self.agg.progress()
            print(progress_line(time.monotonic() - self.t0, self.spec.plan.duration_s,
                                self.agg.active_calls(), summary), file=sys.stderr, flush=True)

    def start_servers(self) -> None:
        opts = self.opts
        if opts.metrics_port is not None:
            app = make_wsgi_app(make_registry(self.agg))
            self.metrics_server = WSGIServer((opts.metrics_host, opts.metrics_port), app, log=None)
            try:
                self.metrics_server.start()
            except OSError as exc:  # taken (another run?): serve anyway, somewhere free
                print(f"  metrics port {opts.metrics_port} unavailable ({exc.strerror}); "
                      "using a free port", file=sys.stderr)
                self.metrics_server = WSGIServer((opts.metrics_host, 0), app, log=None)
                self.metrics_server.start()
            self.metrics_port = self.metrics_server.server_port
            print(f"  metrics       http://{opts.metrics_host}:{self.metrics_port}/metrics",
                  file=sys.stderr, flush=True)
        if opts.web:
            # Locust's UI re-parses sys.argv as Locust options on every page; ours are
            # parsed already, so leave it only the program name
            sys.argv[1:] = []
            self.web_ui = self.env.create_web_ui(opts.web_host, opts.web_port)
            print(f"  web UI        http://{opts.web_host}:{opts.web_port}/  (no call is "
                  "placed until you press Start there)", file=sys.stderr, flush=True)
        self.reports.start()
        self._greenlets.append(gevent.spawn(self._ship_forever))
        if isinstance(self.runner, MasterRunner):
            self._greenlets.append(gevent.spawn(self._watch_workers))
        if opts.progress_every_s > 0:
            self._greenlets.append(gevent.spawn(self._progress_forever))

    def run_info(self, how: str) -> dict[str, Any]:
        spec = self.spec
        shape = spec.shape
        return {"name": spec.name, "transport": spec.transport,
                "target": redact_url(spec.target.url),
                "users": spec.plan.users, "duration_s": spec.plan.duration_s, "ended_by": how,
                "elapsed_s": round(time.monotonic() - self.t0, 3),
                "results_dir": str(self.opts.results_dir) if self.opts.results_dir else None,
                "driver": "locust",
                "shape": None if shape is None else type(shape).__name__.lower(),
                "processes": self.opts.processes or None, **self.opts.extra_run_info}

    # ---- the run ---------------------------------------------------------------------

    def on_signal(self, sig: signal.Signals) -> None:
        if self.signals:  # the second: do not wait for anything any more
            print(f"\n{sig.name} again: exiting now ({FORCED_EXIT_NOTE})", file=sys.stderr,
                  flush=True)
            sys.stdout.flush()
            os._exit(self.signals[0])  # forked workers see their master go and hang up
        print(f"\n{sig.name}: hanging up every call and writing the summary "
              "(again to exit at once)...", file=sys.stderr, flush=True)
        self.signals.append(EXIT_SIGNAL[sig])
        if not self.done.ready():
            self.done.set("signal")
        else:  # the duration is up and the calls in progress have their grace: not any more
            self._hang_up_now()
            # a worker waiting out the grace reads no message until its stop is over
            # (Locust's worker runs "stop" in its message loop): the forked ones get a
            # signal. Remote workers (--worker) finish their grace.
            for pid in self.forked:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, HANGUP_SIGNAL)

    def _hang_up_now(self) -> None:
        hang_up_now(self.runner)
        if isinstance(self.runner, MasterRunner):
            self.runner.send_message(HANGUP_NOW)

    def wait_for_workers(self) -> bool:
        runner = self.runner
        if not isinstance(runner, MasterRunner):
            return True
        deadline = time.monotonic() + self.opts.expect_workers_timeout_s
        want = self.opts.expect_workers
        while len(runner.clients.ready) < want and time.monotonic() < deadline:
            if self.done.ready():
                return False
            gevent.sleep(0.1)
        return len(runner.clients.ready) >= want

    def start_load(self) -> None:
        self.t0 = time.monotonic()  # progress and elapsed count from here
        self.load_started = True
        self.agg.t0_monotonic = self.t0  # saturated stretches are listed from here too
        if self.env.shape_class is not None:
            self.runner.start_shape()
            self._greenlets.append(gevent.spawn(self._watch_shape))
        elif self.spec.plan.duration_s <= 0:  # validate and compile only: place no call
            self._end("duration")
        else:
            self.runner.start(self.spec.plan.users, self.spec.plan.spawn_rate)
            self._greenlets.append(gevent.spawn_later(self.spec.plan.duration_s,
                                                      self._end, "duration"))

    def _watch_shape(self) -> None:
        gevent.sleep(1.0)
        while self.runner.state != STATE_STOPPED:
            gevent.sleep(0.2)
        self._end("shape")

    def _end(self, how: str) -> None:
        if not self.done.ready():
            self.done.set(how)

    def stop(self, how: str) -> None:
        """Stop every user; on a signal hang up at once, otherwise give the grace."""
        if how == "signal":
            self._hang_up_now()
        self.runner.stop()
        self.ship()

    def finish(self, how: str, on_summary: OnSummary | None) -> tuple[dict[str, Any], int]:
        summary = self.agg.summary(self.run_info("signal" if self.signals else how))
        if on_summary is not None:
            on_summary(summary)
        lost = False  # the files do not hold what was measured: say so in the exit code
        summary_lost = False
        try:
            self.agg.results.write_summary(summary)
        except OSError as exc:
            lost = summary_lost = True
            print(f"loadcaller: could not write summary.json: {exc}", file=sys.stderr)
        try:
            self.reports.finish()
        except OSError as exc:
            print(f"loadcaller: could not write Locust's reports: {exc}", file=sys.stderr)
        print_summary(summary)
        swarm = summary["swarm"]
        if swarm["records_not_written"]:
            lost = True
            counted = ("the summary above counts them" if summary_lost
                       else "summary.json counts them")
            print(f"loadcaller: {swarm['records_not_written']} call records could not be "
                  f"written to calls.jsonl/turns.jsonl ({swarm['write_error']}); {counted}",
                  file=sys.stderr)
        if swarm["workers_lost"]:
            print(f"loadcaller: {len(swarm['workers_lost'])} worker(s) stopped answering "
                  "during the run; their calls in progress are not counted", file=sys.stderr)
        rejected = (swarm["rejected_records"], swarm["rejected_snapshots"],
                    swarm["rejected_messages"])
        if any(rejected):
            print("loadcaller: rejected {} call records, {} snapshots and {} messages that "
                  "workers sent (malformed)".format(*rejected), file=sys.stderr)
        if self.signals:
            return summary, self.signals[0]
        if lost:
            return summary, o.EXIT_RESULTS_LOST
        if summary["generator"]["saturated"]:
            return summary, o.EXIT_SATURATED
        return summary, o.EXIT_OK

    def close(self) -> None:
        for g in self._greenlets:
            g.kill(block=False)
        self.runner.quit()
        if self.node is not None:
            self.node.close()
            VoiceUser.node = None
        if self.web_ui is not None:
            self.web_ui.stop()
        if self.metrics_server is not None:
            self.metrics_server.stop(timeout=1)
        self.agg.close()


def run_coordinator(spec: RunSpec, opts: o.SwarmOptions, *, master_port: int | None = None,
                    on_summary: OnSummary | None = None,
                    on_ready: Callable[[Coordinator], None] | None = None,
                    forked: Sequence[int] = ()) -> tuple[dict[str, Any], int]:
    """Run the load (see the module docstring); return the summary and the exit code.
    ``forked``: the pids of this process's forked workers."""
    c = Coordinator(spec, opts, master_port=master_port)
    c.forked = tuple(forked)
    handlers = [gevent.signal_handler(sig, c.on_signal, sig) for sig in EXIT_SIGNAL]
    try:
        c.start_servers()
        if on_ready is not None:
            on_ready(c)
        if not c.wait_for_workers():
            if c.signals:
                return c.finish("signal", on_summary)
            print(f"loadcaller: only {len(c.runner.clients.ready)} of "  # type: ignore[attr-defined]
                  f"{opts.expect_workers} workers connected within "
                  f"{opts.expect_workers_timeout_s:g}s", file=sys.stderr)
            return {}, o.EXIT_NO_WORKERS
        if not opts.web:
            c.start_load()
        how = c.done.get()
        c.stop(how)
        result = c.finish(how, on_summary)
        if c.metrics_server is not None and opts.metrics_linger_s > 0 and not c.signals:
            gevent.sleep(opts.metrics_linger_s)  # the last scrape sees the final counts
        return result
    finally:
        for h in handlers:
            h.cancel()
        c.close()
