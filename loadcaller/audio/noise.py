"""Noise beds for personas: generated once per run, mixed at a target SNR.

Real callers are never digitally silent: a persona's noise bed is mixed under
its speech and sent on its own between utterances. Every kind is made offline
at compile time, never on the media clock, from a seeded generator, so a run
with a seed sends the same noise again.

Kinds (8 kHz float samples in [-1, 1]):

- ``babble``  several talkers at once: the bundled pack's espeak-ng phrases in
  several accents, each talker a shuffled sequence at its own offset, summed.
  It needs no espeak-ng at run time, and is speech-shaped, so a VAD cannot
  tell it from the caller by its spectrum (that is the point).
- ``street``  pink (1/f) noise under a slow random swell, as traffic passing.
- ``car``     brown (1/f^2) noise plus an engine hum and its harmonics.
- ``white``, ``pink``, ``brown`` the plain colours.
- a user WAV  (``noise: {wav: PATH}``), looped.

SNR is speech *active* power over noise power: the speech power is averaged
over the 20 ms frames at or above :data:`ACTIVE_DBFS` (the VAD's release
level), so the pauses of a hesitant caller do not lower it, as ITU-T P.56's
active speech level does not count pauses.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from loadcaller.audio.frames import FRAME_SAMPLES, SAMPLE_RATE
from loadcaller.audio.g711 import ulaw_decode

__all__ = ["ACTIVE_DBFS", "NOISE_KINDS", "active_power", "make_noise", "mix_at_snr",
           "power_dbfs"]

Signal = npt.NDArray[np.float64]

ACTIVE_DBFS: Final = -50.0
NOISE_KINDS: Final = ("babble", "street", "car", "white", "pink", "brown")
_BABBLE_TALKERS: Final = 6


def power_dbfs(x: Signal) -> float:
    """Mean power of ``x`` in dBFS (full scale 1.0); -120 for silence."""
    p = float(np.mean(np.square(x))) if len(x) else 0.0
    return -120.0 if p <= 1e-12 else 10.0 * math.log10(p)


def active_power(x: Signal) -> float:
    """Mean power over the frames at or above :data:`ACTIVE_DBFS` (all of ``x`` if none)."""
    n = len(x) // FRAME_SAMPLES
    if n == 0:
        return float(np.mean(np.square(x))) if len(x) else 0.0
    frames = np.square(x[: n * FRAME_SAMPLES]).reshape(n, FRAME_SAMPLES).mean(axis=1)
    active = frames[frames >= 10.0 ** (ACTIVE_DBFS / 10.0)]
    return float(active.mean()) if len(active) else float(frames.mean())


def _coloured(n: int, exponent: float, rng: np.random.Generator) -> Signal:
    """Noise whose power falls as 1/f**exponent (0 white, 1 pink, 2 brown), unit power."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    f[0] = f[1] if n > 1 else 1.0
    spectrum *= f ** (-exponent / 2.0)
    spectrum[f < 20.0] = 0.0  # no DC or infrasound: a phone line passes neither
    out = np.fft.irfft(spectrum, n)
    return out / max(1e-12, float(np.sqrt(np.mean(np.square(out)))))


def _street(n: int, rng: np.random.Generator) -> Signal:
    base = _coloured(n, 1.0, rng)
    t = np.arange(n) / SAMPLE_RATE
    # vehicles passing: a swell of 4-10 s periods, random phases
    swell = np.ones(n)
    for _ in range(3):
        period = rng.uniform(4.0, 10.0)
        swell += 0.5 * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    return base * np.clip(swell, 0.2, None)


def _car(n: int, rng: np.random.Generator) -> Signal:
    base = _coloured(n, 2.0, rng)
    t = np.arange(n) / SAMPLE_RATE
    rpm_hz = rng.uniform(25.0, 45.0)  # engine firing frequency
    hum = sum(np.sin(2 * np.pi * rpm_hz * k * t + rng.uniform(0, 2 * np.pi)) / k
              for k in range(1, 8))
    return base + 0.3 * np.asarray(hum)


def _babble(n: int, rng: np.random.Generator) -> Signal:
    from loadcaller.audio.pack import load_pack_audio, pack_entries

    clips: list[Signal] = []
    for entry in pack_entries():
        if entry.id.startswith("agent_"):
            continue  # the agent's voice: the caller's room holds other callers
        pcm = ulaw_decode(load_pack_audio(entry.id, entry.accent)).astype(np.float64) / 32768.0
        clips.append(pcm / max(1e-12, math.sqrt(active_power(pcm))))
    out = np.zeros(n)
    for _ in range(_BABBLE_TALKERS):
        talker: list[Signal] = [np.zeros(int(rng.integers(0, SAMPLE_RATE)))]
        length = len(talker[0])
        while length < n:  # bounded: every clip is at least a frame long
            clip = clips[int(rng.integers(len(clips)))]
            gap = np.zeros(int(rng.uniform(0.05, 0.3) * SAMPLE_RATE))
            talker += [clip, gap]
            length += len(clip) + len(gap)
        out += np.concatenate(talker)[:n]
    return out / max(1e-12, float(np.sqrt(np.mean(np.square(out)))))


def _wav(path: Path, n: int) -> Signal:
    from loadcaller.audio.wav import load_wav_ulaw

    pcm = ulaw_decode(load_wav_ulaw(path)).astype(np.float64) / 32768.0
    if not np.any(pcm):
        raise ValueError(f"{path}: the noise file is silent")
    reps = -(-n // len(pcm))
    out = np.tile(pcm, reps)[:n]
    return out / max(1e-12, float(np.sqrt(np.mean(np.square(out)))))


def make_noise(kind: str, seconds: float, seed: int, wav: Path | None = None) -> Signal:
    """``seconds`` of noise of ``kind`` (or the WAV file), unit power, from ``seed``."""
    n = max(FRAME_SAMPLES, int(seconds * SAMPLE_RATE))
    rng = np.random.default_rng(seed)
    if wav is not None:
        return _wav(wav, n)
    makers = {"babble": _babble, "street": _street, "car": _car}
    if kind in makers:
        out = makers[kind](n, rng)
        return out / max(1e-12, float(np.sqrt(np.mean(np.square(out)))))
    exponents = {"white": 0.0, "pink": 1.0, "brown": 2.0}
    if kind not in exponents:
        raise ValueError(f"unknown noise kind {kind!r}; known: {', '.join(NOISE_KINDS)}")
    return _coloured(n, exponents[kind], rng)


def mix_at_snr(speech: Signal, noise: Signal, snr_db: float) -> tuple[Signal, Signal]:
    """``speech`` plus ``noise`` scaled to ``snr_db`` below the speech's active power.

    ``noise`` is looped or cut to the speech's length. Returns the mix and the
    scaled noise that went into it (the noise's level for the bed between turns).
    """
    if len(noise) == 0:
        raise ValueError("no noise to mix")
    reps = -(-len(speech) // len(noise))
    bed = np.tile(noise, max(1, reps))[: len(speech)]
    p_noise = float(np.mean(np.square(bed))) if len(bed) else 0.0
    if p_noise <= 0.0:
        return speech.copy(), bed
    gain = math.sqrt(active_power(speech) / (p_noise * 10.0 ** (snr_db / 10.0)))
    bed = bed * gain
    return speech + bed, bed
