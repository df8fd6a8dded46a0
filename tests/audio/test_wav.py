"""WAV reading (files written by sox), resampling and mu-law conversion."""

from __future__ import annotations

import random
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from loadcaller.audio.errors import WavFormatError
from loadcaller.audio.g711 import ulaw_decode
from loadcaller.audio.wav import load_wav_ulaw, read_wav, read_wav_bytes, resample, to_ulaw_8k

SoxWav = Callable[..., Path]


def sox_rms(sox: str, path: Path) -> float:
    """RMS amplitude of a file (all channels mixed) as sox's own `stat` reports it."""
    out = subprocess.run(
        [sox, str(path), "-n", "remix", "-", "stat"], capture_output=True, text=True, check=True
    ).stderr
    line = next(x for x in out.splitlines() if x.startswith("RMS     amplitude"))
    return float(line.split(":")[1])


def peak_hz(x: npt.ArrayLike, rate: int) -> float:
    a = np.asarray(x, dtype=np.float64)
    spectrum = np.abs(np.fft.rfft(a * np.hanning(a.size)))
    return float(np.argmax(spectrum)) * rate / a.size


def rms(x: npt.ArrayLike) -> float:
    return float(np.sqrt(np.mean(np.square(np.asarray(x, dtype=np.float64)))))


@pytest.mark.parametrize(
    ("name", "fmt", "rate", "channels"),
    [
        ("stereo44k.wav", ["-r", "44100", "-c", "2"], 44100, 2),  # sox: 32-bit extensible
        ("mono16k_s16.wav", ["-r", "16000", "-c", "1", "-b", "16"], 16000, 1),
        ("mono8k_u8.wav", ["-r", "8000", "-c", "1", "-b", "8"], 8000, 1),
        ("quad48k_s24.wav", ["-r", "48000", "-c", "4", "-b", "24"], 48000, 4),
        ("float48k.wav", ["-r", "48000", "-c", "1", "-e", "floating-point", "-b", "32"], 48000, 1),
        ("double22k.wav", ["-r", "22050", "-c", "2", "-e", "floating-point", "-b", "64"], 22050, 2),
        ("ulaw8k.wav", ["-r", "8000", "-c", "1", "-e", "mu-law"], 8000, 1),
        ("alaw8k.wav", ["-r", "8000", "-c", "1", "-e", "a-law"], 8000, 1),
    ],
)
def test_read_wav_formats_written_by_sox(
    sox: str, sox_wav: SoxWav, name: str, fmt: list[str], rate: int, channels: int
) -> None:
    path = sox_wav(name, fmt, ["1", "sine", "440", "vol", "0.5"])
    x, got_rate = read_wav(path)
    assert got_rate == rate
    assert x.dtype == np.float32 and x.ndim == 1
    assert x.size == rate  # one second, channels mixed down
    assert np.abs(x).max() <= 1.0
    assert rms(x) == pytest.approx(sox_rms(sox, path), rel=0.01)
    assert peak_hz(x, rate) == pytest.approx(440, abs=2)


@pytest.mark.parametrize("encoding", [["-b", "16"], ["-b", "32"], ["-e", "floating-point"]])
def test_downmix_averages_channels(sox: str, sox_wav: SoxWav, encoding: list[str]) -> None:
    # Left: the tone; right: the tone at -0.5x. The mean of the two is a quarter of the tone.
    left = sox_wav(
        "l.wav", ["-r", "16000", "-c", "1", "-b", "16"], ["1", "sine", "440", "vol", "0.8"]
    )
    right = left.with_name("r.wav")
    subprocess.run([sox, str(left), str(right), "vol", "-0.5"], check=True)
    both = left.with_name("both.wav")
    subprocess.run([sox, "-M", str(left), str(right), *encoding, str(both)], check=True)
    mono, _ = read_wav(both)
    tone, _ = read_wav(left)
    np.testing.assert_allclose(mono, 0.25 * tone, atol=2e-4)


