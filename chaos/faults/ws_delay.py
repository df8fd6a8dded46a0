"""ws_delay: hold a message before passing it on (later ones wait behind it)."""

from __future__ import annotations

from typing import ClassVar

from chaos.actions import FaultContext, Pause, WsItem, WsMessage
from chaos.faults.base import WsFault, register
from chaos.faults.latency import LatencyParams, sample_delay


@register
class WsDelay(WsFault):
    """Delay messages (same distributions as `latency`)."""

    type = "ws_delay"
    Params = LatencyParams
    magnitude_fields: ClassVar[tuple[str, ...]] = ("delay", "jitter")

    def on_message(self, message: WsMessage, ctx: FaultContext) -> list[WsItem]:
        """Pause, then the message."""
        return [Pause(sample_delay(self.params, ctx.rng)), message]
