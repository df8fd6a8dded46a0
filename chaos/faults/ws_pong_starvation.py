"""ws_pong_starvation: stop reading the client's frames, so its pings go unanswered."""

from __future__ import annotations

from typing import ClassVar

from chaos.actions import FaultContext, RequestAction, Starve
from chaos.faults.base import Params, WsFault, register
from chaos.units import Duration


class WsPongStarvationParams(Params):
    """Starve for `duration` after the handshake (absent: for good)."""

    duration: Duration | None = None


@register
class WsPongStarvation(WsFault):
    """The peer stops answering pings (and reading): keepalive timeouts follow."""

    type = "ws_pong_starvation"
    Params = WsPongStarvationParams
    scope = "handshake"
    magnitude_fields: ClassVar[tuple[str, ...]] = ("duration",)

    def on_handshake(self, ctx: FaultContext) -> RequestAction | None:
        """Starve the connection."""
        return Starve(self.params.duration)
