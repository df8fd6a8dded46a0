"""Throughput of the per-frame audio hot path: G.711 codec, frame level, VAD.

Run from the repository root::

    python benchmarks/audio_codec.py

Prints microseconds per 20 ms frame and how many concurrent calls one core
could serve at 50 frames per second per direction if it did nothing else.
This prints figures; it does not pass or fail.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable

import numpy as np

from loadcaller.audio.frames import FRAME_SAMPLES, SAMPLE_RATE
from loadcaller.audio.g711 import ulaw_decode, ulaw_encode
from loadcaller.audio.vad import StreamingVad, ulaw_frame_dbfs

FRAMES_PER_SECOND = 50


def per_call_us(fn: Callable[[], object], repeat: int = 5, number: int = 20_000) -> float:
    """Best-of-``repeat`` mean time of one call, in microseconds."""
    return min(timeit.repeat(fn, repeat=repeat, number=number)) / number * 1e6


def main() -> None:
    """Measure and print."""
    rng = np.random.default_rng(0)
    pcm_frame = (rng.standard_normal(FRAME_SAMPLES) * 3000).astype(np.int16)
    pcm_second = (rng.standard_normal(SAMPLE_RATE) * 3000).astype(np.int16)
    ulaw_frame = ulaw_encode(pcm_frame)
    ulaw_second = ulaw_encode(pcm_second)
    vad = StreamingVad()
    level = ulaw_frame_dbfs(ulaw_frame)

    rows = [
        ("ulaw_encode, 1 frame (160 samples)", per_call_us(lambda: ulaw_encode(pcm_frame)), 1),
        ("ulaw_decode, 1 frame", per_call_us(lambda: ulaw_decode(ulaw_frame)), 1),
        (
            "ulaw_encode, 1 s (50 frames)",
            per_call_us(lambda: ulaw_encode(pcm_second), number=2000),
            50,
        ),
        (
            "ulaw_decode, 1 s (50 frames)",
            per_call_us(lambda: ulaw_decode(ulaw_second), number=2000),
            50,
        ),
        ("ulaw_frame_dbfs, 1 frame", per_call_us(lambda: ulaw_frame_dbfs(ulaw_frame)), 1),
        ("StreamingVad.feed, 1 frame", per_call_us(lambda: vad.feed(level, 0)), 1),
        (
            "dbfs + feed (receive path), 1 frame",
            per_call_us(lambda: vad.feed(ulaw_frame_dbfs(ulaw_frame), 0)),
            1,
        ),
    ]
    print(f"{'operation':<40} {'us/call':>9} {'us/frame':>9} {'calls/core':>11}")
    for name, us, frames in rows:
        us_frame = us / frames
        calls = 1e6 / (us_frame * FRAMES_PER_SECOND)
        print(f"{name:<40} {us:>9.2f} {us_frame:>9.3f} {calls:>11,.0f}")


if __name__ == "__main__":
    main()
