"""bandwidth: trickle the response body at a set byte rate, in small pieces."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from pydantic import Field

from chaos.actions import FaultContext, Pause, StreamItem, StreamTransform
from chaos.faults.base import HttpFault, Params, register


class BandwidthParams(Params):
    """Throughput cap in bytes per second, sent `chunk_size` bytes at a time."""

    bytes_per_second: float = Field(gt=0)
    chunk_size: int = Field(256, ge=1)


class _Trickle:
    def __init__(self, p: BandwidthParams) -> None:
        self.p = p

    def feed(self, chunk: bytes) -> list[StreamItem]:
        out: list[StreamItem] = []
        size = self.p.chunk_size
        for i in range(0, len(chunk), size):
            piece = chunk[i:i + size]
            out += [piece, Pause(len(piece) / self.p.bytes_per_second)]
        return out

    def end(self) -> list[StreamItem]:
        return []


@register
class Bandwidth(HttpFault):
    """Slow the response body down to `bytes_per_second`."""

    type = "bandwidth"
    Params = BandwidthParams
    keeps_length = True
    magnitude_fields: ClassVar[tuple[str, ...]] = ("bytes_per_second",)

    def stream_transform(self, headers: Mapping[str, str],
                         ctx: FaultContext) -> StreamTransform | None:
        """Cut the body into timed pieces."""
        return _Trickle(self.params)
