"""Fixtures for the audio tests: real espeak-ng and sox (tests/peers.py: skipped
when absent, failed when absent under CI)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from tests.peers import require_binary

Linear = npt.NDArray[np.float64]


@pytest.fixture
def espeak() -> str:
    """Path of espeak-ng (Debian package espeak-ng)."""
    return require_binary("espeak-ng", "espeak-ng")


@pytest.fixture
def sox() -> str:
    """Path of sox (Debian package sox)."""
    return require_binary("sox", "sox")


@pytest.fixture
def espeak_8k(espeak: str, sox: str) -> Callable[..., Linear]:
    """espeak-ng speech resampled to 8 kHz by sox (not by our code), floats in [-1, 1]."""

    def render(text: str, voice: str = "en-us", rate: int = 165, pitch: int = 50) -> Linear:
        argv = [espeak, "-v", voice, "-s", str(rate), "-p", str(pitch), "--stdout", "--", text]
        wav = subprocess.run(argv, capture_output=True, check=True).stdout
        to_raw = [sox, "-t", "wav", "-", "-t", "raw", "-r", "8000", "-e", "signed", "-b", "16", "-"]
        raw = subprocess.run(to_raw, input=wav, capture_output=True, check=True).stdout
        return np.frombuffer(raw, "<i2").astype(np.float64) / 32768.0

    return render


@pytest.fixture
def sox_wav(sox: str, tmp_path: Path) -> Callable[..., Path]:
    """Write a WAV with ``sox -n <format options> FILE synth <synth args>``."""

    def write(name: str, fmt: list[str], synth: list[str]) -> Path:
        path = tmp_path / name
        subprocess.run([sox, "-n", *fmt, str(path), "synth", *synth], check=True)
        return path

    return write
