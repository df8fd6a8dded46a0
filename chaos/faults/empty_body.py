"""empty_body: keep the status and headers, send no body at all."""

from __future__ import annotations

from chaos.actions import FaultContext
from chaos.faults.base import HttpFault, Params, register


@register
class EmptyBody(HttpFault):
    """Answer with the upstream's status and an empty body."""

    type = "empty_body"
    Params = Params
    buffers_body = True

    def rewrite_body(self, body: bytes, content_type: str, ctx: FaultContext) -> bytes | None:
        """Nothing."""
        return b""
