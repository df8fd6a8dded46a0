"""sse_drop: lose some events of the stream (each with `event_rate`)."""

from __future__ import annotations

from pydantic import Field

from chaos.actions import FaultContext, StreamItem
from chaos.faults._sse_base import SseFault
from chaos.faults.base import Params, register
from chaos.sse import SseTransform, is_done


class SseDropParams(Params):
    """Each event is dropped with `event_rate`; `[DONE]` is kept unless `keep_done` is off."""

    event_rate: float = Field(0.1, ge=0.0, le=1.0)
    keep_done: bool = True


class _Drop(SseTransform):
    def __init__(self, p: SseDropParams, ctx: FaultContext) -> None:
        super().__init__()
        self.p, self.rng = p, ctx.rng

    def on_event(self, event: bytes) -> list[StreamItem]:
        if self.p.keep_done and is_done(event):
            return [event]
        return [] if self.rng.random() < self.p.event_rate else [event]


@register
class SseDrop(SseFault):
    """Tokens go missing from a streamed answer."""

    type = "sse_drop"
    Params = SseDropParams

    def make_transform(self, ctx: FaultContext) -> _Drop:
        """A drop transform using the fault's RNG."""
        return _Drop(self.params, ctx)
