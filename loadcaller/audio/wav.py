"""WAV reading, resampling and conversion to 8 kHz mu-law.

The stdlib ``wave`` module reads plain PCM (format tag 1); for IEEE float,
G.711 and WAVE_FORMAT_EXTENSIBLE files, which ``wave`` rejects on 3.11, we walk
the RIFF chunks ourselves. Both paths end in the same sample decoder.

Resampling is a polyphase windowed-sinc FIR (Kaiser window) in numpy: the
rate ratio is reduced to L/M and one filter per output phase is tabulated.
When downsampling the cutoff sits below the target Nyquist so that energy
above 4 kHz cannot alias into the telephone band.

A WAV file is input from the user, so its header is not trusted: the file is
read whole into memory only up to :data:`MAX_WAV_BYTES`, and its declared
sample rate must lie within 8-192 kHz. A 144-byte file declaring
4,000,000,007 Hz once made the resampler tabulate a filter of 954 GiB. Odd
rates inside the range (191,999 Hz reduces to 8000/191999: 8000 filter phases,
450 MB and 2 s) are brought to a ratio with at most :data:`_MAX_PHASES` phases,
a pitch error below 0.001 %.
"""

from __future__ import annotations

import io
import math
import struct
import wave
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Final

import numpy as np
import numpy.typing as npt

from loadcaller.audio.errors import WavFormatError
from loadcaller.audio.frames import SAMPLE_RATE
from loadcaller.audio.g711 import alaw_decode, ulaw_decode, ulaw_encode

__all__ = [
    "MAX_RATE",
    "MAX_WAV_BYTES",
    "MIN_RATE",
    "load_wav_ulaw",
    "read_wav",
    "read_wav_bytes",
    "resample",
    "to_ulaw_8k",
]

MIN_RATE: Final = 8_000
MAX_RATE: Final = 192_000
MAX_WAV_BYTES: Final = 64 * 1024 * 1024
"""64 MiB: over a minute of 192 kHz 32-bit stereo; a caller's utterance is seconds."""

FloatArray = npt.NDArray[np.float32]

_PCM: Final = 0x0001
_FLOAT: Final = 0x0003
_ALAW: Final = 0x0006
_ULAW: Final = 0x0007
_EXTENSIBLE: Final = 0xFFFE

_ZERO_CROSSINGS: Final = 16  # sinc lobes each side, counted at the lower of the two rates
_KAISER_BETA: Final = 8.6  # about 80 dB stopband
_ROLLOFF: Final = 0.92  # cutoff as a fraction of the lower Nyquist: room for the transition band
_CHUNK_OUT: Final = 8192  # output samples per vectorised block, bounds memory on long files
_MAX_PHASES: Final = 1000  # filter phases tabulated at most (44.1 kHz -> 8 kHz needs 80)


