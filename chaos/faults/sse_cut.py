"""sse_cut: end the stream abruptly after N events (no [DONE], no clean close)."""

from __future__ import annotations

from pydantic import Field

from chaos.actions import Cut, FaultContext, StreamItem
from chaos.faults._sse_base import SseFault
from chaos.faults.base import Params, register
from chaos.sse import SseTransform


class SseCutParams(Params):
    """Cut after `after_events` events; `rst` resets instead of closing."""

    after_events: int = Field(1, ge=0)
    rst: bool = False


class _Cut(SseTransform):
    def __init__(self, p: SseCutParams) -> None:
        super().__init__()
        self.p = p
        self.cut = False

    def on_event(self, event: bytes) -> list[StreamItem]:
        if self.cut:
            return []
        if self.events > self.p.after_events:
            self.cut = True
            return [Cut(self.p.rst)]
        return [event]

    def on_end(self) -> list[StreamItem]:
        return [] if self.cut else [Cut(self.p.rst)]


@register
class SseCutFault(SseFault):
    """The connection drops in the middle of a streamed answer."""

    type = "sse_cut"
    Params = SseCutParams

    def make_transform(self, ctx: FaultContext) -> _Cut:
        """A cut transform."""
        return _Cut(self.params)
