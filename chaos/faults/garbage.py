"""garbage: replace (or surround) the response body with random bytes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from chaos.actions import FaultContext
from chaos.faults.base import HttpFault, Params, register


class GarbageParams(Params):
    """`size` random bytes (default: the body's length), placed by `mode`."""

    mode: Literal["replace", "prepend", "append"] = "replace"
    size: int | None = Field(None, ge=1)


@register
class Garbage(HttpFault):
    """Corrupt the body so it no longer parses."""

    type = "garbage"
    Params = GarbageParams
    buffers_body = True

    def rewrite_body(self, body: bytes, content_type: str, ctx: FaultContext) -> bytes | None:
        """Random bytes from the fault's seeded RNG."""
        p: GarbageParams = self.params
        junk = ctx.rng.randbytes(p.size or max(1, len(body)))
        return {"replace": junk, "prepend": junk + body, "append": body + junk}[p.mode]
