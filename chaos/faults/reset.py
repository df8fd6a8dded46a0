"""reset: drop the client connection with a TCP RST before anything is sent."""

from __future__ import annotations

from chaos.actions import FaultContext, RequestAction, Reset
from chaos.faults.base import HttpFault, Params, register


@register
class ResetFault(HttpFault):
    """Reset the connection at once (the client sees ECONNRESET)."""

    type = "reset"
    Params = Params

    def on_request(self, ctx: FaultContext) -> RequestAction | None:
        """Reset."""
        return Reset()
