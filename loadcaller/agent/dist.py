"""Delay distributions for think time and backend latency: ``"300ms"``,
``"uniform:200:400"``, ``"normal:300:50"``, ``"lognormal:300:0.4"`` (median ms,
sigma), ``"fixed:300"``. Samples are milliseconds, never negative."""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass

_PLAIN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*$")


@dataclass(frozen=True, slots=True)
class Distribution:
    kind: str
    a: float
    b: float = 0.0

    def sample(self, rng: random.Random) -> float:
        if self.kind == "fixed":
            return self.a
        if self.kind == "uniform":
            return rng.uniform(self.a, self.b)
        if self.kind == "normal":
            return max(0.0, rng.gauss(self.a, self.b))
        return self.a * math.exp(rng.gauss(0.0, self.b))  # lognormal around a median

    def __str__(self) -> str:
        return f"{self.kind}:{self.a:g}" + (f":{self.b:g}" if self.kind != "fixed" else "")


def parse_distribution(text: str) -> Distribution:
    """Parse a distribution spec; raise ValueError with the accepted forms."""
    m = _PLAIN.match(text)
    if m:
        value = float(m.group(1)) * (1000.0 if m.group(2) == "s" else 1.0)
        return Distribution("fixed", value)
    kind, _, rest = text.partition(":")
    try:
        nums = [float(x) for x in rest.split(":")] if rest else []
    except ValueError:
        nums = []
    arity = {"fixed": 1, "uniform": 2, "normal": 2, "lognormal": 2}
    if kind in arity and len(nums) == arity[kind] and all(n >= 0 for n in nums):
        if kind == "uniform" and nums[1] < nums[0]:
            raise ValueError(f"bad distribution uniform:{rest}: the upper bound is below the lower")
        return Distribution(kind, nums[0], nums[1] if len(nums) > 1 else 0.0)
    raise ValueError(
        f"bad distribution {text!r}: use 300ms, fixed:MS, uniform:LO:HI, normal:MEAN:SD "
        "or lognormal:MEDIAN:SIGMA (milliseconds)"
    )
