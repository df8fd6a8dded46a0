"""WAV headers are user input: rates, sizes and resampling ratios are bounded."""

from __future__ import annotations

import resource
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from loadcaller.audio.errors import WavFormatError
from loadcaller.audio.wav import (
    MAX_WAV_BYTES,
    load_wav_ulaw,
    read_wav,
    read_wav_bytes,
    resample,
)


def wav(rate: int, data: bytes = b"\x80" * 100, *, tag: int = 1, bits: int = 8) -> bytes:
    """A mono WAV declaring ``rate`` (144 bytes with the defaults)."""
    width = bits // 8
    fmt = struct.pack("<IHHIIHH", 16, tag, 1, rate, (rate * width) % 2**32, width, bits)
    body = b"WAVEfmt " + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.fixture
def address_space_limit() -> object:
    """Cap this process's memory at +2 GiB, so that the old 954 GiB attempt fails fast."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as f:
        used = int(f.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (used + 2 * 1024**3, hard))
    yield None
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.mark.parametrize("tag", [1, 3, 7], ids=["pcm_via_wave_module", "float", "mulaw"])
def test_144_byte_wav_declaring_4ghz_is_refused(tag: int, tmp_path: Path,
                                                address_space_limit: object) -> None:
    path = tmp_path / "huge-rate.wav"
    bits = 32 if tag == 3 else 8
    path.write_bytes(wav(4_000_000_007, b"\x00" * 100, tag=tag, bits=bits))
    assert path.stat().st_size == 144
    start = time.perf_counter()
    with pytest.raises(WavFormatError, match=r"huge-rate\.wav: sample rate 4000000007 Hz is "
                       r"outside 8000-192000 Hz"):
        load_wav_ulaw(path)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("rate", [1, 7999, 192_001, 2**32 - 1])
def test_rates_outside_8k_to_192k_are_refused(rate: int) -> None:
    with pytest.raises(WavFormatError, match=f"sample rate {rate} Hz is outside"):
        read_wav_bytes(wav(rate))


@pytest.mark.parametrize("rate", [8000, 11025, 44100, 192_000])
def test_rates_inside_are_read(rate: int) -> None:
    samples, got = read_wav_bytes(wav(rate))
    assert got == rate and samples.size == 100


def test_files_over_the_cap_are_refused_without_reading_them_whole(tmp_path: Path) -> None:
    with pytest.raises(WavFormatError, match=r"/dev/zero: over 64 MiB"):
        read_wav("/dev/zero")  # endless: read stops one byte past the cap
    big = tmp_path / "big.wav"
    with big.open("wb") as f:
        f.write(wav(8000, b""))
        f.truncate(MAX_WAV_BYTES + 1)
    with pytest.raises(WavFormatError, match=r"big\.wav: over 64 MiB"):
        read_wav(big)
    with pytest.raises(WavFormatError, match="over 64 MiB"):
        read_wav_bytes(b"\x00" * (MAX_WAV_BYTES + 1))


def test_odd_rates_resample_in_bounded_time() -> None:
    """191,999 Hz reduces to 8000/191999: 8000 filter phases, 450 MB and 2 s before."""
    x = np.zeros(191_999, dtype=np.float32)
    start = time.perf_counter()
    y = resample(x, 191_999, 8000)
    assert time.perf_counter() - start < 1.5
    assert abs(y.size - 8000) <= 1


def test_approximated_ratio_keeps_a_tone_in_place() -> None:
    rate = 44_101  # 8000/44101 needs 8000 phases; approximated with at most 1000
    t = np.arange(rate) / rate
    y = resample(np.sin(2 * np.pi * 1000 * t), rate, 8000)
    spectrum = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    assert abs(np.argmax(spectrum) * 8000 / y.size - 1000) < 2
    assert abs(y.size - 8000) <= 2


def test_absurd_resampling_ratios_are_refused() -> None:
    with pytest.raises(ValueError, match="ratio over 1000"):
        resample(np.zeros(10), 9_000_000, 8000)
