"""Utterances as the media clock sends them: framed once, shared by every call.

Transports encode frames for their wire at the edge (base64 for Twilio, cached
per frame; RTP payloads for SIP), so an utterance is only its 20 ms mu-law frames.
"""

from __future__ import annotations

from dataclasses import dataclass

from loadcaller.audio.frames import split_frames
from loadcaller.media.frames import FRAME_MS


@dataclass(frozen=True, slots=True)
class Utterance:
    """20 ms mu-law frames, ready for any transport."""

    key: str
    frames: tuple[bytes, ...]

    @property
    def duration_ms(self) -> int:
        return FRAME_MS * len(self.frames)


def make_utterance(key: str, ulaw: bytes) -> Utterance:
    """Split 8 kHz mu-law into 20 ms frames (the last padded with silence)."""
    if not ulaw:
        raise ValueError(f"utterance {key!r} is empty")
    return Utterance(key, tuple(split_frames(ulaw)))
