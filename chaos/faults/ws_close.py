"""ws_close: close the client's WebSocket with a chosen code and reason."""

from __future__ import annotations

from pydantic import Field

from chaos.actions import Close, FaultContext, WsItem, WsMessage
from chaos.faults.base import Params, WsFault, register


class WsCloseParams(Params):
    """The close code (1000-4999) and reason the client receives."""

    code: int = Field(1011, ge=1000, le=4999)
    reason: str = ""


@register
class WsClose(WsFault):
    """The service hangs up: 1001 going away, 1011 internal error, 1013 try later..."""

    type = "ws_close"
    Params = WsCloseParams

    def on_message(self, message: WsMessage, ctx: FaultContext) -> list[WsItem]:
        """Close instead of delivering."""
        return [Close(self.params.code, self.params.reason)]
