"""ws_reorder: hold a message and deliver it after the next one."""

from __future__ import annotations

from chaos.actions import Defer, FaultContext, WsItem, WsMessage
from chaos.faults.base import Params, WsFault, register


@register
class WsReorder(WsFault):
    """Swap a message with its successor (lost if the connection ends first)."""

    type = "ws_reorder"
    Params = Params

    def on_message(self, message: WsMessage, ctx: FaultContext) -> list[WsItem]:
        """Defer the message."""
        return [Defer(message)]
