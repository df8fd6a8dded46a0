"""G.711 tables, checked bit-exactly against two independent implementations."""

from __future__ import annotations

import warnings
from types import ModuleType

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from loadcaller.audio.g711 import (
    ALAW_SILENCE,
    ULAW_POWER,
    ULAW_SILENCE,
    alaw_decode,
    alaw_encode,
    ulaw_decode,
    ulaw_encode,
)

ALL_LINEAR = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = bytes(range(256))

# --- scalar transcription of the Sun Microsystems / ITU-T g711.c reference --------

SEG_AEND = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)
SEG_UEND = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)
BIAS = 0x84
CLIP = 8159


def search(val: int, table: tuple[int, ...]) -> int:
    for i, end in enumerate(table):
        if val <= end:
            return i
    return len(table)


def ref_linear2ulaw(pcm: int) -> int:
    pcm >>= 2
    if pcm < 0:
        pcm, mask = -pcm, 0x7F
    else:
        mask = 0xFF
    pcm = min(pcm, CLIP) + (BIAS >> 2)
    seg = search(pcm, SEG_UEND)
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((pcm >> (seg + 1)) & 0xF)) ^ mask


def ref_ulaw2linear(u: int) -> int:
    u = ~u & 0xFF
    t = (((u & 0xF) << 3) + BIAS) << ((u & 0x70) >> 4)
    return BIAS - t if u & 0x80 else t - BIAS


def ref_linear2alaw(pcm: int) -> int:
    pcm >>= 3
    if pcm >= 0:
        mask = 0xD5
    else:
        mask, pcm = 0x55, -pcm - 1
    seg = search(pcm, SEG_AEND)
    if seg >= 8:
        return 0x7F ^ mask
    aval = seg << 4
    aval |= ((pcm >> 1) if seg < 2 else (pcm >> seg)) & 0xF
    return aval ^ mask


