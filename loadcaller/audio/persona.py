"""Caller personas: who is calling, from where, on what line. Rendered once per run.

A persona is a voice (espeak-ng voice and variant, rate, pitch) plus what
happens to it on the way to the agent, in this order:

1. text: fillers ("um", "uh") inserted between words, and a mid-sentence pause
   (the utterance spoken in two halves with a gap long enough to tempt an
   agent's end-of-turn detector to cut in);
2. a noise bed mixed at ``noise.snr_db`` below the speech's active level
   (:mod:`loadcaller.audio.noise`);
3. the line: band-limiting and a codec round trip (:mod:`loadcaller.audio.degrade`);
4. the handset: gain (low volume) and clipping.

All of it runs at compile time (:func:`loadcaller.compile.compile_profile`);
the media clock only sends the frames. The same noise, degraded the same way,
is the persona's *bed*: a loop of frames the caller sends instead of digital
silence while it waits or pauses. ``patience`` becomes the call policy's
``patience_ns`` (the script hangs up, ``caller_abandoned``, when the agent
takes longer to reply).

Randomness (which words get a filler, which utterances get the pause, the
noise) comes from a generator seeded by the run's seed, the persona's name and
the text, so a seeded run sends the same audio again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import numpy as np
from pydantic import Field, model_validator

from loadcaller.audio import degrade, noise
from loadcaller.audio.frames import FRAME_SAMPLES, SAMPLE_RATE, split_frames
from loadcaller.audio.g711 import ulaw_decode, ulaw_encode
from loadcaller.config import Duration
from loadcaller.config import Model as _Model

__all__ = ["BED_SECONDS", "FillerSpec", "NoiseSpec", "PauseSpec", "Persona", "PersonaAudio",
           "Voice"]

BED_SECONDS: Final = 8.0
"""Length of the noise bed loop: long enough that its repetition is not a pattern a
VAD or a person picks up in a turn, short enough to hold for every persona (400 frames)."""

_Word = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z' -]{0,19}$")]


class Voice(_Model):
    """The synthetic caller's voice (espeak-ng voice name, words/min, pitch 0-99)."""

    name: str = Field("en-us", max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_+\-]*$")
    rate: int = Field(165, ge=80, le=450)
    pitch: int = Field(50, ge=0, le=99)


class NoiseSpec(_Model):
    """A noise bed: a generated ``kind`` or a user ``wav``, at ``snr_db`` under the speech."""

    kind: Literal["babble", "street", "car", "white", "pink", "brown"] | None = None
    wav: str | None = None
    snr_db: float = Field(15.0, ge=-5.0, le=60.0)

    @model_validator(mode="after")
    def _one_source(self) -> NoiseSpec:
        if (self.kind is None) == (self.wav is None):
            raise ValueError("noise needs exactly one of kind (babble, street, car, white, "
                             "pink, brown) or wav")
        return self


class FillerSpec(_Model):
    """Fillers inserted before words, each gap with ``probability``."""

    probability: float = Field(0.2, ge=0.0, le=1.0)
    words: list[_Word] = Field(default_factory=lambda: ["um", "uh"], min_length=1,
                                        max_length=20)


class PauseSpec(_Model):
    """A pause in the middle of an utterance (of 4 words or more), with ``probability``."""

    duration: Duration = Field(1.5, ge=0.1, le=10.0)
    probability: float = Field(1.0, ge=0.0, le=1.0)


