"""`chaos-proxy`: run the chaos proxy from a YAML config.

Exit codes: 0 clean stop, 2 bad config or arguments (message on stderr, no
traceback), 1 a listener could not start (address in use...).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from chaos.config import ControlConfig, known_fault_types, load_config
from chaos.errors import ConfigError, LocalError, UpstreamError
from chaos.proxy import ChaosProxy
from chaos.units import parse_hostport

EPILOG = """\
examples:
  chaos-proxy --config chaos.yaml
  chaos-proxy --config chaos.yaml --control 127.0.0.1:9100 --seed 7
  chaos-proxy --config chaos.yaml --control 0.0.0.0:9100 --token "$CHAOS_TOKEN"
  chaos-proxy --config chaos.yaml --check        # validate and exit

fault types are documented in docs/faults.md; --list-faults prints them.
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to render --help)."""
    p = argparse.ArgumentParser(
        prog="chaos-proxy",
        description="Inject HTTP, LLM-stream, schema, WebSocket and RTP faults between a "
                    "voice agent and its dependencies.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, help="chaos YAML file (routes and faults)")
    p.add_argument("--control", metavar="HOST:PORT",
                   help="serve the control API here (default: the config's `control`, "
                        "else none); any address but loopback needs --token")
    p.add_argument("--token", help="bearer token required by the control API "
                                   "(default: $CHAOS_PROXY_TOKEN, which keeps it out of ps)")
    p.add_argument("--seed", type=int, help="seed for every random choice (replays a run)")
    p.add_argument("--check", action="store_true", help="validate the config and exit")
    p.add_argument("--list-faults", action="store_true", help="print the fault types and exit")
    return p


async def _serve(proxy: ChaosProxy) -> None:
    await proxy.start()
    for name, (host, port) in proxy.listeners.items():
        print(f"chaos-proxy: {name} listening on {host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    previous: list[str] = []
    try:
        while not stop.is_set():
            active = proxy.active_faults()
            if active != previous:
                print(f"chaos-proxy: active faults: {', '.join(active) or '(none)'}", flush=True)
                previous = active
            # wake at the next switch on/off (to log it on time), at least once a second
            # (faults added or removed through the control API)
            nxt = proxy.faults.next_change()
            wait = 1.0 if nxt is None else min(1.0, max(0.01, nxt - proxy.clock() + 0.001))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
    finally:
        await proxy.stop()


def _run(main: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop when it is installed (lower proxy overhead), else asyncio."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `chaos-proxy` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_faults:
        print("\n".join(known_fault_types()))
        return 0
    if args.config is None:
        parser.error("--config is required")
    try:
        config = load_config(args.config)
        control = config.control
        token = args.token or os.environ.get("CHAOS_PROXY_TOKEN") or (
            control.token if control else None)
        if args.control is not None:
            control = ControlConfig(listen=parse_hostport(args.control), token=token)
        elif control is not None:
            control = ControlConfig(listen=control.listen, token=token)
        elif args.token is not None:
            raise LocalError("--token needs a control API: give --control HOST:PORT "
                             "or a `control:` section")
        proxy = ChaosProxy(config, seed=args.seed, control=control)
        if control is not None:
            from chaos.control import is_loopback

            if not is_loopback(control.listen[0]) and not control.token:
                raise LocalError(f"the control API bound to {control.listen[0]} "
                                 "needs a token (--token)")
    except (ConfigError, LocalError, ValueError) as e:
        print(f"chaos-proxy: error: {e}", file=sys.stderr)
        return 2
    if args.check:
        print(f"chaos-proxy: {args.config}: ok ({len(config.routes)} routes, "
              f"{len(config.faults)} faults)")
        return 0
    try:
        _run(_serve(proxy))
    except UpstreamError as e:
        print(f"chaos-proxy: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"chaos-proxy: error: cannot listen: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
