"""ws_handshake_reject: refuse the WebSocket upgrade with an HTTP status."""

from __future__ import annotations

from pydantic import Field

from chaos.actions import FaultContext, Reject, RequestAction
from chaos.faults.base import Params, WsFault, register


class WsHandshakeRejectParams(Params):
    """The status (and body) the client gets instead of 101."""

    status: int = Field(503, ge=300, le=599)
    body: str = "chaos-proxy: handshake rejected\n"


@register
class WsHandshakeReject(WsFault):
    """The TTS/STT service refuses new sessions."""

    type = "ws_handshake_reject"
    Params = WsHandshakeRejectParams
    scope = "handshake"

    def on_handshake(self, ctx: FaultContext) -> RequestAction | None:
        """Reject."""
        return Reject(self.params.status, self.params.body.encode())
