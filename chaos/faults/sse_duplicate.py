"""sse_duplicate: send some events twice (each with `event_rate`)."""

from __future__ import annotations

from pydantic import Field

from chaos.actions import FaultContext, StreamItem
from chaos.faults._sse_base import SseFault
from chaos.faults.base import Params, register
from chaos.sse import SseTransform, is_done


class SseDuplicateParams(Params):
    """Each event (not `[DONE]`) is repeated with `event_rate`."""

    event_rate: float = Field(0.1, ge=0.0, le=1.0)


class _Duplicate(SseTransform):
    def __init__(self, p: SseDuplicateParams, ctx: FaultContext) -> None:
        super().__init__()
        self.p, self.rng = p, ctx.rng

    def on_event(self, event: bytes) -> list[StreamItem]:
        if not is_done(event) and self.rng.random() < self.p.event_rate:
            return [event, event]
        return [event]


@register
class SseDuplicate(SseFault):
    """A streamed token arrives twice."""

    type = "sse_duplicate"
    Params = SseDuplicateParams

    def make_transform(self, ctx: FaultContext) -> _Duplicate:
        """A duplicating transform using the fault's RNG."""
        return _Duplicate(self.params, ctx)
