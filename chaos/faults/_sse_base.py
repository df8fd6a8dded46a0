"""Shared base of the SSE faults: only text/event-stream responses are touched."""

from __future__ import annotations

from collections.abc import Mapping

from chaos.actions import FaultContext, StreamTransform
from chaos.faults.base import HttpFault
from chaos.sse import SseTransform, is_event_stream


class SseFault(HttpFault):
    """An HttpFault acting on the events of an SSE response; skipped for other bodies."""

    def make_transform(self, ctx: FaultContext) -> SseTransform:
        """The per-response event transform."""
        raise NotImplementedError

    def stream_transform(self, headers: Mapping[str, str],
                         ctx: FaultContext) -> StreamTransform | None:
        """The event transform when the response is SSE, else None."""
        if not is_event_stream(headers.get("Content-Type", "")):
            return None
        return self.make_transform(ctx)
