"""Telephony framing: 8 kHz G.711, 20 ms per frame, one byte per sample."""

from __future__ import annotations

from typing import Final

from loadcaller.audio.g711 import ULAW_SILENCE

__all__ = [
    "FRAME_BYTES",
    "FRAME_MS",
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "SILENCE_FRAME_ULAW",
    "split_frames",
]

SAMPLE_RATE: Final = 8000
FRAME_MS: Final = 20
FRAME_SAMPLES: Final = SAMPLE_RATE * FRAME_MS // 1000  # 160
FRAME_BYTES: Final = FRAME_SAMPLES  # G.711 carries one byte per sample

SILENCE_FRAME_ULAW: Final = bytes([ULAW_SILENCE]) * FRAME_BYTES


def split_frames(data: bytes, silence: int = ULAW_SILENCE) -> list[bytes]:
    """Split G.711 bytes into 20 ms frames, padding the last one with ``silence``.

    Pass ``silence=ALAW_SILENCE`` for A-law. Empty input gives no frames.
    """
    if not 0 <= silence <= 0xFF:
        raise ValueError(f"silence must be a byte value, got {silence}")
    remainder = len(data) % FRAME_BYTES
    if remainder:
        data = bytes(data) + bytes([silence]) * (FRAME_BYTES - remainder)
    return [data[i : i + FRAME_BYTES] for i in range(0, len(data), FRAME_BYTES)]
