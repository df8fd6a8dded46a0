"""``loadcaller``: load and chaos testing for voice AI agents.

Subcommands: demo, run, validate, report, compare, agent, backend, schema. ``run`` and
``demo`` drive the callers with Locust (``loadcaller/swarm/``); the exit codes are in
:data:`EXIT_CODES_HELP`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from chaos import blame
from loadcaller.errors import LocalError, ProfileError
from loadcaller.redact import redact_text, redact_url

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1  # as loadcaller.swarm.options.EXIT_FAILED (not imported here: gevent)

EXIT_CODES_HELP = """exit codes:
  0    the run finished and its numbers can be trusted
  1    the calls failed the run: no call connected, or more than --max-failed-ratio of
       them failed (the last line says why, e.g. "no call connected: 37 failed_setup:
       connect to 127.0.0.1:1 failed: ..."); or an SLO gate failed (each gate is printed
       with its measured value, PASS or FAIL); for the demo also: the callers' numbers
       disagree with the agent's own ground truth; for compare: B regressed against A,
       or B placed calls and measured no turn (every call failed)
  2    bad input: the profile, a --gate or an option is invalid (compare: a results
       directory is missing, has no turns.jsonl or cannot be read, holds no call at
       all, or is a baseline A that measured no turn)
  3    the generator saturated in any --saturation-window of the run (media clock lag
       p99 above --saturation-lag-ms with at least 10 late ticks, or skipped media
       ticks), or Locust's CPU warning: the numbers may be the tool's, not the agent's
  4    a master did not get its --expect-workers workers in time
  5    the results are incomplete: summary.json or some call records could not be
       written (disk full, file too large); the summary printed on screen counts them all
  130  stopped by SIGINT (Ctrl-C): calls hung up, summary written
  143  stopped by SIGTERM: calls hung up, summary written
