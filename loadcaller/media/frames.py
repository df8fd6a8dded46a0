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
    "SilenceGrid",
]

FRAME_NS: Final = FRAME_MS * NS_PER_MS
NS_PER_BYTE: Final = 1_000_000_000 // SAMPLE_RATE  # 125 us per G.711 sample
SILENCE_FRAME: Final = SILENCE_FRAME_ULAW  # one object: transports may test `is`
SILENT: Final = b""  # a played frame with no audio (nothing was playing)


@dataclass(slots=True)
class PlayedFrame:
    """One 20 ms frame heard from ``t_ns``; ``audio`` (mu-law) is empty for silence.

    Not frozen: every call makes one 50 times a second, and a frozen dataclass's
    ``__init__`` costs twice a plain one. Treat it as read-only.
    """

    t_ns: int
    audio: bytes


class SilenceGrid:
    """Silence heard on the 20 ms grid while a packet stream pauses.

    An RTP sender with silence suppression (many SIP agents, and callers that
    pause) simply stops sending; the listener's VAD must still see time pass,
    or a turn never ends. Frames are made up only ``hold_ns`` after they were
    due, so a packet that is merely late (inside the receive window) is never
    doubled by made-up silence. Sans-I/O: frames and ``now`` in, frames out.
    """

    __slots__ = ("grid", "hold_ns")

    def __init__(self, hold_ns: int, *, start_ns: int = 0) -> None:
        self.hold_ns = hold_ns
        self.grid = start_ns  # when the next frame is due; 0: not started

    def heard(self, frames: list[PlayedFrame]) -> None:
        """Real frames arrived: the grid moves past the last one."""
        if frames:
            self.grid = max(self.grid, frames[-1].t_ns + FRAME_NS)

    def fill(self, now_ns: int, audio: bytes = SILENT) -> list[PlayedFrame]:
        """The silence frames due by ``now_ns`` (none before the grid has started)."""
        grid = self.grid
        if not grid or grid + FRAME_NS + self.hold_ns > now_ns:
            return []
        out = []
        while grid + FRAME_NS + self.hold_ns <= now_ns:
            out.append(PlayedFrame(grid, audio))
            grid += FRAME_NS
        self.grid = grid
        return out
