"""The 20 ms frame every transport moves, and the frame as the caller hears it.

Telephony audio here is 8 kHz G.711 (mu-law inside the tool), 160 bytes per
20 ms frame. Transports convert at their edge (A-law, Opus at 48 kHz, base64
JSON); everything between the media clock, the call script and the listener
speaks these frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from loadcaller.audio.frames import (
    FRAME_BYTES,
    FRAME_MS,
    FRAME_SAMPLES,
    SAMPLE_RATE,
    SILENCE_FRAME_ULAW,
)
from loadcaller.timebase import NS_PER_MS

__all__ = [
    "FRAME_BYTES",
    "FRAME_MS",
    "FRAME_NS",
    "FRAME_SAMPLES",
    "NS_PER_BYTE",
    "SAMPLE_RATE",
    "SILENCE_FRAME",
    "SILENT",
    "PlayedFrame",
]

FRAME_NS: Final = FRAME_MS * NS_PER_MS
NS_PER_BYTE: Final = 1_000_000_000 // SAMPLE_RATE  # 125 us per G.711 sample
SILENCE_FRAME: Final = SILENCE_FRAME_ULAW  # one object: transports may test `is`
SILENT: Final = b""  # a played frame with no audio (nothing was playing)


@dataclass(frozen=True, slots=True)
class PlayedFrame:
    """One 20 ms frame heard from ``t_ns``; ``audio`` (mu-law) is empty for silence."""

    t_ns: int
    audio: bytes
