"""sse_stall: after N events, hold the stream for a while, then resume."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from chaos.actions import FaultContext, Pause, StreamItem
from chaos.faults._sse_base import SseFault
from chaos.faults.base import Params, register
from chaos.sse import SseTransform
from chaos.units import Duration


class SseStallParams(Params):
    """Stall for `duration` once `after_events` events have gone through."""

    after_events: int = Field(1, ge=0)
    duration: Duration = 5.0


class _Stall(SseTransform):
    def __init__(self, p: SseStallParams) -> None:
        super().__init__()
        self.p = p
        self.stalled = p.after_events == 0

    def on_event(self, event: bytes) -> list[StreamItem]:
        if not self.stalled and self.events >= self.p.after_events:
            self.stalled = True
            return [event, Pause(self.p.duration)]
        if self.p.after_events == 0 and self.events == 1:
            return [Pause(self.p.duration), event]
        return [event]


@register
class SseStall(SseFault):
    """The model stops streaming mid-answer, then carries on."""

    type = "sse_stall"
    Params = SseStallParams
    magnitude_fields: ClassVar[tuple[str, ...]] = ("duration",)

    def make_transform(self, ctx: FaultContext) -> _Stall:
        """A stall transform."""
        return _Stall(self.params)