class Persona(_Model):
    """One kind of caller (docs/personas.md)."""

    name: str = Field(max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    weight: float = Field(1.0, gt=0)
    voice: Voice | None = Field(None, description="default: the profile's voice")
    noise: NoiseSpec | None = None
    band: tuple[float, float] | None = Field(
        None, description="band-pass in Hz, e.g. [300, 3400]")
    codec: Literal["none", "gsm", "lpc10", "lowbit"] = Field(
        "none", description="gsm and lpc10 need sox; lowbit needs nothing")
    gain_db: float = Field(0.0, ge=-40.0, le=30.0, description="negative: a quiet caller")
    clip_dbfs: float | None = Field(None, ge=-30.0, le=0.0,
                                    description="hard-clip the samples at this level")
    fillers: FillerSpec | None = None
    pause: PauseSpec | None = None
    patience: Duration | None = Field(
        None, description="hang up (caller_abandoned) when a reply takes longer")

    @model_validator(mode="after")
    def _band(self) -> Persona:
        if self.band is not None:
            lo, hi = self.band
            if not 0 <= lo < hi <= SAMPLE_RATE / 2:
                raise ValueError(f"band must be [low, high] with 0 <= low < high <= 4000 Hz, "
                                 f"got [{lo:g}, {hi:g}]")
        return self


def _seed(*parts: object) -> int:
    blob = "\x00".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big")


@dataclass(frozen=True, slots=True)
class Speech:
    """Text as a persona says it: pieces spoken in turn, ``gap_s`` of pause between."""

    pieces: tuple[str, ...]
    gap_s: float = 0.0


class PersonaAudio:
    """Renders a persona's audio (see the module docstring); one per persona per run."""

    def __init__(self, spec: Persona, *, seed: int | None, base_dir: Path) -> None:
        self.spec = spec
        self.seed = seed or 0
        self.base_dir = base_dir
        self._noise: noise.Signal | None = None
        self._noise_rms: list[float] = []  # the scaled noise of each utterance mixed so far

    @property
    def name(self) -> str:
        return self.spec.name

    def words(self, text: str) -> Speech:
        """How the persona says ``text``: fillers inserted, maybe split by a pause."""
        rng = np.random.default_rng(_seed(self.seed, self.spec.name, text))
        words = text.split()
        fill = self.spec.fillers
        if fill is not None and fill.probability > 0:
            out: list[str] = []
            for i, word in enumerate(words):
                if rng.random() < fill.probability:
                    filler = fill.words[int(rng.integers(len(fill.words)))]
                    out.append(f"{filler.capitalize() if i == 0 else filler},")
                    if i == 0 and word[:1].isupper() and word not in ("I", "I'm"):
                        word = word[0].lower() + word[1:]
                out.append(word)
            words = out
        pause = self.spec.pause
        if pause is not None and len(words) >= 4 and rng.random() < pause.probability:
            half = len(words) // 2
            return Speech((" ".join(words[:half]), " ".join(words[half:])), pause.duration)
        return Speech((" ".join(words),))

    def join(self, pieces: list[bytes], gap_s: float) -> bytes:
        """Speech pieces (mu-law) with ``gap_s`` of silence between them."""
        gap = ulaw_encode(np.zeros(int(gap_s * SAMPLE_RATE), dtype=np.int16))
        return gap.join(pieces)

    def noise_signal(self) -> noise.Signal:
        """The persona's noise, unit power, :data:`BED_SECONDS` long (made once)."""
        spec = self.spec.noise
        if spec is None:
            raise ValueError("this persona has no noise")
        if self._noise is None:
            wav = None if spec.wav is None else self.base_dir / spec.wav
            self._noise = noise.make_noise(spec.kind or "", BED_SECONDS,
                                           _seed(self.seed, self.spec.name, "noise"), wav)
        return self._noise

    def process(self, ulaw: bytes) -> bytes:
        """Mu-law speech through the noise, the line and the handset."""
        x = ulaw_decode(ulaw).astype(np.float64) / 32768.0
        spec = self.spec.noise
        if spec is not None:
            bed = self.noise_signal()
            start = int(np.random.default_rng(_seed(self.seed, len(ulaw))).integers(len(bed)))
            x, scaled = noise.mix_at_snr(x, np.roll(bed, -start), spec.snr_db)
            self._noise_rms.append(float(np.sqrt(np.mean(np.square(scaled)))))
        return self._line(x)

    def bed_frames(self) -> tuple[bytes, ...]:
        """The frames sent between utterances: the noise at the level mixed under speech.

        Empty when the persona has no noise (the caller then sends digital silence).
        Call after every utterance is processed: its level is their noise's median.
        """
        if self.spec.noise is None:
            return ()
        rms = float(np.median(self._noise_rms)) if self._noise_rms else 10 ** (-45 / 20)
        x = self.noise_signal() * rms
        # cross-fade the loop's end into its start over 2 frames: no click where it wraps
        fade = 2 * FRAME_SAMPLES
        ramp = np.linspace(0.0, 1.0, fade)
        looped = x[: len(x) - fade].copy()
        looped[:fade] = x[:fade] * ramp + x[len(x) - fade:] * (1.0 - ramp)
        bed = self._line(looped)
        return tuple(split_frames(bed[: len(bed) - len(bed) % FRAME_SAMPLES]))

    def _line(self, x: noise.Signal) -> bytes:
        s = self.spec
        if s.band is not None:
            x = degrade.band_limit(x, *s.band)
        if s.codec != "none":
            x = degrade.codec_round_trip(x, s.codec)
        if s.gain_db:
            x = degrade.apply_gain(x, s.gain_db)
        if s.clip_dbfs is not None:
            x = degrade.clip(x, s.clip_dbfs)
        return ulaw_encode(self._pcm(x))

    @staticmethod
    def _pcm(x: noise.Signal) -> Any:
        return np.clip(np.rint(x * 32768.0), -32768, 32767).astype(np.int16)

    def check(self) -> None:
        """Raise ValueError for what this persona needs and this machine lacks."""
        s = self.spec
        if s.codec in ("gsm", "lpc10") and not degrade.sox_available():
            raise ValueError(f"codec {s.codec} needs sox (apt-get install sox), or use "
                             "codec: lowbit")
        if s.noise is not None and s.noise.wav is not None:
            self.noise_signal()  # reads and decodes the file

