"""Line and handset degradations for personas, applied offline at compile time.

- :func:`band_limit` a brick-wall band-pass by FFT (default 300-3400 Hz, the
  classic telephone band) with 50 Hz raised-cosine edges against ringing.
- :func:`codec_round_trip` through a lower-bitrate codec and back:

  ``gsm``      GSM 06.10 full rate (13 kbit/s) by sox, when sox is installed
  ``lpc10``    LPC-10 (2.4 kbit/s, robotic) by sox
  ``lowbit``   no sox needed: band-limited to 300-2400 Hz and requantised to
               4-bit mu-law (32 kbit/s), a crude stand-in for a low-rate path

- :func:`apply_gain` low volume (negative dB) or a hot microphone (positive),
  then :func:`clip` at a level in dBFS: a caller shouting into the handset.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Final

import numpy as np
import numpy.typing as npt

from loadcaller.audio.frames import SAMPLE_RATE

__all__ = ["CODECS", "apply_gain", "band_limit", "clip", "codec_round_trip", "sox_available"]

Signal = npt.NDArray[np.float64]

CODECS: Final = ("none", "gsm", "lpc10", "lowbit")
_SOX_CODECS: Final = {"gsm": ["-t", "gsm"], "lpc10": ["-t", "lpc10"]}
_SOX_TIMEOUT_S: Final = 60.0
_MU: Final = 255.0
_RAW: Final = ["-t", "raw", "-r", str(SAMPLE_RATE), "-e", "signed", "-b", "16", "-c", "1"]


def sox_available() -> bool:
    """True if the sox program is on PATH."""
    return shutil.which("sox") is not None


def band_limit(x: Signal, low_hz: float = 300.0, high_hz: float = 3400.0) -> Signal:
    """``x`` with only ``low_hz``..``high_hz`` left (8 kHz samples)."""
    if len(x) == 0:
        return x.copy()
    spectrum = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1.0 / SAMPLE_RATE)
    edge = 50.0
    gain = np.clip((f - (low_hz - edge)) / edge, 0.0, 1.0) * np.clip(
        ((high_hz + edge) - f) / edge, 0.0, 1.0)
    gain = 0.5 - 0.5 * np.cos(np.pi * gain)  # raised-cosine edges
    return np.asarray(np.fft.irfft(spectrum * gain, len(x)), dtype=np.float64)


def apply_gain(x: Signal, gain_db: float) -> Signal:
    """``x`` louder or quieter by ``gain_db``."""
    return np.asarray(x * 10.0 ** (gain_db / 20.0), dtype=np.float64)


def clip(x: Signal, level_dbfs: float) -> Signal:
    """``x`` hard-clipped at ``level_dbfs`` (0 = full scale)."""
    limit = 10.0 ** (level_dbfs / 20.0)
    return np.clip(x, -limit, limit)


def codec_round_trip(x: Signal, codec: str) -> Signal:
    """``x`` encoded with ``codec`` and decoded again (see the module docstring).

    Raises ValueError for an unknown codec, or a sox codec without sox.
    """
    if codec == "none" or len(x) == 0:
        return x.copy()
    if codec == "lowbit":
        # mu-law companded to 4 bits (15 steps a side) instead of G.711's 8
        y = np.clip(band_limit(x, 300.0, 2400.0), -1.0, 1.0)
        c = np.sign(y) * np.log1p(_MU * np.abs(y)) / np.log1p(_MU)
        q = np.round(c * 15.0) / 15.0
        return np.asarray(np.sign(q) * np.expm1(np.abs(q) * np.log1p(_MU)) / _MU)
    if codec not in _SOX_CODECS:
        raise ValueError(f"unknown codec {codec!r}; known: {', '.join(CODECS)}")
    sox = shutil.which("sox")
    if sox is None:
        raise ValueError(f"codec {codec!r} needs sox (apt-get install sox); "
                         "codec: lowbit needs nothing")
    pcm = np.clip(np.rint(x * 32767.0), -32768, 32767).astype("<i2").tobytes()
    fmt = _SOX_CODECS[codec]
    coded = _sox([sox, *_RAW, "-", *fmt, "-r", str(SAMPLE_RATE), "-"], pcm)
    back = _sox([sox, *fmt, "-r", str(SAMPLE_RATE), "-", *_RAW, "-"], coded)
    y = np.frombuffer(back, "<i2").astype(np.float64) / 32768.0
    out = np.zeros(len(x))
    out[: min(len(x), len(y))] = y[: len(x)]
    return out


def _sox(argv: list[str], data: bytes) -> bytes:
    try:
        proc = subprocess.run(argv, input=data, capture_output=True, timeout=_SOX_TIMEOUT_S,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ValueError(f"sox failed: {exc}") from None
    if proc.returncode != 0:
        raise ValueError(f"sox failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout
