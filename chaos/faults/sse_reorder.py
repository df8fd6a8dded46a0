"""sse_reorder: swap some events with the one after them (each with `event_rate`)."""

from __future__ import annotations

from pydantic import Field

from chaos.actions import FaultContext, StreamItem
from chaos.faults._sse_base import SseFault
from chaos.faults.base import Params, register
from chaos.sse import SseTransform, is_done


class SseReorderParams(Params):
    """An event is held back and sent after the next one with `event_rate`."""

    event_rate: float = Field(0.2, ge=0.0, le=1.0)


class _Reorder(SseTransform):
    def __init__(self, p: SseReorderParams, ctx: FaultContext) -> None:
        super().__init__()
        self.p, self.rng = p, ctx.rng
        self.held: bytes | None = None

    def on_event(self, event: bytes) -> list[StreamItem]:
        if self.held is not None:
            held, self.held = self.held, None
            # the end marker never overtakes: a held event goes out before it
            return [held, event] if is_done(event) else [event, held]
        if not is_done(event) and self.rng.random() < self.p.event_rate:
            self.held = event
            return []
        return [event]

    def on_end(self) -> list[StreamItem]:
        held, self.held = self.held, None
        return [held] if held is not None else []


@register
class SseReorder(SseFault):
    """Streamed tokens arrive out of order."""

    type = "sse_reorder"
    Params = SseReorderParams

    def make_transform(self, ctx: FaultContext) -> _Reorder:
        """A reordering transform using the fault's RNG."""
        return _Reorder(self.params, ctx)
