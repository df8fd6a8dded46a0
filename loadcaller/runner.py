"""Run a compiled profile from the command line: progress, signals, summary.

Ctrl-C (SIGINT) or SIGTERM stops the run: every call in progress sends
``stop`` and hangs up, the summary is written, and the exit code is 130 or 143.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from loadcaller.calls.load import ClosedLoad
from loadcaller.compile import RunSpec
from loadcaller.console import print_summary, progress_line
from loadcaller.engine import Engine, drain

EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}


async def run_spec(
    spec: RunSpec,
    results_dir: Path | None,
    *,
    progress_every_s: float = 2.0,
    extra_run_info: dict[str, Any] | None = None,
    on_summary: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
) -> tuple[dict[str, Any], int]:
    """Run the closed load; return the summary and the exit code."""
    engine = Engine(spec, results_dir)
    stop = asyncio.Event()
    got: list[int] = []
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        if not got:
            print(f"\n{sig.name}: hanging up every call and writing the summary...",
                  file=sys.stderr)
        got.append(EXIT_SIGNAL[sig])
        stop.set()

    for sig in EXIT_SIGNAL:
        loop.add_signal_handler(sig, on_signal, sig)
    t0 = time.monotonic()
    load = ClosedLoad(spec.plan, engine.place_call)

    def run_info(how: str) -> dict[str, Any]:
        return {"name": spec.name, "transport": spec.transport, "target": spec.target.url,
                "users": spec.plan.users, "duration_s": spec.plan.duration_s,
                "elapsed_s": round(time.monotonic() - t0, 3), "ended_by": how,
                "results_dir": str(results_dir) if results_dir else None,
                **(extra_run_info or {})}

    async def report() -> None:
        while True:
            await asyncio.sleep(progress_every_s)
            s = engine.results.summary(engine.generator_health(), {})
            print(progress_line(time.monotonic() - t0, spec.plan.duration_s,
                                len(engine.active), s), file=sys.stderr, flush=True)

    reporter = asyncio.ensure_future(report()) if progress_every_s > 0 else None
    try:
        how = await load.run(stop)
        await drain(engine)
    finally:
        if reporter is not None:
            reporter.cancel()
        for sig in EXIT_SIGNAL:
            loop.remove_signal_handler(sig)
    if got:
        how = "signal"
    summary = engine.results.summary(engine.generator_health(), run_info(how))
    if on_summary is not None:
        await on_summary(summary)
    engine.results.write_summary(summary)
    await engine.close()
    print_summary(summary)
    return summary, (got[0] if got else 0)


def run_async(coro: Awaitable[Any]) -> Any:
    """Run a coroutine on uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(coro)  # type: ignore[arg-type]
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)  # type: ignore[arg-type]
