"""Utterances as the media clock sends them: encoded once, shared by every call."""

from __future__ import annotations

import base64
from dataclasses import dataclass

FRAME_BYTES = 160
SILENCE_BYTE = 0xFF


@dataclass(frozen=True, slots=True)
class Utterance:
    """20 ms mu-law frames and their base64 text, ready for any transport."""

    key: str
    frames: tuple[bytes, ...]
    b64: tuple[str, ...]

    @property
    def duration_ms(self) -> int:
        return 20 * len(self.frames)


def make_utterance(key: str, ulaw: bytes) -> Utterance:
    """Split 8 kHz mu-law into 20 ms frames (the last padded with silence)."""
    if not ulaw:
        raise ValueError(f"utterance {key!r} is empty")
    pad = -len(ulaw) % FRAME_BYTES
    data = ulaw + bytes([SILENCE_BYTE]) * pad
    frames = tuple(data[i : i + FRAME_BYTES] for i in range(0, len(data), FRAME_BYTES))
    return Utterance(key, frames, tuple(base64.b64encode(f).decode("ascii") for f in frames))


SILENCE_FRAME = bytes([SILENCE_BYTE]) * FRAME_BYTES
SILENCE_B64 = base64.b64encode(SILENCE_FRAME).decode("ascii")