def ref_alaw2linear(a: int) -> int:
    a ^= 0x55
    t = (a & 0xF) << 4
    seg = (a & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (seg - 1)
    return t if a & 0x80 else -t


# --- bit-exactness --------------------------------------------------------------


def test_ulaw_decode_matches_reference_for_all_codes() -> None:
    assert ulaw_decode(ALL_CODES).tolist() == [ref_ulaw2linear(c) for c in range(256)]


def test_alaw_decode_matches_reference_for_all_codes() -> None:
    assert alaw_decode(ALL_CODES).tolist() == [ref_alaw2linear(c) for c in range(256)]


def test_ulaw_encode_matches_reference_for_all_linear_values() -> None:
    expected = bytes(ref_linear2ulaw(v) for v in range(-32768, 32768))
    assert ulaw_encode(ALL_LINEAR) == expected


def test_alaw_encode_matches_reference_for_all_linear_values() -> None:
    expected = bytes(ref_linear2alaw(v) for v in range(-32768, 32768))
    assert alaw_encode(ALL_LINEAR) == expected


@pytest.fixture
def audioop() -> ModuleType:
    """The stdlib's C codec, an independent implementation; deprecated in 3.11 and
    removed in 3.13 (the audioop-lts package brings it back), so only this test
    needs it and it skips where it is gone."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return pytest.importorskip(
            "audioop", reason="audioop was removed in Python 3.13 (pip install audioop-lts)")


def test_matches_stdlib_audioop(audioop: ModuleType) -> None:
    linear = ALL_LINEAR.astype("<i2").tobytes()
    assert ulaw_encode(ALL_LINEAR) == audioop.lin2ulaw(linear, 2)
    assert alaw_encode(ALL_LINEAR) == audioop.lin2alaw(linear, 2)
    assert ulaw_decode(ALL_CODES).astype("<i2").tobytes() == audioop.ulaw2lin(ALL_CODES, 2)
    assert alaw_decode(ALL_CODES).astype("<i2").tobytes() == audioop.alaw2lin(ALL_CODES, 2)


# --- constants and derived tables -------------------------------------------------


def test_silence_codes_decode_to_near_zero() -> None:
    assert ulaw_encode(np.zeros(1, np.int16)) == bytes([ULAW_SILENCE])
    assert ulaw_decode(bytes([ULAW_SILENCE]))[0] == 0
    assert alaw_encode(np.zeros(1, np.int16)) == bytes([ALAW_SILENCE])
    assert alaw_decode(bytes([ALAW_SILENCE]))[0] == 8  # A-law has no zero code


def test_ulaw_power_is_decoded_value_squared() -> None:
    decoded = ulaw_decode(ALL_CODES).astype(np.float64)
    assert ULAW_POWER.dtype == np.float64
    assert ULAW_POWER.shape == (256,)
    np.testing.assert_array_equal(ULAW_POWER, decoded**2)
    assert not ULAW_POWER.flags.writeable


def test_decode_returns_writable_int16_copy() -> None:
    out = ulaw_decode(b"\x00\x80\xff")
    assert out.dtype == np.int16
    out[0] = 1  # callers may mix in place; the table must not change
    assert ulaw_decode(b"\x00")[0] == ref_ulaw2linear(0)


def test_encode_rejects_float_samples() -> None:
    with pytest.raises(TypeError, match="int16"):
        ulaw_encode(np.zeros(4, np.float32))


def test_encode_accepts_in_range_integers_of_other_widths() -> None:
    assert ulaw_encode(np.array([0, 1000, -1000], np.int32)) == ulaw_encode(
        np.array([0, 1000, -1000], np.int16)
    )
    with pytest.raises(ValueError, match="range"):
        alaw_encode(np.array([40000], np.int32))


def test_empty_input() -> None:
    assert ulaw_encode(np.zeros(0, np.int16)) == b""
    assert ulaw_decode(b"").shape == (0,)


# --- round-trip properties --------------------------------------------------------


def test_every_code_round_trips_except_ulaw_negative_zero() -> None:
    # mu-law has two zeros (0x7F and 0xFF); zero encodes to the positive one.
    recoded = ulaw_encode(ulaw_decode(ALL_CODES))
    assert [c for c in range(256) if recoded[c] != c] == [0x7F]
    assert recoded[0x7F] == ULAW_SILENCE
    assert alaw_encode(alaw_decode(ALL_CODES)) == ALL_CODES


int16_arrays = hnp.arrays(np.int16, st.integers(0, 400), elements=st.integers(-32768, 32767))


@given(int16_arrays)
def test_ulaw_quantisation_error_is_bounded(pcm: np.ndarray) -> None:
    out = ulaw_decode(ulaw_encode(pcm)).astype(np.int64)
    x = pcm.astype(np.int64)
    assert np.all(np.sign(out) * np.sign(x) >= 0)  # never flips sign
    # Within one quantisation step (about 3 % of the magnitude) of the value clipped
    # to the largest code, 32124; g711.c truncates rather than rounds.
    clipped = np.clip(x, -32124, 32124)
    assert np.all(np.abs(clipped - out) <= np.abs(clipped) // 32 + 8)


@given(int16_arrays)
def test_alaw_quantisation_error_is_bounded(pcm: np.ndarray) -> None:
    out = alaw_decode(alaw_encode(pcm)).astype(np.int64)
    clipped = np.clip(pcm.astype(np.int64), -32256, 32256)  # largest A-law code
    assert np.all(np.sign(out) * np.sign(clipped) >= 0)
    assert np.all(np.abs(clipped - out) <= np.abs(clipped) // 32 + 8)


@given(int16_arrays)
def test_decode_encode_is_idempotent(pcm: np.ndarray) -> None:
    once = ulaw_decode(ulaw_encode(pcm))
    np.testing.assert_array_equal(ulaw_decode(ulaw_encode(once)), once)
    once_a = alaw_decode(alaw_encode(pcm))
    np.testing.assert_array_equal(alaw_decode(alaw_encode(once_a)), once_a)


@given(st.integers(-32768, 32766))
def test_encoding_is_monotonic(v: int) -> None:
    pair = np.array([v, v + 1], np.int16)
    lo, hi = ulaw_decode(ulaw_encode(pair))
    assert lo <= hi
    lo, hi = alaw_decode(alaw_encode(pair))
    assert lo <= hi
