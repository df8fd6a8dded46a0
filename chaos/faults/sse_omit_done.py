"""sse_omit_done: drop the final `data: [DONE]`; the stream just ends."""

from __future__ import annotations

from chaos.actions import FaultContext, StreamItem
from chaos.faults._sse_base import SseFault
from chaos.faults.base import Params, register
from chaos.sse import SseTransform, is_done


class _OmitDone(SseTransform):
    def on_event(self, event: bytes) -> list[StreamItem]:
        return [] if is_done(event) else [event]


@register
class SseOmitDone(SseFault):
    """The stream closes without its end marker."""

    type = "sse_omit_done"
    Params = Params

    def make_transform(self, ctx: FaultContext) -> _OmitDone:
        """A transform that removes `[DONE]`."""
        return _OmitDone()
