"""ws_abort: drop the client's TCP connection without a close frame."""

from __future__ import annotations

from chaos.actions import Cut, FaultContext, WsItem, WsMessage
from chaos.faults.base import Params, WsFault, register


class WsAbortParams(Params):
    """`rst`: reset the connection (default) rather than close it."""

    rst: bool = True


@register
class WsAbort(WsFault):
    """The connection vanishes (client sees 1006, no close frame)."""

    type = "ws_abort"
    Params = WsAbortParams

    def on_message(self, message: WsMessage, ctx: FaultContext) -> list[WsItem]:
        """Abort."""
        return [Cut(self.params.rst)]
