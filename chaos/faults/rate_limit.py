"""rate_limit: allow `limit` requests per fixed window, answer the rest with 429."""

from __future__ import annotations

import json
import math

from pydantic import Field

from chaos.actions import FaultContext, RequestAction, Respond
from chaos.faults.base import HttpFault, Params, register
from chaos.units import Duration


class RateLimitParams(Params):
    """`limit` requests per `per` seconds pass; the rest get `status`."""

    limit: int = Field(ge=0)
    per: Duration = 1.0
    status: int = Field(429, ge=200, le=599)


@register
class RateLimit(HttpFault):
    """A fixed-window rate limiter, with Retry-After set to the window's end."""

    type = "rate_limit"
    Params = RateLimitParams

    def __init__(self, params: RateLimitParams) -> None:
        super().__init__(params)
        self._window_start: float | None = None
        self._count = 0

    def on_request(self, ctx: FaultContext) -> RequestAction | None:
        """Count the request in the current window; refuse it past the limit."""
        p: RateLimitParams = self.params
        if self._window_start is None or ctx.now - self._window_start >= p.per:
            self._window_start, self._count = ctx.now, 0
        self._count += 1
        if self._count <= p.limit:
            return None
        wait = max(1, math.ceil(self._window_start + p.per - ctx.now))
        body = json.dumps({"error": {"message": "rate limit exceeded", "code": "rate_limited"}})
        return Respond(p.status, (("Content-Type", "application/json"),
                                  ("Retry-After", str(wait))), body.encode())