@pytest.mark.parametrize(
    ("fmt", "src"),
    [
        (["-r", "44100", "-c", "2"], 44100),
        (["-r", "16000", "-c", "1", "-b", "16"], 16000),
        (["-r", "48000", "-c", "1", "-e", "floating-point", "-b", "32"], 48000),
        (["-r", "22050", "-c", "1", "-b", "16"], 22050),
    ],
)
@pytest.mark.parametrize("tone", [440, 1000, 3000])
def test_resample_to_8k_keeps_tone_frequency_level_and_duration(
    sox_wav: SoxWav, fmt: list[str], src: int, tone: int
) -> None:
    path = sox_wav("tone.wav", fmt, ["2", "sine", str(tone), "vol", "0.5"])
    x, rate = read_wav(path)
    y = resample(x, rate, 8000)
    assert y.size == 16000
    middle = y[1000:-1000]  # away from the filter's edge transients
    assert peak_hz(middle, 8000) == pytest.approx(tone, abs=2)
    assert 20 * np.log10(rms(middle) / rms(x[src // 8 : -src // 8])) == pytest.approx(0, abs=0.1)


@pytest.mark.parametrize(("src", "tone"), [(44100, 6000), (16000, 5000), (48000, 9000)])
def test_downsampling_filters_out_what_would_alias(src: int, tone: int) -> None:
    t = np.arange(src) / src
    y = resample(0.5 * np.sin(2 * np.pi * tone * t), src, 8000)
    # Without the low-pass, the tone would fold to 8000 - tone (or 16000 - tone) at -9 dBFS.
    assert 20 * np.log10(rms(y[200:-200]) / 0.5) < -70


def test_upsampling_interpolates_a_tone() -> None:
    t = np.arange(8000) / 8000
    y = resample(np.sin(2 * np.pi * 1000 * t), 8000, 16000)
    assert y.size == 16000
    expected = np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000)
    np.testing.assert_allclose(y[200:-200], expected[200:-200], atol=1e-3)


def test_resample_identity_and_validation() -> None:
    x = np.linspace(-1, 1, 100)
    np.testing.assert_array_equal(resample(x, 8000, 8000), x.astype(np.float32))
    assert resample(np.zeros(0), 44100, 8000).size == 0
    with pytest.raises(ValueError, match="mono"):
        resample(np.zeros((10, 2)), 16000, 8000)
    with pytest.raises(ValueError, match="positive"):
        resample(x, 0, 8000)


def test_resample_handles_long_input_in_blocks() -> None:
    x = np.sin(2 * np.pi * 440 * np.arange(44100 * 3) / 44100)
    y = resample(x, 44100, 8000)
    assert y.size == 24000
    assert peak_hz(y, 8000) == pytest.approx(440, abs=1)


def test_to_ulaw_8k_clips_and_encodes(sox_wav: SoxWav) -> None:
    loud = np.full(1600, 3.0)  # far over full scale: clipped, not wrapped
    decoded = ulaw_decode(to_ulaw_8k(loud, 8000))
    assert decoded.size == 1600 and decoded.min() == decoded.max() == 32124
    path = sox_wav("t.wav", ["-r", "16000", "-c", "1", "-b", "16"], ["0.5", "sine", "440"])
    ulaw = load_wav_ulaw(path)
    assert len(ulaw) == 4000
    assert peak_hz(ulaw_decode(ulaw), 8000) == pytest.approx(440, abs=2)


def test_streamed_wav_with_oversized_lengths_is_read_to_the_end(sox_wav: SoxWav) -> None:
    # espeak-ng --stdout writes 0x7ffff000 as the data size; the file is shorter.
    data = bytearray(
        sox_wav("s.wav", ["-r", "8000", "-c", "1", "-b", "16"], ["0.1", "sine", "440"]).read_bytes()
    )
    struct.pack_into("<I", data, 4, 0x7FFFF024)
    struct.pack_into("<I", data, data.find(b"data") + 4, 0x7FFFF000)
    x, rate = read_wav_bytes(bytes(data))
    assert (rate, x.size) == (8000, 800)


def test_float_wav_chunks_are_walked_past_unknown_chunks(sox_wav: SoxWav) -> None:
    data = sox_wav(
        "f.wav",
        ["-r", "8000", "-c", "1", "-e", "floating-point", "-b", "32"],
        ["0.1", "sine", "440"],
    ).read_bytes()
    at = data.find(b"data")
    odd_chunk = b"LIST" + struct.pack("<I", 3) + b"abc" + b"\x00"  # odd size: padded
    x, rate = read_wav_bytes(data[:at] + odd_chunk + data[at:])
    assert (rate, x.size) == (8000, 800)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not a wav file at all", "not a RIFF/WAVE"),
        (b"RIFF\x04\x00\x00\x00WAVE", "no fmt chunk"),
        (
            b"RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00"
            + struct.pack("<HHIIHH", 0x11, 1, 8000, 4000, 1, 4)
            + b"data\x04\x00\x00\x00\x00\x00\x00\x00",
            "format tag 0x0011",  # IMA ADPCM
        ),
        (b"RIFF\x00\x00\x00\x00WAVEdata\x00\x00\x00\x00", "data chunk before fmt"),
    ],
)
def test_malformed_or_unsupported_wavs_raise_wav_format_error(data: bytes, message: str) -> None:
    with pytest.raises(WavFormatError, match=message):
        read_wav_bytes(data)


def test_missing_file_raises_wav_format_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(WavFormatError, match=r"nope\.wav"):
        read_wav(tmp_path / "nope.wav")


@pytest.mark.parametrize("encoding", [["-b", "16"], ["-e", "floating-point"]])
def test_truncated_or_corrupt_headers_raise_only_wav_format_error(
    sox_wav: SoxWav, encoding: list[str]
) -> None:
    # The stdlib wave module trips on some corrupt headers with RuntimeError or
    # struct.error; callers must only ever see WavFormatError.
    data = sox_wav(
        "c.wav", ["-r", "8000", "-c", "2", *encoding], ["0.01", "sine", "440"]
    ).read_bytes()
    rng = random.Random(2)
    variants = [data[:n] for n in range(0, 100)]
    for _ in range(1500):
        corrupt = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            corrupt[rng.randrange(80)] = rng.randrange(256)
        variants.append(bytes(corrupt))
    for variant in variants:
        try:
            x, rate = read_wav_bytes(variant)
        except WavFormatError:
            continue
        assert x.dtype == np.float32 and rate > 0
