"""Packet impairment models, sans-I/O (for the UDP relay and any caller media path).

Each model takes a packet and the time it is handed over and returns what to
send and when: ``process(packet, now) -> [(send_at, bytes), ...]`` (an empty
list means dropped, two entries a duplicate). Models keep their own state
(Gilbert-Elliott's channel state, a rate queue) and draw from the seeded
``random.Random`` they are given, so a seed replays the same losses. Chains
feed each output into the next stage at its `send_at`.

Gilbert-Elliott is parameterised the way people talk about it: mean loss rate
and mean burst length. With loss 1 in the bad state and 0 in the good state
(the defaults) the bad state's mean sojourn is the mean burst, r = 1/burst,
and the stationary bad share is the mean loss, p = r * loss / (1 - loss).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from chaos.units import Duration

Output = list[tuple[float, bytes]]


class Impairment(Protocol):
    """Anything with `process(packet, now) -> [(send_at, bytes)]`."""

    def process(self, packet: bytes, now: float) -> Output:
        """Impair one packet handed over at `now`."""
        ...


class _Spec(BaseModel):
    # numbers must be finite: YAML's `.inf` and `.nan` pass range checks like ge=1
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class LossSpec(_Spec):
    """Independent (Bernoulli) loss."""

    loss: float = Field(ge=0.0, le=1.0)


class GilbertElliottSpec(_Spec):
    """Bursty loss from mean loss rate and mean burst length (in packets)."""

    mean_loss: float = Field(gt=0.0, lt=1.0)
    mean_burst: float = Field(ge=1.0)
    loss_good: float = Field(0.0, ge=0.0, le=1.0)
    loss_bad: float = Field(1.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _reachable(self) -> GilbertElliottSpec:
        if not self.loss_good <= self.mean_loss < self.loss_bad:
            raise ValueError("mean_loss must lie between loss_good and loss_bad")
        return self


class DelaySpec(_Spec):
    """Fixed delay plus jitter (normal stddev or uniform half-width)."""

    delay: Duration = 0.0
    jitter: Duration = 0.0
    distribution: Literal["normal", "uniform"] = "normal"
    keep_order: bool = False


class ReorderSpec(_Spec):
    """Hold a packet back by `gap` seconds with `chance`, letting later ones pass."""

    chance: float = Field(ge=0.0, le=1.0)
    gap: Duration = 0.02


class DuplicateSpec(_Spec):
    """Send a second copy with `chance`, `gap` seconds later."""

    chance: float = Field(ge=0.0, le=1.0)
    gap: Duration = 0.0


class CorruptSpec(_Spec):
    """Flip `bits` random bits with `chance`, sparing the first `skip_bytes` (RTP header)."""

    chance: float = Field(ge=0.0, le=1.0)
    bits: int = Field(1, ge=1)
    skip_bytes: int = Field(12, ge=0)


class OutageSpec(_Spec):
    """Drop everything for `duration`, starting `start` after the first packet,
    and again every `every` seconds when given."""

    duration: Duration
    start: Duration = 0.0
    every: Duration | None = None


class RateSpec(_Spec):
    """A bottleneck of `bytes_per_second`; packets queued past `max_queue` s are dropped."""

    bytes_per_second: float = Field(gt=0)
    max_queue: Duration = 0.2


class PresetSpec(_Spec):
    """A named network: wifi, 3g or volte."""

    preset: Literal["wifi", "3g", "volte"]


@dataclass
class BernoulliLoss:
    """Each packet lost independently with probability `loss`."""

    loss: float
    rng: random.Random

    def process(self, packet: bytes, now: float) -> Output:
        """Drop or pass."""
        return [] if self.rng.random() < self.loss else [(now, packet)]


@dataclass
class GilbertElliottLoss:
    """Two-state Markov loss; see the module docstring for the parameters."""

    spec: GilbertElliottSpec
    rng: random.Random
    bad: bool = False
    p: float = field(init=False)
    r: float = field(init=False)

    def __post_init__(self) -> None:
        s = self.spec
        share_bad = (s.mean_loss - s.loss_good) / (s.loss_bad - s.loss_good)
        self.r = 1.0 / s.mean_burst
        self.p = min(1.0, self.r * share_bad / (1.0 - share_bad))
        self.bad = self.rng.random() < share_bad

    def process(self, packet: bytes, now: float) -> Output:
        """Lose with the current state's rate, then step the chain."""
        loss = self.spec.loss_bad if self.bad else self.spec.loss_good
        lost = loss >= 1.0 or (loss > 0.0 and self.rng.random() < loss)
        self.bad = (self.rng.random() >= self.r) if self.bad else (self.rng.random() < self.p)
        return [] if lost else [(now, packet)]


@dataclass
class DelayJitter:
    """Delay each packet; jitter may reorder unless `keep_order`."""

    spec: DelaySpec
    rng: random.Random
    last: float = float("-inf")

    def process(self, packet: bytes, now: float) -> Output:
        """One delay sample."""
        s = self.spec
        if s.jitter == 0:
            extra = s.delay
        elif s.distribution == "uniform":
            extra = self.rng.uniform(s.delay - s.jitter, s.delay + s.jitter)
        else:
            extra = self.rng.gauss(s.delay, s.jitter)
        at = now + max(0.0, extra)
        if s.keep_order:
            at = max(at, self.last)
            self.last = at
        return [(at, packet)]