When several apply: 130/143 first, then 5, then 3 (even the failures may be the tool's), then 1
(failed calls or failed gates), then 0; bad input (2) stops the command before any call."""


def _ratio(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def _window(text: str) -> float:
    """--saturation-window: "5s", "500ms" or seconds, 0.2 s to 1 min (a window holds its
    ticks' lags until it closes: up to 1,000 a second)."""
    from loadcaller.config import _duration
    try:
        value = _duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not 0.2 <= value <= 60:
        raise argparse.ArgumentTypeError("must be between 200ms and 1m")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _port(text: str) -> int:
    """A TCP or UDP port, 0 to 65535 (0: any free one where a server listens)."""
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("a port is 0 to 65535")
    return value


def _metrics_port(text: str) -> int:
    """--metrics-port: a port, or -1 for no /metrics."""
    return -1 if text.strip() == "-1" else _port(text)


def _non_negative_number(text: str) -> float:
    """A finite number, 0 or more (``nan`` would disable a check without a word)."""
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError("must be a finite number, 0 or more")
    return value


def _positive_number(text: str) -> float:
    value = _non_negative_number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loadcaller",
        description="Live telephony load testing for voice AI agents: a swarm of synthetic "
        "callers measures every turn's latency as the caller hears it.",
        epilog="Start with `loadcaller demo`. Docs: README.md and docs/ (distributed runs: "
        "docs/distributed.md).\n\n" + EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    d = sub.add_parser("demo", help="run callers against a built-in agent and backend (~1 min)",
                       description="Start a mock backend and the reference agent on 127.0.0.1, "
                       "place calls from 20 concurrent callers for 30 s, let the calls in "
                       "progress finish (about a minute in all), print the results table.")
    d.add_argument("--users", type=_positive_int, help="concurrent callers (default 20)")
    d.add_argument("--duration", help="how long to place calls, e.g. 30s, 2m (default 30s)")
    d.add_argument("--results-dir", type=Path, help="default loadcaller-results/demo-<time>")
    d.add_argument("--think", default="lognormal:250:0.3",
                   help="agent think time distribution (default lognormal:250:0.3)")
    d.add_argument("--backend-latency", default="lognormal:60:0.5",
                   help="mock backend latency distribution (default lognormal:60:0.5)")
    d.add_argument("--transport", choices=("twilio", "sip", "webrtc"), default="twilio",
                   help="how the callers reach the agent: twilio (Media Streams websocket, "
                   "the default), sip (SIP/RTP, with 1%% packet loss each way on the media) "
                   "or webrtc (aiortc, Pipecat SmallWebRTC signalling)")
    d.add_argument("--no-chaos", action="store_true",
                   help="no chaos proxy (by default the backend sits behind one that adds "
                   "1.2 s of latency, then renames a field, midway through the run)")
    _swarm_arguments(d)

    r = sub.add_parser("run", help="run a profile against your agent",
                       description="Run the callers a profile describes, as a Locust run. "
                       "Options override the profile.", epilog=EXIT_CODES_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("profile", type=Path, help="profile YAML, e.g. profiles/smoke.yaml")
    r.add_argument("--target", help="the agent: ws:// or wss:// (Twilio Media Streams), "
                   "sip: or sips: (SIP/RTP), webrtc+http(s):// (Pipecat SmallWebRTC "
                   "/api/offer) or whip+http(s):// (WHIP); overrides target.url and picks "
                   "the transport")
    r.add_argument("--users", type=_positive_int, help="concurrent callers, overrides load.users")
    r.add_argument("--duration", help="e.g. 30s, 5m; overrides load.duration. 0: a dry run "
                   "that validates and compiles the profile (speech synthesis included) "
                   "and places no call")
    r.add_argument("--results-dir", type=Path, help="default loadcaller-results/<name>-<time>")
    r.add_argument("--progress-every", type=_non_negative_number, default=2.0, metavar="S",
                   help="seconds between progress lines (0: none)")
    _swarm_arguments(r)
    g = r.add_argument_group("distributed runs (docs/distributed.md)")
    g.add_argument("--master", action="store_true",
                   help="coordinate remote workers; this process places no calls")
    g.add_argument("--worker", action="store_true", help="place calls for a --master")
    g.add_argument("--master-host", default="127.0.0.1", help="the master a --worker joins")
    g.add_argument("--master-port", type=_port, default=5557,
                   help="master's port for workers (default 5557)")
    g.add_argument("--master-bind-host", default="127.0.0.1",
                   help="interface a --master listens on for workers (default 127.0.0.1, "
                   "this machine only; 0.0.0.0 or an interface address for workers on other "
                   "machines: the worker port is not authenticated, keep it private)")
    g.add_argument("--expect-workers", type=_positive_int, default=1,
                   help="workers a --master waits for before starting (default 1)")
    g.add_argument("--expect-workers-timeout", type=_positive_number, default=60.0,
                   metavar="S", help="seconds a --master waits for them (default 60), "
                   "then exits 4")

    a = sub.add_parser("agent",
                       help="run the reference voice agent (Twilio Media Streams, SIP or WebRTC)",
                       description="A realistic agent to aim callers at: greets, detects the "
                       "end of each caller turn (500 ms of silence), calls a backend, thinks, "
                       "replies in real time, stops on barge-in, logs its ground truth.")
    a.add_argument("--host", default="127.0.0.1")
    a.add_argument("--port", type=_port, default=8080,
                   help="0 picks a free port (a UDP port for --transport sip)")
    a.add_argument("--transport", choices=("twilio", "sip", "webrtc"), default="twilio",
                   help="twilio: Media Streams websocket on ws://HOST:PORT/media; "
                   "sip: a SIP UAS on udp HOST:PORT with G.711 over RTP; "
                   "webrtc: POST http://HOST:PORT/api/offer (Pipecat SmallWebRTC) "
                   "and /whip (WHIP), PCMU or Opus")
    a.add_argument("--think", default="300ms", help="think time: 300ms, uniform:200:400, "
                   "normal:300:50, lognormal:300:0.4")
    a.add_argument("--greeting-delay", default="200ms", help="delay before the greeting")
    a.add_argument("--backend-url", help="POST each turn here, e.g. http://127.0.0.1:8000/v1/turn")
    a.add_argument("--backend-timeout", type=_positive_number, default=2.0, metavar="S")
    a.add_argument("--ground-truth", type=Path, help="write per-turn ground truth JSONL here")
    a.add_argument("--auth-token", help="require a valid X-Twilio-Signature")
    a.add_argument("--public-url", help="URL the signature is computed over (default wss://Host/path)")
    a.add_argument("--seed", type=int)
    a.add_argument("--max-calls", type=_positive_int, default=200,
                   help="webrtc: peer connections at once; more offers get 503 (default 200)")
    a.add_argument("--bargein-reaction", default="0ms", metavar="DURATION|never",
                   help="talked over, stop this long after the caller's onset (default 0ms: "
                   "at the next frame); never: talk on")
    a.add_argument("--reprompt-after", metavar="DURATION",
                   help="reprompt after this much dead air (default: never)")
    a.add_argument("--wrong-reply-ratio", type=float, default=0.0, metavar="R",
                   help="answer this share of turns (0-1) with a wrong phrase, logged in the "
                   "ground truth (for expect: checks)")

    b = sub.add_parser("backend", help="run the mock backend API the reference agent calls",
                       description="Answer POST http://HOST:PORT/v1/turn after a drawn "
                       "latency, as the reference agent's backend: start the agent with "
                       "--backend-url http://HOST:PORT/v1/turn (or a chaos proxy's route "
                       "in front of it).")
    b.add_argument("--host", default="127.0.0.1")
    b.add_argument("--port", type=_port, default=8000, help="0 picks a free port (default 8000)")
    b.add_argument("--latency", default="40ms", help="latency distribution, as agent --think "
                   "(default 40ms)")
    b.add_argument("--seed", type=int)

    v = sub.add_parser("validate", help="check profiles without placing calls (exit 0 or 2)",
                       description="Check each profile as `run` would (fields, secrets, WAV "
                       "files, pack phrases, the chaos section) without network, agent or "
                       "speech synthesis. Prints `ok FILE` for each valid one; otherwise every "
                       "error as FILE:LINE: FIELD: MESSAGE on stderr, and exits 2.")
    v.add_argument("profiles", type=Path, nargs="+", metavar="PROFILE")
    c = sub.add_parser("compare", help="flag latency regressions of one run against another "
                       "(exit 0, 1: regression, 2: bad input)",
                       description="Compare two results directories' turns.jsonl overall, per "
                       "turn and per chaos phase: a group regressed when its p95 (bootstrap) "
                       "or median (Mann-Whitney U) rose significantly and by more than the "
                       "thresholds, or its answered ratio fell (Fisher's exact test). Exit 0: no "
                       "regression; 1: B regressed against A, or placed calls and measured "
                       "no turn; 2: a directory is missing, unreadable or holds no call, or A "
                       "measured no turn.")
    c.add_argument("run_a", type=Path, metavar="RUN_A", help="the baseline results directory")
    c.add_argument("run_b", type=Path, metavar="RUN_B", help="the results directory to judge")
    c.add_argument("--alpha", type=_ratio, default=0.01,
                   help="significance level over all groups and tests (default 0.01)")
    c.add_argument("--min-increase-ms", type=float, default=50.0, metavar="MS",
                   help="a smaller rise is not a regression (default 50)")
    c.add_argument("--min-increase-ratio", type=float, default=0.10, metavar="R",
                   help="nor a rise under this share of A's figure (default 0.10)")
    c.add_argument("--max-answered-drop", type=_ratio, default=0.02, metavar="R",
                   help="answered ratio falling more than this is a regression (default 0.02)")
    c.add_argument("--min-samples", type=_positive_int, default=20, metavar="N",
                   help="fewer latencies a side: their p50 and p95 are not judged (the "
                   "answered ratio still is, by an exact test) (default 20)")
    rep = sub.add_parser("report", help="write a run's HTML report (self-contained, offline)",
                         description="Write one self-contained HTML file from a results "
                         "directory (runs write it at the end; this writes it again). "
                         "docs/report.md says how to read it.")
    rep.add_argument("results_dir", type=Path, metavar="RESULTS_DIR")
    rep.add_argument("-o", "--output", type=Path, metavar="FILE",
                     help="default RESULTS_DIR/report.html")
    sub.add_parser("schema", help="print the profile JSON Schema (for editors)")
    return parser


def _swarm_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--web", action="store_true",
                   help="Locust's web UI (start/stop the load there) instead of a headless run")
    p.add_argument("--web-host", default="127.0.0.1", help="where the web UI listens")
    p.add_argument("--web-port", type=_port, default=8089, help="web UI port (default 8089)")
    p.add_argument("--metrics-host", default="127.0.0.1", help="where /metrics listens")
    p.add_argument("--metrics-port", type=_metrics_port, default=9646,
                   help="Prometheus /metrics port (default 9646; 0 picks a free port; -1: off)")
    p.add_argument("--metrics-linger", type=_non_negative_number, default=0.0, metavar="S",
                   help="keep serving /metrics S seconds after the run, for a last scrape")
    p.add_argument("--processes", type=int, default=0, metavar="N",
                   help="fork N local worker processes, one per core at most: more is done "
                   "with a warning (default: "
                        "one process, or as many as the callers need at the transport's "
                        "calls per process, capped at the CPUs: docs/distributed.md)")
    p.add_argument("--csv", metavar="PREFIX", help="Locust's CSV statistics: PREFIX_stats.csv, ...")
    p.add_argument("--html", type=Path, metavar="FILE", help="Locust's HTML report at the end")
    p.add_argument("--saturation-lag-ms", type=_non_negative_number, default=5.0, metavar="MS",
                   help="media clock lag p99 above this marks the run untrustworthy (exit 3; "
                   "0: any lag does)")
    p.add_argument("--saturation-window", type=_window, default=5.0, metavar="DURATION",
                   help="judge the media clock over windows this long (default 5s): any "
                   "saturated window makes the run untrustworthy (exit 3) and tags its turns")
    p.add_argument("--max-failed-ratio", type=_ratio, default=0.5, metavar="R",
                   help="more than this share of failed calls fails the run (exit 1; default "
                   "0.5; 1: never). A run in which no call connected always fails")
    p.add_argument("--overwrite", action="store_true",
                   help="reuse a --results-dir that already holds files (a non-empty one is "
                   "refused otherwise)")
    p.add_argument("--gate", action="append", metavar="GATE",
                   help="an SLO gate added to the profile's, e.g. 'turn_latency_p95 < 1.5s' or "
                   "'turn_latency_p95 < 2.5s during FAULT' (repeatable; a failed one exits 1; "
                   "docs/profiles.md, gates)")
    p.add_argument("--junit", type=Path, metavar="FILE",
                   help="write JUnit XML at the end: one test case per gate, for CI")
    p.add_argument("--pushgateway", metavar="URL",
                   help="push the run's final figures and gate results to this Prometheus "
                   "Pushgateway (http://HOST:9091); unreachable: a warning")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _dispatch(args)
    except ProfileError as exc:
        print(f"loadcaller: invalid profile\n{redact_text(str(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (blame.LocalError, ValueError) as exc:  # chaos's local errors too
        print(f"loadcaller: {redact_text(str(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except blame.RemoteError as exc:  # a peer failed outside any call's own handling
        print(f"loadcaller: the far end failed: {redact_text(str(exc))}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "schema":
        from loadcaller.profile import profile_json_schema

        _stdout(json.dumps(profile_json_schema(), indent=2))
        return 0
    if args.command == "validate":
        return _validate(args.profiles)
    if args.command == "compare":
        import io

        from loadcaller.gates.compare import run_compare, settings_from

        table = io.StringIO()  # printed by _stdout: `compare A B | head` is no error
        code = run_compare(args.run_a, args.run_b, settings_from(args), out=table)
        if table.getvalue():
            _stdout(table.getvalue().rstrip("\n"))
        return code
    if args.command == "report":
        return _report(args.results_dir, args.output)
    if args.command in ("run", "demo"):
        from loadcaller.swarm import bootstrap

        bootstrap.patch()  # before anything imports Locust
    from loadcaller.runner import run_async

    if args.command == "demo":
        from loadcaller.demo import run_demo

        if args.users:
            _warn_open_files(-(-args.users // max(1, args.processes)))
        return run_demo(users=args.users, duration=args.duration, results_dir=args.results_dir,
                        think=args.think, backend_latency=args.backend_latency,
                        swarm=swarm_options(args), chaos=not args.no_chaos,
                        transport=args.transport, gates=args.gate or ())
    if args.command == "run":
        return _run(args)
    if args.command == "agent":
        return int(run_async(_agent(args)))
    if args.command == "backend":
        return int(run_async(_backend(args)))
    raise AssertionError(args.command)


def _stdout(text: str) -> None:
    """Print to stdout; a reader that went away (``| head``) is not an error."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        import os

        # Python flushes stdout again at exit: point it at /dev/null first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _validate(paths: list[Path]) -> int:
    """``loadcaller validate``: every file checked, every error listed; 0 or 2."""
    from loadcaller.compile import check_profile
    from loadcaller.profile import load_profile

    code = 0
    for path in paths:
        try:
            profile = load_profile(path)
            check_profile(profile, source=str(path), base_dir=path.parent)
        except ProfileError as exc:
            print(redact_text(str(exc)), file=sys.stderr, flush=True)
            code = EXIT_BAD_INPUT
        except (blame.LocalError, ValueError, RecursionError, MemoryError,
                OverflowError) as exc:  # a backstop: the loader bounds its input
            print(f"{path}: (top level): {redact_text(str(exc)) or type(exc).__name__}",
                  file=sys.stderr, flush=True)
            code = EXIT_BAD_INPUT
        else:
            _stdout(f"ok {path}")
    return code


def swarm_options(args: argparse.Namespace, results_dir: Path | None = None) -> Any:
    """The :class:`~loadcaller.swarm.options.SwarmOptions` the command line asks for."""
    from loadcaller.gates.push import check_url
    from loadcaller.swarm.options import SwarmOptions
    from loadcaller.swarm.preflight import check_swarm_options

    if args.processes < 0:
        raise LocalError("--processes must be 0 or more")
    master = getattr(args, "master", False)
    worker = getattr(args, "worker", False)
    if master and worker:
        raise LocalError("--master and --worker exclude each other")
    if args.processes and (master or worker):
        raise LocalError("--processes forks local workers; do not combine it with "
                         "--master or --worker")
    cpus = os.cpu_count() or 1
    if args.processes > cpus:
        print(f"loadcaller: warning: --processes {args.processes} is more than this "
              f"machine's {cpus} CPUs: processes sharing a core measure their own waits as "
              "latency (watch the saturation verdict)", file=sys.stderr, flush=True)
    opts = SwarmOptions(
        role="master" if master else "worker" if worker else "local",
        processes=args.processes, results_dir=results_dir, web=args.web,
        web_host=args.web_host, web_port=args.web_port, metrics_host=args.metrics_host,
        metrics_port=None if args.metrics_port < 0 else args.metrics_port,
        metrics_linger_s=args.metrics_linger,
        master_host=getattr(args, "master_host", "127.0.0.1"),
        master_port=getattr(args, "master_port", 5557),
        master_bind_host=getattr(args, "master_bind_host", "127.0.0.1"),
        expect_workers=getattr(args, "expect_workers", 1),
        expect_workers_timeout_s=getattr(args, "expect_workers_timeout", 60.0),
        saturation_lag_ms=args.saturation_lag_ms, max_failed_ratio=args.max_failed_ratio,
        saturation_window_s=args.saturation_window,
        progress_every_s=getattr(args, "progress_every", 2.0),
        csv_prefix=args.csv, html_path=args.html, overwrite=args.overwrite,
        junit_path=args.junit,
        pushgateway_url=None if args.pushgateway is None else check_url(args.pushgateway),
    )
    check_swarm_options(opts)  # before any worker is forked or agent started
    return opts


def spread_processes(opts: Any, spec: Any) -> tuple[Any, str]:
    """``opts`` with the worker processes a local run without ``--processes`` needs
    (:func:`~loadcaller.transports.base.default_processes`), and why ("" : unchanged)."""
    import dataclasses

    from loadcaller.engine import planned_users
    from loadcaller.transports.base import default_processes

    if spec.target.transport == "pstn" and (opts.role != "local" or opts.processes > 1):
        raise LocalError("target.transport pstn places every call from one process, so that "
                         "its guard rails (max_concurrent, max_minutes, calls_per_second) are "
                         "the run's: drop --processes and --master/--worker")
    if opts.role != "local" or opts.processes:
        return opts, ""
    procs, why = default_processes(planned_users(spec), spec.target)
    if not procs:
        return opts, ""
    return dataclasses.replace(opts, processes=procs), why


def _run(args: argparse.Namespace) -> int:
    import dataclasses

    from loadcaller.compile import compile_profile
    from loadcaller.engine import planned_users
    from loadcaller.gates.parse import cli_gates, fault_names
    from loadcaller.profile import load_profile
    from loadcaller.swarm.run import run_swarm

    overrides: dict[str, Any] = {}
    if args.target:
        overrides["target.url"] = args.target
    if args.users:
        overrides["load.users"] = args.users
    if args.duration:
        overrides["load.duration"] = args.duration
    profile = load_profile(args.profile, overrides)
    spec = compile_profile(profile, source=str(args.profile), base_dir=args.profile.parent)
    spec = dataclasses.replace(spec, gates=spec.gates + cli_gates(args.gate,
                                                                  fault_names(profile.chaos)))
    out = args.results_dir or Path("loadcaller-results") / (
        f"{profile.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    opts, why = spread_processes(swarm_options(args), spec)
    if why:
        print(f"loadcaller run: {why}", file=sys.stderr, flush=True)
    if opts.role == "local":
        _warn_open_files(-(-planned_users(spec) // max(1, opts.processes)))
    if opts.role == "worker":
        print(f"loadcaller run {args.profile}: worker of {opts.master_host}:{opts.master_port} "
              f"-> {redact_url(spec.target.url)}", file=sys.stderr, flush=True)
    else:
        opts = dataclasses.replace(opts, results_dir=out)
        _keep_profile(profile, out, overwrite=opts.overwrite,
                      inputs=[args.profile, *_profile_inputs(profile, args.profile.parent)])
        shape = f"{type(spec.shape).__name__.lower()} shape" if spec.shape else (
            f"{spec.plan.users} callers")
        span = (f"for {spec.plan.duration_s:g}s" if spec.plan.duration_s > 0 or spec.shape
                else "dry run (duration 0: no call)")
        print(f"loadcaller run {args.profile}: {shape} -> {redact_url(spec.target.url)} "
              f"{span}; results in {out}", file=sys.stderr, flush=True)
    _, code = run_swarm(spec, opts)
    return code


def _keep_profile(profile: Any, out: Path, *, overwrite: bool, inputs: list[Path]) -> None:
    """Claim the results directory and keep the profile used there (redacted)."""
    from loadcaller.report.profile_copy import write_profile_copy
    from loadcaller.swarm.resultsdir import claim_results_dir

    claim_results_dir(out, overwrite=overwrite, inputs=inputs)
    write_profile_copy(profile, out)


def _profile_inputs(profile: Any, base_dir: Path) -> list[Path]:
    """Files a profile may name (WAVs, the data CSV, recordings): every string in it, as
    a path relative to ``base_dir`` and to its recordings directory. Most are no file."""
    strings: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            strings.append(value)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(profile.model_dump(mode="json"))
    dirs = [base_dir] + ([base_dir / profile.recordings] if profile.recordings else [])
    return [d / s for d in dirs for s in strings if s and "\0" not in s]


def _report(results_dir: Path, output: Path | None) -> int:
    """``loadcaller report``: 0, or 2 when the directory or the output is unusable."""
    from loadcaller.report.html import write_report

    try:
        path = write_report(results_dir, output)
    except OSError as exc:  # not a results directory, or the output cannot be written
        print(f"loadcaller: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    _stdout(str(path))
    return 0


def _warn_open_files(users_per_process: int) -> None:
    """Raise the open-file limit; warn when it is short for the callers planned."""
    from loadcaller.engine import open_file_warning

    warning = open_file_warning(users_per_process)
    if warning is not None:
        print(f"loadcaller: warning: {warning}", file=sys.stderr, flush=True)


async def _until_signalled() -> None:
    import signal

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def _agent(args: argparse.Namespace) -> int:
    from loadcaller.agent.dist import parse_distribution
    from loadcaller.agent.server import ReferenceAgent
    from loadcaller.agent.session import AgentConfig, reprompt_voice
    from loadcaller.config import _duration

    reaction = (None if args.bargein_reaction == "never"
                else 1000 * _duration(args.bargein_reaction))  # ValueError: exit 2, one line
    reprompt = None if args.reprompt_after is None else _duration(args.reprompt_after)
    if not 0.0 <= args.wrong_reply_ratio <= 1.0:
        raise ValueError("--wrong-reply-ratio is a share, 0 to 1")
    config = AgentConfig(think=parse_distribution(args.think),
                         greeting_delay=parse_distribution(args.greeting_delay),
                         backend_url=args.backend_url, backend_timeout_s=args.backend_timeout,
                         bargein_reaction_ms=reaction, reprompt_after_s=reprompt,
                         reprompt=None if reprompt is None else reprompt_voice(),
                         wrong_reply_ratio=args.wrong_reply_ratio)
    try:
        truth = args.ground_truth.open("a", encoding="utf-8") if args.ground_truth else None
    except OSError as exc:
        raise LocalError(f"--ground-truth {args.ground_truth}: cannot write there "
                         f"({exc.strerror or exc})") from None
    agent = ReferenceAgent(config, truth=truth, auth_token=args.auth_token,
                           public_url=args.public_url, seed=args.seed)
    try:  # hang_up: an async close of the calls in progress (WebRTC)
        url, where, stop, hang_up = await _start_agent(agent, args)
    except OSError as exc:  # the port is taken, the host is not this machine's, ...
        await agent.close()
        if truth is not None:
            truth.close()
        raise LocalError(f"cannot listen on {args.host}:{args.port} "
                         f"({exc.strerror or exc})") from None
    print(f"loadcaller agent: {where} (think {config.think}, "
          f"backend {args.backend_url or 'none'})", file=sys.stderr)
    print(f"READY {url}", flush=True)
    try:
        await _until_signalled()
    finally:
        stop()
        if hang_up is not None:
            await hang_up()
        await agent.close()
        if truth is not None:
            truth.close()
    return 0


async def _start_agent(agent: Any, args: argparse.Namespace) -> tuple[str, str, Any, Any]:
    """Start the reference agent's server: its URL, a description, stop and hang-up."""
    hang_up = None
    if args.transport == "sip":
        from loadcaller.agent.sip import SipAgent

        sip = SipAgent(agent, host=args.host, seed=args.seed)
        await agent.open()
        port = await sip.start(args.port)
        url, stop = f"sip:agent@{args.host}:{port}", sip.close
        where = f"SIP on udp {args.host}:{port}"
    elif args.transport == "webrtc":
        from loadcaller.agent.webrtc import WebRtcAgent

        rtc = WebRtcAgent(agent, host=args.host, max_calls=args.max_calls)
        port = await rtc.start(args.port)
        url = f"webrtc+http://{args.host}:{port}/api/offer"
        where = f"WebRTC on http://{args.host}:{port}/api/offer and /whip"
        stop, hang_up = (lambda: None), rtc.close
    else:
        server, port = await agent.start(args.host, args.port)
        url = f"ws://{args.host}:{port}/media"
        where, stop = f"Twilio Media Streams on {url}", server.close
    return url, where, stop, hang_up


async def _backend(args: argparse.Namespace) -> int:
    from loadcaller.agent.backend import start_backend
    from loadcaller.agent.dist import parse_distribution

    try:
        runner, port = await start_backend(args.host, args.port,
                                           parse_distribution(args.latency), args.seed)
    except OSError as exc:  # the port is taken, the host is not this machine's, ...
        raise LocalError(f"cannot listen on {args.host}:{args.port} "
                         f"({exc.strerror or exc})") from None
    print(f"loadcaller backend: http://{args.host}:{port}/v1/turn (latency {args.latency})",
          file=sys.stderr)
    print(f"READY http://{args.host}:{port}", flush=True)
    try:
        await _until_signalled()
    finally:
        await runner.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
