"""ChaosProxy: every listener of a config, the live fault set, metrics and control API.

This is the library entry point (loadcaller starts one next to its callers)::

    proxy = ChaosProxy(load_config(Path("chaos.yaml")), seed=7)
    await proxy.start()
    proxy.listeners        # {"llm": ("127.0.0.1", 40123), ...}
    proxy.active_faults()  # tag each measured turn
    await proxy.stop()
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from prometheus_client import CollectorRegistry

from chaos.config import ChaosConfig, ControlConfig, RouteConfig
from chaos.control import ControlApi
from chaos.faultset import FaultSet
from chaos.metrics import ChaosMetrics


class Listener(Protocol):
    """What every proxy (http, ws, udp) provides."""

    async def start(self) -> tuple[str, int]:
        """Bind; return the bound address."""
        ...

    async def stop(self) -> None:
        """Stop."""
        ...


def _listener(route: RouteConfig, faults: FaultSet, metrics: ChaosMetrics,
              clock: Callable[[], float]) -> Listener:
    if route.kind == "http":
        from chaos.http import HttpProxy

        return HttpProxy(route, faults, metrics, clock)
    if route.kind == "ws":
        from chaos.ws import WsProxy

        return WsProxy(route, faults, metrics, clock)
    from chaos.udp import UdpRelay

    return UdpRelay(route, faults, metrics, clock)


class ChaosProxy:
    """All listeners of a chaos config, sharing one fault set and one registry."""

    def __init__(self, config: ChaosConfig, *, seed: int | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 control: ControlConfig | None = None) -> None:
        self.config = config
        self.seed = seed if seed is not None else config.seed
        self.clock = clock
        self.faults = FaultSet(seed=self.seed, clock=clock)
        self.metrics = ChaosMetrics(self.faults.states)
        self.faults.metrics = self.metrics
        self.control_config = control if control is not None else config.control
        self._listeners: dict[str, Listener] = {}
        self._addresses: dict[str, tuple[str, int]] = {}
        self._control: ControlApi | None = None
        self.started_at: float | None = None

    @property
    def registry(self) -> CollectorRegistry:
        """The proxy's own Prometheus registry."""
        return self.metrics.registry

    @property
    def listeners(self) -> dict[str, tuple[str, int]]:
        """Bound addresses by route name (and "control" for the control API)."""
        return dict(self._addresses)

    async def start(self) -> None:
        """Load the configured faults (their timelines start now) and bind everything."""
        self.started_at = self.clock()
        self.faults.load(self.config, self.started_at)
        try:
            for route in self.config.routes:
                listener = _listener(route, self.faults, self.metrics, self.clock)
                self._listeners[route.name] = listener  # stopped below if start fails
                self._addresses[route.name] = await listener.start()
            if self.control_config is not None:
                self._control = ControlApi(self, self.control_config)
                key = "control" if "control" not in self._addresses else "_control"
                self._addresses[key] = await self._control.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Close every listener and the control API."""
        if self._control is not None:
            await self._control.stop()
            self._control = None
        for listener in self._listeners.values():
            await listener.stop()
        self._listeners.clear()

    async def __aenter__(self) -> ChaosProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    def active_faults(self) -> list[str]:
        """Names of the faults switched on right now."""
        return self.faults.active()

    def injected_counts(self) -> dict[str, int]:
        """How many times each fault has acted so far."""
        return self.faults.injected()
