"""The wrapper: shared settings that decide whether a fault acts on a request.

Every fault is wrapped once. For each request (HTTP, also on kept-alive
connections), message (WebSocket) or packet (UDP) the proxy asks
`WrappedFault.decide(info, now)`; the checks run in a fixed order so a seed
replays the same decisions:

    window/timeline on?  ->  match (host, path glob, method, headers, message
    type, direction)  ->  after_n  ->  every_nth  ->  max_count  ->
    probability (one draw from the fault's own seeded RNG)

The fault itself only says what happens (chaos/faults/).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Literal

from chaos.actions import FaultContext
from chaos.config import FaultSpec, Match
from chaos.faults import Fault


@dataclass(frozen=True)
class MatchInfo:
    """What the wrapper may match on, for one request, message or packet."""

    host: str = ""
    path: str = ""
    method: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    message: Literal["text", "binary"] | None = None
    direction: Literal["upstream", "downstream"] = "upstream"


def matches(match: Match, info: MatchInfo) -> bool:
    """True when every key given in `match` matches `info`."""
    if match.host is not None:
        host = info.host.rsplit(":", 1)[0] if info.host.count(":") == 1 else info.host
        if not (fnmatchcase(host, match.host) or fnmatchcase(info.host, match.host)):
            return False
    if match.path is not None and not fnmatchcase(info.path, match.path):
        return False
    if match.method is not None:
        wanted = [match.method] if isinstance(match.method, str) else match.method
        if info.method.upper() not in {m.upper() for m in wanted}:
            return False
    if match.headers:
        lowered = {k.lower(): v for k, v in info.headers.items()}
        for name, pattern in match.headers.items():
            value = lowered.get(name.lower())
            if value is None or not fnmatchcase(value, pattern):
                return False
    return match.message is None or match.message == info.message


def fault_rng(spec: FaultSpec, global_seed: int | None) -> random.Random:
    """The fault's own RNG: its `seed`, else derived from the run seed and its name."""
    if spec.settings.seed is not None:
        return random.Random(spec.settings.seed)
    if global_seed is not None:
        return random.Random(f"{global_seed}:{spec.name}")
    return random.Random()


class WrappedFault:
    """A fault plus its shared settings, counters and RNG."""

    def __init__(self, spec: FaultSpec, *, rng: random.Random, origin: float,
                 on_injected: Callable[[str, str], None] | None = None,
                 on_skipped: Callable[[str, str], None] | None = None) -> None:
        self.spec = spec
        self.name = spec.name
        self.settings = spec.settings
        self.schedule = spec.schedule
        self.fault: Fault = spec.cls(spec.params)
        self.rng = rng
        self.origin = origin
        self.matched = 0
        self.decided = 0
        self.injected = 0
        self.skipped = 0
        self._on_injected = on_injected
        self._on_skipped = on_skipped

    @property
    def layer(self) -> str:
        """"http", "ws" or "udp"."""
        return self.spec.cls.layer

    def applies_to(self, route: str, kind: str) -> bool:
        """Can this fault act on route `route` of kind `kind`?"""
        return self.layer == kind and self.settings.route in (None, route)

    def active(self, now: float) -> bool:
        """Is the fault switched on at `now` (its window / timeline)?"""
        return self.schedule.active(now - self.origin)

    def decide(self, info: MatchInfo, now: float) -> Fault | None:
        """The fault to apply to this request/message/packet, or None."""
        s = self.settings
        elapsed = now - self.origin
        if not self.schedule.active(elapsed):
            return None
        if s.direction != "both" and info.direction != s.direction:
            return None
        if not matches(s.match, info):
            return None
        self.matched += 1
        n = self.matched - s.after_n
        if n <= 0:
            return None
        if s.every_nth is not None and n % s.every_nth != 0:
            return None
        if s.max_count is not None and self.decided >= s.max_count:
            return None
        probability = s.probability
        ramped = self.schedule.ramped(elapsed)
        fault = self.fault
        if ramped is not None:
            name, value = ramped
            if name == "probability":
                probability = min(1.0, max(0.0, value))
            else:
                fault = self.spec.cls(self.spec.params.model_copy(update={name: value}))
        if probability < 1.0 and self.rng.random() >= probability:
            return None
        self.decided += 1
        return fault

    def context(self, now: float, route: str) -> FaultContext:
        """The FaultContext handed to the fault's hooks."""
        return FaultContext(now=now, rng=self.rng, route=route)

    def record_injected(self, route: str) -> None:
        """The fault acted: count it (and report it to metrics)."""
        self.injected += 1
        if self._on_injected is not None:
            self._on_injected(self.name, route)

    def record_skipped(self, route: str) -> None:
        """The fault was chosen but could not apply (e.g. a body that is not JSON)."""
        self.skipped += 1
        if self._on_skipped is not None:
            self._on_skipped(self.name, route)

    def status(self, now: float) -> dict[str, Any]:
        """The fault as the control API shows it."""
        return {
            **self.spec.to_dict(),
            "active": self.active(now),
            "matched": self.matched,
            "injected": self.injected,
            "skipped": self.skipped,
        }
