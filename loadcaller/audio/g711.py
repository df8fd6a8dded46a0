"""G.711 mu-law and A-law codecs by table lookup.

The tables are computed once at import with a vectorised form of the ITU-T
G.711 / Sun Microsystems ``g711.c`` reference algorithm, so every call is a
single numpy fancy-index: encoding indexes a 65536-entry table by the sample
offset to unsigned (``sample + 32768``), decoding a 256-entry table by the code.
That keeps per-frame cost flat for hundreds of concurrent calls.
"""

from __future__ import annotations

from typing import Final, TypeVar

import numpy as np
import numpy.typing as npt

__all__ = [
    "ALAW_SILENCE",
    "ULAW_POWER",
    "ULAW_SILENCE",
    "alaw_decode",
    "alaw_encode",
    "ulaw_decode",
    "ulaw_encode",
]

ULAW_SILENCE: Final = 0xFF
"""Mu-law code of a zero sample (positive zero)."""
ALAW_SILENCE: Final = 0xD5
"""A-law code of the smallest positive sample, the conventional A-law silence."""

_SEG_UEND = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], np.int32)
_SEG_AEND = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], np.int32)
_ULAW_BIAS = 0x84
_ULAW_CLIP = 8159  # largest 14-bit magnitude that still fits the top segment


_A = TypeVar("_A", bound=np.ndarray)


def _frozen(a: _A) -> _A:
    a.setflags(write=False)  # shared module-level tables must never be edited in place
    return a


def _build_ulaw_encode() -> npt.NDArray[np.uint8]:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 2  # 14-bit, arithmetic shift as in C
    negative = pcm < 0
    mag = np.minimum(np.where(negative, -pcm, pcm), _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    seg = np.searchsorted(_SEG_UEND, mag, side="left")  # first end >= mag, as g711.c search()
    # Clipped magnitudes land past the last segment end; g711.c maps them to the top code.
    code = np.where(seg >= 8, 0x7F, (np.minimum(seg, 7) << 4) | ((mag >> (seg + 1)) & 0xF))
    mask = np.where(negative, 0x7F, 0xFF)
    return (code ^ mask).astype(np.uint8)


def _build_ulaw_decode() -> npt.NDArray[np.int16]:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0xF) << 3) + _ULAW_BIAS) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, _ULAW_BIAS - t, t - _ULAW_BIAS).astype(np.int16)


def _build_alaw_encode() -> npt.NDArray[np.uint8]:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 3  # 13-bit
    negative = pcm < 0
    mag = np.where(negative, -pcm - 1, pcm)
    seg = np.searchsorted(_SEG_AEND, mag, side="left")
    quant = np.where(seg < 2, mag >> 1, mag >> np.maximum(seg, 1)) & 0xF
    code = np.where(seg >= 8, 0x7F, (np.minimum(seg, 7) << 4) | quant)
    mask = np.where(negative, 0x55, 0xD5)
    return (code ^ mask).astype(np.uint8)


def _build_alaw_decode() -> npt.NDArray[np.int16]:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    seg = (a & 0x70) >> 4
    t = (a & 0xF) << 4
    t = np.where(seg == 0, t + 8, (t + 0x108) << np.maximum(seg - 1, 0))
    return np.where(a & 0x80, t, -t).astype(np.int16)


_ULAW_ENC: Final = _frozen(_build_ulaw_encode())
_ULAW_DEC: Final = _frozen(_build_ulaw_decode())
_ALAW_ENC: Final = _frozen(_build_alaw_encode())
_ALAW_DEC: Final = _frozen(_build_alaw_decode())

ULAW_POWER: Final[npt.NDArray[np.float64]] = _frozen(_ULAW_DEC.astype(np.float64) ** 2)
"""Decoded sample value squared, per mu-law code: a frame's mean power is one take + mean."""


def _table_index(pcm: npt.ArrayLike) -> npt.NDArray[np.uint16]:
    a = np.asarray(pcm)
    if a.dtype != np.int16:
        if a.dtype.kind not in "iu":
            # Casting floats would silently truncate [-1, 1] audio to zeros.
            raise TypeError(f"expected int16 samples, got dtype {a.dtype}")
        if a.size and (a.min() < -32768 or a.max() > 32767):
            raise ValueError("samples out of int16 range")
        a = a.astype(np.int16)
    # Flipping the sign bit of the unsigned view is sample + 32768, without a widening copy.
    return np.ascontiguousarray(a).reshape(-1).view(np.uint16) ^ np.uint16(0x8000)


def ulaw_encode(pcm: npt.ArrayLike) -> bytes:
    """Encode int16 linear samples to G.711 mu-law, one byte per sample."""
    return _ULAW_ENC[_table_index(pcm)].tobytes()


def ulaw_decode(data: bytes) -> npt.NDArray[np.int16]:
    """Decode G.711 mu-law bytes to int16 linear samples (a new, writable array)."""
    return _ULAW_DEC[np.frombuffer(data, dtype=np.uint8)]


def alaw_encode(pcm: npt.ArrayLike) -> bytes:
    """Encode int16 linear samples to G.711 A-law, one byte per sample."""
    return _ALAW_ENC[_table_index(pcm)].tobytes()


def alaw_decode(data: bytes) -> npt.NDArray[np.int16]:
    """Decode G.711 A-law bytes to int16 linear samples (a new, writable array)."""
    return _ALAW_DEC[np.frombuffer(data, dtype=np.uint8)]
