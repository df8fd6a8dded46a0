"""Run a coroutine on uvloop: the loop every long-running command uses."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any


def run_async(coro: Awaitable[Any]) -> Any:
    """Run a coroutine on uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(coro)  # type: ignore[arg-type]
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)  # type: ignore[arg-type]
