"""The live set of wrapped faults shared by every listener and the control API."""

from __future__ import annotations

from collections.abc import Callable

from chaos.config import ChaosConfig, FaultSpec
from chaos.metrics import ChaosMetrics
from chaos.timeline import Timeline
from chaos.wrapper import WrappedFault, fault_rng


class FaultSet:
    """Faults by name; per-route lists are cached and rebuilt on every change."""

    def __init__(self, *, seed: int | None, clock: Callable[[], float],
                 metrics: ChaosMetrics | None = None) -> None:
        self.seed = seed
        self.clock = clock
        self.metrics = metrics
        self._faults: dict[str, WrappedFault] = {}
        self.timeline = Timeline()
        self._cache: dict[tuple[str, str], tuple[WrappedFault, ...]] = {}

    def load(self, config: ChaosConfig, origin: float) -> None:
        """Add every fault of `config`, all counting from `origin`."""
        for spec in config.faults:
            self.add(spec, origin=origin)

    def add(self, spec: FaultSpec, *, origin: float | None = None) -> WrappedFault:
        """Add (or replace) a fault; its timeline counts from `origin` (default: now)."""
        m = self.metrics
        wrapped = WrappedFault(
            spec, rng=fault_rng(spec, self.seed),
            origin=self.clock() if origin is None else origin,
            on_injected=m.on_injected if m else None,
            on_skipped=m.on_skipped if m else None,
        )
        self._faults[spec.name] = wrapped
        self.timeline.add(spec.name, wrapped.schedule, wrapped.origin)
        self._cache.clear()
        return wrapped

    def remove(self, name: str) -> bool:
        """Remove a fault by name; False when there was none."""
        found = self._faults.pop(name, None) is not None
        self.timeline.remove(name)
        self._cache.clear()
        return found

    def clear(self) -> None:
        """Remove every fault."""
        self._faults.clear()
        self.timeline.clear()
        self._cache.clear()

    def get(self, name: str) -> WrappedFault | None:
        """A fault by name."""
        return self._faults.get(name)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(list(self._faults.values()))

    def __len__(self) -> int:
        return len(self._faults)

    def for_route(self, route: str, kind: str) -> tuple[WrappedFault, ...]:
        """The faults that may act on `route` (of kind http/ws/udp), in order."""
        key = (route, kind)
        cached = self._cache.get(key)
        if cached is None:
            cached = tuple(f for f in self._faults.values() if f.applies_to(route, kind))
            self._cache[key] = cached
        return cached

    def active(self, now: float | None = None) -> list[str]:
        """Names of the faults switched on at `now` (default: the clock)."""
        return self.timeline.active(self.clock() if now is None else now)

    def next_change(self, now: float | None = None) -> float | None:
        """Clock reading of the next fault switching on or off, None if none will."""
        return self.timeline.next_change(self.clock() if now is None else now)

    def states(self) -> list[tuple[str, bool]]:
        """(name, active) for every fault, for the chaos_fault_active gauge."""
        now = self.clock()
        return [(f.name, f.active(now)) for f in self._faults.values()]

    def injected(self) -> dict[str, int]:
        """Injections so far, by fault name."""
        return {f.name: f.injected for f in self._faults.values()}
