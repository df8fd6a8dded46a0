"""latency: wait before forwarding a request, the delay drawn from a distribution."""

from __future__ import annotations

import math
import random
from typing import ClassVar, Literal

from pydantic import Field

from chaos.actions import Delay, FaultContext, RequestAction
from chaos.faults.base import HttpFault, Params, register
from chaos.units import Duration

Distribution = Literal["fixed", "uniform", "normal", "lognormal", "pareto"]
#: a sample past this (a day) is a hang by any measure; heavy tails (pareto with a
#: small `alpha`, a huge `jitter`) otherwise overflow: OverflowError, or inf
LONGEST = 86_400.0


class LatencyParams(Params):
    """`delay` is the value (fixed), centre (uniform, normal), median (lognormal)
    or minimum (pareto); `jitter` the half-width (uniform) or stddev (normal)."""

    distribution: Distribution = "fixed"
    delay: Duration = 1.0
    jitter: Duration = 0.0
    sigma: float = Field(0.5, ge=0.0)
    alpha: float = Field(1.5, gt=0.0)
    max: Duration | None = None


def sample_delay(p: LatencyParams, rng: random.Random) -> float:
    """One delay in seconds from the configured distribution, clamped to [0, max]
    (and to LONGEST)."""
    try:
        if p.distribution == "uniform":
            value = rng.uniform(p.delay - p.jitter, p.delay + p.jitter)
        elif p.distribution == "normal":
            value = rng.gauss(p.delay, p.jitter)
        elif p.distribution == "lognormal":
            value = rng.lognormvariate(math.log(p.delay), p.sigma) if p.delay > 0 else 0.0
        elif p.distribution == "pareto":
            value = p.delay * rng.paretovariate(p.alpha)
        else:
            value = p.delay
    except OverflowError:
        value = math.inf
    if math.isnan(value):  # inf - inf from a huge jitter
        value = LONGEST
    value = min(max(0.0, value), LONGEST)
    return value if p.max is None else min(value, p.max)


@register
class Latency(HttpFault):
    """Delay the request before it reaches the upstream."""

    type = "latency"
    Params = LatencyParams
    magnitude_fields: ClassVar[tuple[str, ...]] = ("delay", "jitter")

    def on_request(self, ctx: FaultContext) -> RequestAction | None:
        """Delay by one sample."""
        return Delay(sample_delay(self.params, ctx.rng))
