"""ws_handshake_delay: hold the WebSocket upgrade before connecting upstream."""

from __future__ import annotations

from typing import ClassVar

from chaos.actions import Delay, FaultContext, RequestAction
from chaos.faults.base import WsFault, register
from chaos.faults.latency import LatencyParams, sample_delay


@register
class WsHandshakeDelay(WsFault):
    """Session setup is slow (same distributions as `latency`)."""

    type = "ws_handshake_delay"
    Params = LatencyParams
    scope = "handshake"
    magnitude_fields: ClassVar[tuple[str, ...]] = ("delay", "jitter")

    def on_handshake(self, ctx: FaultContext) -> RequestAction | None:
        """Delay by one sample."""
        return Delay(sample_delay(self.params, ctx.rng))