@dataclass
class Reorder:
    """Occasionally hold one packet back."""

    spec: ReorderSpec
    rng: random.Random

    def process(self, packet: bytes, now: float) -> Output:
        """Hold with `chance`."""
        late = self.rng.random() < self.spec.chance
        return [(now + self.spec.gap if late else now, packet)]


@dataclass
class Duplicate:
    """Occasionally send a packet twice."""

    spec: DuplicateSpec
    rng: random.Random

    def process(self, packet: bytes, now: float) -> Output:
        """Copy with `chance`."""
        if self.rng.random() < self.spec.chance:
            return [(now, packet), (now + self.spec.gap, packet)]
        return [(now, packet)]


@dataclass
class Corrupt:
    """Occasionally flip bits in the payload."""

    spec: CorruptSpec
    rng: random.Random

    def process(self, packet: bytes, now: float) -> Output:
        """Flip with `chance`; packets no longer than the header are left alone."""
        s = self.spec
        if len(packet) <= s.skip_bytes or self.rng.random() >= s.chance:
            return [(now, packet)]
        data = bytearray(packet)
        for _ in range(s.bits):
            bit = self.rng.randrange(s.skip_bytes * 8, len(data) * 8)
            data[bit // 8] ^= 1 << (bit % 8)
        return [(now, bytes(data))]


@dataclass
class Outage:
    """Periods when nothing gets through, timed from the first packet."""

    spec: OutageSpec
    origin: float | None = None

    def process(self, packet: bytes, now: float) -> Output:
        """Drop inside an outage window."""
        if self.origin is None:
            self.origin = now
        t = now - self.origin - self.spec.start
        if t >= 0 and self.spec.every:
            t %= self.spec.every
        return [] if 0 <= t < self.spec.duration else [(now, packet)]


@dataclass
class Rate:
    """A serialising bottleneck with a bounded queue."""

    spec: RateSpec
    free_at: float = float("-inf")

    def process(self, packet: bytes, now: float) -> Output:
        """Queue behind earlier packets; drop when the queue is too long."""
        start = max(now, self.free_at)
        if start - now > self.spec.max_queue:
            return []
        self.free_at = start + len(packet) / self.spec.bytes_per_second
        return [(self.free_at, packet)]


@dataclass
class Chain:
    """Stages applied in order, each at the time the previous one released the packet."""

    stages: list[Impairment]

    def process(self, packet: bytes, now: float) -> Output:
        """Run the packet through every stage."""
        items: Output = [(now, packet)]
        for stage in self.stages:
            items = [out for at, data in items for out in stage.process(data, at)]
        return sorted(items, key=lambda item: item[0])


PRESETS: dict[str, list[dict[str, Any]]] = {
    "wifi": [{"type": "gilbert_elliott", "mean_loss": 0.01, "mean_burst": 2.0},
             {"type": "delay", "delay": 0.005, "jitter": 0.010}],
    "3g": [{"type": "gilbert_elliott", "mean_loss": 0.02, "mean_burst": 3.0},
           {"type": "delay", "delay": 0.150, "jitter": 0.040, "keep_order": True}],
    "volte": [{"type": "gilbert_elliott", "mean_loss": 0.005, "mean_burst": 1.5},
              {"type": "delay", "delay": 0.040, "jitter": 0.010, "keep_order": True}],
}

Builder = Callable[[Any, random.Random], Impairment]

MODELS: dict[str, tuple[type[_Spec], Builder]] = {
    "loss": (LossSpec, lambda s, rng: BernoulliLoss(s.loss, rng)),
    "gilbert_elliott": (GilbertElliottSpec, lambda s, rng: GilbertElliottLoss(s, rng)),
    "delay": (DelaySpec, lambda s, rng: DelayJitter(s, rng)),
    "reorder": (ReorderSpec, lambda s, rng: Reorder(s, rng)),
    "duplicate": (DuplicateSpec, lambda s, rng: Duplicate(s, rng)),
    "corrupt": (CorruptSpec, lambda s, rng: Corrupt(s, rng)),
    "outage": (OutageSpec, lambda s, rng: Outage(s)),
    "rate": (RateSpec, lambda s, rng: Rate(s)),
    "preset": (PresetSpec, lambda s, rng: build_impairment(PRESETS[s.preset], rng)),
}


def build_impairment(spec: dict[str, Any] | list[Any] | BaseModel,
                     rng: random.Random) -> Impairment:
    """An impairment from a spec: ``{"type": "gilbert_elliott", "mean_loss": 0.05,
    "mean_burst": 3}``, a validated spec model, or a list of either (a chain).

    Raises ValueError (pydantic ValidationError) on bad parameters and names the
    known types for an unknown one.
    """
    if isinstance(spec, list):
        return Chain([build_impairment(s, rng) for s in spec])
    if isinstance(spec, BaseModel):
        for model, builder in MODELS.values():
            if isinstance(spec, model):
                return builder(spec, rng)
        raise ValueError(f"not an impairment spec: {type(spec).__name__}")
    kind = spec.get("type")
    if kind not in MODELS:
        raise ValueError(f"unknown impairment type {kind!r}; known: {', '.join(sorted(MODELS))}")
    model, builder = MODELS[kind]
    return builder(model.model_validate({k: v for k, v in spec.items() if k != "type"}), rng)
