"""20 ms framing of G.711 byte streams."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loadcaller.audio.frames import (
    FRAME_BYTES,
    FRAME_MS,
    FRAME_SAMPLES,
    SAMPLE_RATE,
    SILENCE_FRAME_ULAW,
    split_frames,
)
from loadcaller.audio.g711 import ALAW_SILENCE, ulaw_decode


def test_constants_describe_20ms_of_8khz_g711() -> None:
    assert (SAMPLE_RATE, FRAME_MS, FRAME_SAMPLES, FRAME_BYTES) == (8000, 20, 160, 160)
    assert len(SILENCE_FRAME_ULAW) == FRAME_BYTES
    assert not ulaw_decode(SILENCE_FRAME_ULAW).any()


def test_last_frame_is_padded_with_the_silence_byte() -> None:
    frames = split_frames(b"\x01" * 170)
    assert [len(f) for f in frames] == [160, 160]
    assert frames[1] == b"\x01" * 10 + b"\xff" * 150
    assert split_frames(b"\x01" * 5, silence=ALAW_SILENCE)[0][5:] == bytes([ALAW_SILENCE]) * 155


def test_exact_multiple_is_not_padded_and_empty_gives_no_frames() -> None:
    assert split_frames(bytes(320)) == [bytes(160), bytes(160)]
    assert split_frames(b"") == []


def test_rejects_a_silence_value_that_is_not_a_byte() -> None:
    with pytest.raises(ValueError, match="byte"):
        split_frames(b"x", silence=256)


@given(st.binary(max_size=1000))
def test_frames_concatenate_back_to_the_input(data: bytes) -> None:
    frames = split_frames(data)
    joined = b"".join(frames)
    assert all(len(f) == FRAME_BYTES for f in frames)
    assert joined[: len(data)] == data
    assert len(joined) - len(data) < FRAME_BYTES
    assert set(joined[len(data) :]) <= {0xFF}
