"""truncate: send part of the body, then drop the connection (a payload error)."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field

from chaos.actions import Cut, FaultContext, StreamItem, StreamTransform
from chaos.faults.base import HttpFault, Params, register


class TruncateParams(Params):
    """Keep `keep` bytes, or `fraction` of a body whose length is announced."""

    keep: int | None = Field(None, ge=0)
    fraction: float = Field(0.5, ge=0.0, lt=1.0)
    rst: bool = False


class _Truncate:
    def __init__(self, keep: int, rst: bool) -> None:
        self.left = keep
        self.rst = rst
        self.done = False

    def feed(self, chunk: bytes) -> list[StreamItem]:
        if self.done:
            return []
        if len(chunk) < self.left:
            self.left -= len(chunk)
            return [chunk]
        self.done = True
        head = chunk[: self.left]
        out: list[StreamItem] = [head] if head else []
        return [*out, Cut(self.rst)]

    def end(self) -> list[StreamItem]:
        # the body was shorter than `keep`: still cut, so the client sees the loss
        return [] if self.done else [Cut(self.rst)]


@register
class Truncate(HttpFault):
    """Announce the full body, send only the start, then close."""

    type = "truncate"
    Params = TruncateParams
    keeps_length = True

    def stream_transform(self, headers: Mapping[str, str],
                         ctx: FaultContext) -> StreamTransform | None:
        """Cut after `keep` bytes (or `fraction` of Content-Length)."""
        p: TruncateParams = self.params
        if p.keep is not None:
            keep = p.keep
        else:
            try:
                keep = int(int(headers.get("Content-Length", "0")) * p.fraction)
            except ValueError:
                keep = 0
        return _Truncate(keep, p.rst)