def read_wav(path: str | Path) -> tuple[FloatArray, int]:
    """Read a WAV file as float32 mono in [-1, 1] and its sample rate.

    Supports 8/16/24/32-bit PCM, 32/64-bit float, G.711 mu-law/A-law and
    WAVE_FORMAT_EXTENSIBLE, any channel count (channels are averaged).
    Raises WavFormatError naming the file on anything else.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            # Read at most one byte past the cap: a device or a huge file stops there.
            data = f.read(MAX_WAV_BYTES + 1)
    except OSError as exc:
        raise WavFormatError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    return read_wav_bytes(data, str(path))


def read_wav_bytes(data: bytes, name: str = "<bytes>") -> tuple[FloatArray, int]:
    """Like read_wav, from the bytes of a WAV file (e.g. a program's stdout)."""
    if len(data) > MAX_WAV_BYTES:
        raise WavFormatError(f"{name}: over {MAX_WAV_BYTES // (1024 * 1024)} MiB; "
                             "a caller's utterance is a few seconds of audio")
    try:
        return _read(io.BytesIO(data), name)
    except MemoryError:
        raise WavFormatError(f"{name}: too large to decode") from None


def _read(f: BinaryIO, name: str) -> tuple[FloatArray, int]:
    try:
        with wave.open(f, "rb") as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            _check_rate(rate, name)  # before reading or decoding anything
            # Streamed WAVs (espeak-ng --stdout) declare a huge data size: read to EOF.
            raw = w.readframes(w.getnframes())
        tag = _PCM
    except (wave.Error, EOFError, RuntimeError, struct.error, ValueError):
        # wave rejects non-PCM formats with wave.Error, and a corrupt header with
        # whatever its chunk reader trips on (RuntimeError for a chunk past EOF).
        # Our own parser handles the former and explains the latter.
        f.seek(0)
        tag, channels, width, rate, raw = _parse_riff(f.read(), name)
    return _decode(raw, tag, channels, width, name), rate


def _check_rate(rate: int, name: str) -> None:
    if not MIN_RATE <= rate <= MAX_RATE:
        raise WavFormatError(f"{name}: sample rate {rate} Hz is outside "
                             f"{MIN_RATE}-{MAX_RATE} Hz")


def _parse_riff(data: bytes, name: str) -> tuple[int, int, int, int, bytes]:
    """Return (format tag, channels, bytes per sample, rate, sample bytes) of a RIFF/WAVE."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise WavFormatError(f"{name}: not a RIFF/WAVE file")
    fmt: tuple[int, int, int, int] | None = None
    pos = 12
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = data[pos + 8 : pos + 8 + size]  # clamps a size that overruns the file
        if chunk_id == b"fmt ":
            fmt = _parse_fmt(body, name)
        elif chunk_id == b"data":
            if fmt is None:
                raise WavFormatError(f"{name}: data chunk before fmt chunk")
            tag, channels, width, rate = fmt
            return tag, channels, width, rate, body
        pos += 8 + size + (size & 1)  # chunks are padded to even length
    raise WavFormatError(f"{name}: no {'data' if fmt else 'fmt'} chunk")


def _parse_fmt(body: bytes, name: str) -> tuple[int, int, int, int]:
    if len(body) < 16:
        raise WavFormatError(f"{name}: fmt chunk too short ({len(body)} bytes)")
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", body)
    if tag == _EXTENSIBLE:
        if len(body) < 40:
            raise WavFormatError(f"{name}: WAVE_FORMAT_EXTENSIBLE fmt chunk too short")
        # The sub-format GUID starts with the plain format tag.
        tag = struct.unpack_from("<H", body, 24)[0]
    if channels < 1 or rate < 1:
        raise WavFormatError(f"{name}: invalid fmt ({channels} channels, {rate} Hz)")
    _check_rate(rate, name)
    width = block_align // channels if block_align else (bits + 7) // 8
    return tag, channels, width, rate


def _decode(raw: bytes, tag: int, channels: int, width: int, name: str) -> FloatArray:
    frame_bytes = channels * width
    raw = raw[: len(raw) - len(raw) % frame_bytes] if frame_bytes else b""
    samples: npt.NDArray[np.float64]
    if tag == _PCM and width == 1:
        samples = (np.frombuffer(raw, np.uint8).astype(np.float64) - 128.0) / 128.0
    elif tag == _PCM and width == 2:
        samples = np.frombuffer(raw, "<i2") / 32768.0
    elif tag == _PCM and width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        value = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        samples = np.where(value >= 1 << 23, value - (1 << 24), value) / float(1 << 23)
    elif tag == _PCM and width == 4:
        samples = np.frombuffer(raw, "<i4") / float(1 << 31)
    elif tag == _FLOAT and width in (4, 8):
        samples = np.frombuffer(raw, "<f4" if width == 4 else "<f8").astype(np.float64)
        samples = np.clip(np.nan_to_num(samples), -1.0, 1.0)
    elif tag in (_ULAW, _ALAW) and width == 1:
        decode = ulaw_decode if tag == _ULAW else alaw_decode
        samples = decode(raw) / 32768.0
    else:
        raise WavFormatError(
            f"{name}: unsupported WAV encoding (format tag 0x{tag:04x}, {8 * width}-bit); "
            "use PCM 8/16/24/32-bit, float 32/64-bit, mu-law or A-law"
        )
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    return samples.astype(np.float32)


def resample(x: npt.ArrayLike, src_rate: int, dst_rate: int) -> FloatArray:
    """Resample mono audio from src_rate to dst_rate with a windowed-sinc FIR.

    Downsampling low-passes below the new Nyquist frequency first (anti-aliasing).
    The output has ceil(len(x) * dst_rate / src_rate) samples and is float32.
    """
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"resample expects mono (1-D) audio, got shape {a.shape}")
    if src_rate <= 0 or dst_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {src_rate} -> {dst_rate}")
    if src_rate == dst_rate or a.size == 0:
        return a.astype(np.float32)
    ratio = Fraction(src_rate, dst_rate)  # input samples per output sample, = down/up
    if not Fraction(1, _MAX_PHASES) <= ratio <= _MAX_PHASES:
        raise ValueError(f"cannot resample {src_rate} -> {dst_rate}: a ratio over {_MAX_PHASES}")
    if ratio.denominator > _MAX_PHASES:  # see the module docstring
        ratio = ratio.limit_denominator(_MAX_PHASES)
    up, down = ratio.denominator, ratio.numerator
    # Output sample n sits at input position n*down/up = base + phase/up.
    taps, half = _polyphase_filters(up, down)
    n_out = -(-a.size * up // down)
    padded = np.concatenate([np.zeros(half), a, np.zeros(half + 1)])
    out = np.empty(n_out, dtype=np.float64)
    offsets = np.arange(taps.shape[1])
    for start in range(0, n_out, _CHUNK_OUT):
        n = np.arange(start, min(start + _CHUNK_OUT, n_out), dtype=np.int64)
        base, phase = np.divmod(n * down, up)
        # padded index of input sample (base - half + 1 + j) is base + 1 + j
        window = padded[(base + 1)[:, None] + offsets]
        out[start : start + n.size] = np.einsum("ij,ij->i", window, taps[phase])
    return out.astype(np.float32)


def _polyphase_filters(up: int, down: int) -> tuple[npt.NDArray[np.float64], int]:
    """Filter table [phase, tap] in input-sample time, and the half width in taps."""
    ratio = up / down  # dst/src
    cutoff = 0.5 * min(1.0, ratio) * _ROLLOFF  # cycles per input sample
    half = math.ceil(_ZERO_CROSSINGS * max(1.0, 1.0 / ratio))
    j = np.arange(2 * half)
    frac = np.arange(up)[:, None] / up
    tau = frac - (j[None, :] - half + 1)  # distance from each tap to the output position
    window = np.i0(_KAISER_BETA * np.sqrt(np.clip(1.0 - (tau / half) ** 2, 0.0, None)))
    h = 2.0 * cutoff * np.sinc(2.0 * cutoff * tau) * window / np.i0(_KAISER_BETA)
    h /= h.sum(axis=1, keepdims=True)  # unity gain at DC for every phase
    return h, half


def to_ulaw_8k(x: npt.ArrayLike, rate: int) -> bytes:
    """Resample float audio in [-1, 1] to 8 kHz, clip and encode as mu-law."""
    y = resample(x, rate, SAMPLE_RATE).astype(np.float64)
    pcm = np.clip(np.rint(y * 32768.0), -32768, 32767).astype(np.int16)
    return ulaw_encode(pcm)


def load_wav_ulaw(path: str | Path) -> bytes:
    """Read a WAV file and convert it to 8 kHz mono mu-law."""
    samples, rate = read_wav(path)
    return to_ulaw_8k(samples, rate)
