"""``loadcaller``: load and chaos testing for voice AI agents.

Subcommands: demo, run, agent, backend, schema. Exit codes: 0 ok, 2 bad input
(profile, options), 130/143 stopped by SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from loadcaller.errors import LocalError, ProfileError

EXIT_BAD_INPUT = 2


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loadcaller",
        description="Live telephony load testing for voice AI agents: a swarm of synthetic "
        "callers measures every turn's latency as the caller hears it.",
        epilog="Start with `loadcaller demo`. Docs: README.md and docs/.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    d = sub.add_parser("demo", help="run callers against a built-in agent and backend (~30 s)",
                       description="Start a mock backend and the reference agent on 127.0.0.1, "
                       "run 20 concurrent callers for about 30 s, print the results table.")
    d.add_argument("--users", type=_positive_int, help="concurrent callers (default 20)")
    d.add_argument("--duration", help="how long to place calls, e.g. 30s, 2m (default 30s)")
    d.add_argument("--results-dir", type=Path, help="default loadcaller-results/demo-<time>")
    d.add_argument("--think", default="lognormal:250:0.3",
                   help="agent think time distribution (default lognormal:250:0.3)")
    d.add_argument("--backend-latency", default="lognormal:60:0.5",
                   help="mock backend latency distribution (default lognormal:60:0.5)")

    r = sub.add_parser("run", help="run a profile against your agent",
                       description="Run the callers a profile describes. Options override the "
                       "profile.")
    r.add_argument("profile", type=Path, help="profile YAML, e.g. profiles/smoke.yaml")
    r.add_argument("--target", help="agent URL (ws:// or wss://), overrides target.url")
    r.add_argument("--users", type=_positive_int, help="concurrent callers, overrides load.users")
    r.add_argument("--duration", help="e.g. 30s, 5m; overrides load.duration")
    r.add_argument("--results-dir", type=Path, help="default loadcaller-results/<name>-<time>")
    r.add_argument("--progress-every", type=float, default=2.0, metavar="S",
                   help="seconds between progress lines (0: none)")

    a = sub.add_parser("agent", help="run the reference voice agent (Twilio Media Streams)",
                       description="A realistic agent to aim callers at: greets, detects the "
                       "end of each caller turn (500 ms of silence), calls a backend, thinks, "
                       "replies in real time, stops on barge-in, logs its ground truth.")
    a.add_argument("--host", default="127.0.0.1")
    a.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    a.add_argument("--think", default="300ms", help="think time: 300ms, uniform:200:400, "
                   "normal:300:50, lognormal:300:0.4")
    a.add_argument("--greeting-delay", default="200ms", help="delay before the greeting")
    a.add_argument("--backend-url", help="POST each turn here, e.g. http://127.0.0.1:8000/v1/turn")
    a.add_argument("--backend-timeout", type=float, default=2.0, metavar="S")
    a.add_argument("--ground-truth", type=Path, help="write per-turn ground truth JSONL here")
    a.add_argument("--auth-token", help="require a valid X-Twilio-Signature")
    a.add_argument("--public-url", help="URL the signature is computed over (default wss://Host/path)")
    a.add_argument("--seed", type=int)

    b = sub.add_parser("backend", help="run the mock backend API the reference agent calls")
    b.add_argument("--host", default="127.0.0.1")
    b.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    b.add_argument("--latency", default="40ms", help="latency distribution (like agent --think)")
    b.add_argument("--seed", type=int)

    sub.add_parser("schema", help="print the profile JSON Schema (for editors)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _dispatch(args)
    except ProfileError as exc:
        print(f"loadcaller: invalid profile\n{exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (LocalError, ValueError) as exc:
        print(f"loadcaller: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    from loadcaller.runner import run_async

    if args.command == "schema":
        from loadcaller.profile import Profile

        print(json.dumps(Profile.model_json_schema(), indent=2))
        return 0
    if args.command == "demo":
        from loadcaller.demo import run_demo

        return int(run_async(run_demo(users=args.users, duration=args.duration,
                                      results_dir=args.results_dir, think=args.think,
                                      backend_latency=args.backend_latency)))
    if args.command == "run":
        return int(run_async(_run(args)))
    if args.command == "agent":
        return int(run_async(_agent(args)))
    if args.command == "backend":
        return int(run_async(_backend(args)))
    raise AssertionError(args.command)


async def _run(args: argparse.Namespace) -> int:
    from loadcaller.compile import compile_profile
    from loadcaller.profile import load_profile
    from loadcaller.runner import run_spec

    overrides: dict[str, Any] = {}
    if args.target:
        overrides["target.url"] = args.target
    if args.users:
        overrides["load.users"] = args.users
    if args.duration:
        overrides["load.duration"] = args.duration
    profile = load_profile(args.profile, overrides)
    spec = compile_profile(profile, source=str(args.profile), base_dir=args.profile.parent)
    out = args.results_dir or Path("loadcaller-results") / (
        f"{profile.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    print(f"loadcaller run {args.profile}: {spec.plan.users} callers -> {spec.target.url} "
          f"for {spec.plan.duration_s:g}s; results in {out}", file=sys.stderr, flush=True)
    _, code = await run_spec(spec, out, progress_every_s=args.progress_every)
    return code


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
    from loadcaller.agent.session import AgentConfig

    config = AgentConfig(think=parse_distribution(args.think),
                         greeting_delay=parse_distribution(args.greeting_delay),
                         backend_url=args.backend_url, backend_timeout_s=args.backend_timeout)
    truth = args.ground_truth.open("a", encoding="utf-8") if args.ground_truth else None
    agent = ReferenceAgent(config, truth=truth, auth_token=args.auth_token,
                           public_url=args.public_url, seed=args.seed)
    server, port = await agent.start(args.host, args.port)
    print(f"loadcaller agent: Twilio Media Streams on ws://{args.host}:{port}/media "
          f"(think {config.think}, backend {args.backend_url or 'none'})", file=sys.stderr)
    print(f"READY ws://{args.host}:{port}/media", flush=True)
    try:
        await _until_signalled()
    finally:
        server.close()
        await agent.close()
        if truth is not None:
            truth.close()
    return 0


async def _backend(args: argparse.Namespace) -> int:
    from loadcaller.agent.backend import start_backend
    from loadcaller.agent.dist import parse_distribution

    runner, port = await start_backend(args.host, args.port, parse_distribution(args.latency),
                                       args.seed)
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
