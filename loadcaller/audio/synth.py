"""Utterance synthesis with espeak-ng, cached on disk as trimmed 8 kHz mu-law.

Every call of a run says the same few phrases, so each (text, voice, espeak-ng
version) is synthesised once and kept under the cache directory; the media
clock then shares the bytes between all calls. Without espeak-ng, texts that
exist in the bundled pack (loadcaller.audio.pack) still work.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

from loadcaller.audio import pack
from loadcaller.audio.errors import AudioError, SynthesisUnavailable
from loadcaller.audio.vad import trim_silence
from loadcaller.audio.wav import load_wav_ulaw, read_wav_bytes, to_ulaw_8k

__all__ = [
    "Voice",
    "default_cache_dir",
    "espeak_available",
    "espeak_version",
    "render_espeak",
    "resolve_utterance",
    "synthesize",
]

_ESPEAK: Final = "espeak-ng"
_TIMEOUT_S: Final = 60.0
# Bump when the conversion pipeline (resampler, trimming) changes, to invalidate caches.
_PIPELINE_VERSION: Final = 1


@dataclass(frozen=True)
class Voice:
    """An espeak-ng voice: name (-v, e.g. "en-gb-scotland"), words per minute (-s), pitch (-p)."""

    name: str = "en-us"
    rate: int = 165
    pitch: int = 50

    def __post_init__(self) -> None:
        # The name becomes a command-line argument: refuse anything option-like.
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_+\-]*", self.name):
            raise ValueError(f"invalid espeak-ng voice name: {self.name!r}")
        if not 80 <= self.rate <= 450:
            raise ValueError(f"voice rate must be 80..450 words per minute, got {self.rate}")
        if not 0 <= self.pitch <= 99:
            raise ValueError(f"voice pitch must be 0..99, got {self.pitch}")


def espeak_available() -> bool:
    """True if the espeak-ng program is on PATH."""
    return shutil.which(_ESPEAK) is not None


def default_cache_dir() -> Path:
    """``$LOADCALLER_CACHE`` if set, else ``~/.cache/loadcaller/utterances``."""
    env = os.environ.get("LOADCALLER_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "loadcaller" / "utterances"


def espeak_version() -> str:
    """Version of the installed espeak-ng (e.g. "1.51"); SynthesisUnavailable if absent."""
    executable = shutil.which(_ESPEAK)
    if executable is None:
        raise SynthesisUnavailable(f"{_ESPEAK} is not installed")
    return _espeak_version(executable)


@functools.cache
def _espeak_version(executable: str) -> str:
    out = subprocess.run(
        [executable, "--version"], capture_output=True, text=True, timeout=_TIMEOUT_S, check=False
    ).stdout
    match = re.search(r"text-to-speech:\s*(\S+)", out)
    return match.group(1) if match else out.strip()


def render_espeak(text: str, voice: Voice = Voice()) -> bytes:
    """Synthesise ``text`` with espeak-ng now (no cache): trimmed 8 kHz mu-law.

    Raises SynthesisUnavailable if espeak-ng is missing, AudioError if it fails
    or produces no speech.
    """
    executable = shutil.which(_ESPEAK)
    if executable is None:
        raise SynthesisUnavailable(f"{_ESPEAK} is not installed")
    # "--" ends the options, so a text starting with "-" is spoken, not parsed.
    argv = [executable, "-v", voice.name, "-s", str(voice.rate), "-p", str(voice.pitch)]
    argv += ["--stdout", "--", text]
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise AudioError(f"{_ESPEAK} took over {_TIMEOUT_S:.0f} s for {text[:40]!r}") from exc
    if proc.returncode != 0 or not proc.stdout:
        err = proc.stderr.decode(errors="replace").strip()
        raise AudioError(f"{_ESPEAK} failed (voice {voice.name!r}): {err or proc.returncode}")
    samples, rate = read_wav_bytes(proc.stdout, name=f"{_ESPEAK} output")
    audio = trim_silence(to_ulaw_8k(samples, rate))
    if not audio:
        raise AudioError(f"{_ESPEAK} produced no speech for {text!r}")
    return audio


def _cache_key(text: str, voice: Voice, version: str) -> str:
    blob = json.dumps(
        {"text": text, "voice": asdict(voice), "espeak": version, "pipeline": _PIPELINE_VERSION},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Several worker processes may synthesise the same phrase at once: each writes
    # its own temporary file and the rename makes whichever lands last win whole.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def synthesize(text: str, voice: Voice = Voice(), *, cache_dir: Path | None = None) -> bytes:
    """Speak ``text`` as trimmed 8 kHz mu-law, from the disk cache when possible.

    Without espeak-ng the bundled pack is used (exact text; the voice's accent
    preferred, else any accent). Raises SynthesisUnavailable when neither works.
    """
    if not text.strip():
        raise ValueError("cannot synthesise empty text")
    executable = shutil.which(_ESPEAK)
    if executable is None:
        audio = pack.find_by_text(text, voice.name)
        if audio is None:
            raise SynthesisUnavailable(
                f"cannot synthesise {text!r}: {_ESPEAK} is not installed "
                "(apt-get install espeak-ng), and the text is not a bundled pack phrase; "
                "install espeak-ng, give a WAV file, or use one of the pack phrases "
                "(`python -m loadcaller.audio.pack` lists them)"
            )
        return audio
    directory = cache_dir if cache_dir is not None else default_cache_dir()
    path = directory / f"{_cache_key(text, voice, _espeak_version(executable))}.ulaw"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    audio = render_espeak(text, voice)
    _atomic_write(path, audio)
    return audio


def resolve_utterance(
    text: str | None, wav: Path | None, voice: Voice, cache_dir: Path | None = None
) -> bytes:
    """The audio of one utterance: a WAV file if given (wins over text), else synthesis.

    WAV audio is trimmed with the same VAD as synthesised speech, so that the
    caller's last frame sent is always its last speech frame.
    """
    if wav is not None:
        audio = trim_silence(load_wav_ulaw(wav))
        if not audio:
            raise AudioError(f"{wav}: no speech found (all frames below the VAD threshold)")
        return audio
    if text is None:
        raise ValueError("an utterance needs text or a WAV file")
    return synthesize(text, voice, cache_dir=cache_dir)
