"""sse_inject: insert an extra event, by default the LLM chunk `{"choices": []}`."""

from __future__ import annotations

from pydantic import Field

from chaos.actions import FaultContext, StreamItem
from chaos.faults._sse_base import SseFault
from chaos.faults.base import Params, register
from chaos.sse import SseTransform, make_event


class SseInjectParams(Params):
    """Insert `data` after `after_events` events, `count` times in a row."""

    data: str = '{"choices": []}'
    after_events: int = Field(1, ge=0)
    count: int = Field(1, ge=1)


class _Inject(SseTransform):
    def __init__(self, p: SseInjectParams) -> None:
        super().__init__()
        self.p = p
        self.injected = False

    def _extra(self) -> list[StreamItem]:
        self.injected = True
        return [make_event(self.p.data)] * self.p.count

    def on_event(self, event: bytes) -> list[StreamItem]:
        if not self.injected and self.p.after_events == 0:
            return [*self._extra(), event]
        if not self.injected and self.events >= self.p.after_events:
            return [event, *self._extra()]
        return [event]

    def on_end(self) -> list[StreamItem]:
        return [] if self.injected else self._extra()


@register
class SseInject(SseFault):
    """An unexpected chunk (empty choices, a keep-alive, an error) mid-stream."""

    type = "sse_inject"
    Params = SseInjectParams

    def make_transform(self, ctx: FaultContext) -> _Inject:
        """An injecting transform."""
        return _Inject(self.params)
