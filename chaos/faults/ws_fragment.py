"""ws_fragment: send a message as several continuation frames."""

from __future__ import annotations

from pydantic import Field

from chaos.actions import FaultContext, WsItem, WsMessage
from chaos.faults.base import Params, WsFault, register


class WsFragmentParams(Params):
    """Split each message into `fragments` frames (at most one per byte/char)."""

    fragments: int = Field(3, ge=2)


@register
class WsFragment(WsFault):
    """Same message, delivered in pieces (clients that read frames break)."""

    type = "ws_fragment"
    Params = WsFragmentParams

    def on_message(self, message: WsMessage, ctx: FaultContext) -> list[WsItem]:
        """The message, marked for fragmenting."""
        return [WsMessage(message.data, fragments=self.params.fragments)]
