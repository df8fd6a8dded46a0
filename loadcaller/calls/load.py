"""A closed-model load: N users, each placing one call after another.

Users start at ``spawn_rate`` per second. When the duration is up no new call
starts; calls in progress get ``stop_timeout_s`` to finish, then hang up
(outcome ``cancelled``). A stop request (Ctrl-C) hangs every call up at once.
Locust drives the same ``place_call`` when the swarm runs under it.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from loadcaller.calls.call import CallRecord
from loadcaller.transports import base

SETUP_BACKOFF_S = 1.0  # a user whose call failed to set up waits before redialling


@dataclass(frozen=True, slots=True)
class LoadPlan:
    users: int
    spawn_rate: float
    duration_s: float
    stop_timeout_s: float = 30.0


class ClosedLoad:
    """Runs a :class:`LoadPlan`; ``place_call(call_id)`` places one call."""

    def __init__(self, plan: LoadPlan, place_call: Callable[[str], Awaitable[CallRecord]]):
        self.plan = plan
        self.place_call = place_call
        self.users_running = 0
        self.draining = False
        self._ids = itertools.count(1)

    async def _user(self) -> None:
        self.users_running += 1
        try:
            while not self.draining:
                rec = await self.place_call(f"call-{next(self._ids):06d}")
                if rec.outcome == base.FAILED_SETUP and not self.draining:
                    await asyncio.sleep(SETUP_BACKOFF_S)
        finally:
            self.users_running -= 1

    async def run(self, stop: asyncio.Event) -> str:
        """Run until the duration ends ("duration") or ``stop`` is set ("stopped")."""
        plan = self.plan
        loop = asyncio.get_running_loop()
        t_end = loop.time() + plan.duration_s
        tasks: list[asyncio.Task[None]] = []
        interval = 1.0 / plan.spawn_rate if plan.spawn_rate > 0 else 0.0
        stop_wait = asyncio.ensure_future(stop.wait())
        try:
            for i in range(plan.users):
                if stop.is_set() or loop.time() >= t_end:
                    break
                tasks.append(asyncio.ensure_future(self._user()))
                if interval and i + 1 < plan.users:
                    await asyncio.wait({stop_wait}, timeout=interval)
            left = t_end - loop.time()
            if left > 0 and not stop.is_set():
                await asyncio.wait({stop_wait}, timeout=left)
            if stop.is_set():
                return "stopped"
            self.draining = True
            await self._drain(tasks, stop_wait)
            return "stopped" if stop.is_set() else "duration"
        finally:
            self.draining = True
            stop_wait.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _drain(self, tasks: list[asyncio.Task[None]],
                     stop_wait: asyncio.Future[Any]) -> None:
        """Let calls in progress finish, up to the stop timeout or a stop request."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.plan.stop_timeout_s
        pending: set[asyncio.Future[Any]] = {t for t in tasks if not t.done()}
        while pending and not stop_wait.done():
            left = deadline - loop.time()
            if left <= 0:
                return
            _, pending = await asyncio.wait(
                pending | {stop_wait}, timeout=left, return_when=asyncio.FIRST_COMPLETED
            )
            pending.discard(stop_wait)
