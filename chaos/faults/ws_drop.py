"""ws_drop: lose a message."""

from __future__ import annotations

from chaos.actions import FaultContext, WsItem, WsMessage
from chaos.faults.base import Params, WsFault, register


@register
class WsDrop(WsFault):
    """The message never arrives."""

    type = "ws_drop"
    Params = Params

    def on_message(self, message: WsMessage, ctx: FaultContext) -> list[WsItem]:
        """Nothing."""
        return []
