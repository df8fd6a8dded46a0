"""ws_duplicate: deliver a message twice."""

from __future__ import annotations

from chaos.actions import FaultContext, WsItem, WsMessage
from chaos.faults.base import Params, WsFault, register


@register
class WsDuplicate(WsFault):
    """The message arrives twice."""

    type = "ws_duplicate"
    Params = Params

    def on_message(self, message: WsMessage, ctx: FaultContext) -> list[WsItem]:
        """The message, twice."""
        return [message, message]
