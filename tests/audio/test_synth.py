"""Synthesis with the real espeak-ng, its disk cache, the no-espeak fallback, WAV override."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from loadcaller.audio import synth
from loadcaller.audio.errors import AudioError, SynthesisUnavailable
from loadcaller.audio.frames import FRAME_BYTES, split_frames
from loadcaller.audio.pack import load_pack_audio
from loadcaller.audio.synth import (
    Voice,
    default_cache_dir,
    espeak_available,
    espeak_version,
    render_espeak,
    resolve_utterance,
    synthesize,
)
from loadcaller.audio.vad import SpeechStart, StreamingVad, ulaw_frame_dbfs


def first_speech_frame(audio: bytes) -> int | None:
    vad = StreamingVad()
    for i, frame in enumerate(split_frames(audio)):
        event = vad.feed(ulaw_frame_dbfs(frame), i)
        if isinstance(event, SpeechStart):
            return event.t_ns  # stamped where the run began (it is confirmed later)
    return None


@pytest.fixture
def no_espeak(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A PATH on which espeak-ng really cannot be found."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def test_synthesize_gives_trimmed_speech(espeak: str, tmp_path: Path) -> None:
    audio = synthesize("Hello, this is a test.", Voice("en-gb"), cache_dir=tmp_path)
    assert len(audio) % FRAME_BYTES == 0
    assert 0.8 < len(audio) / 8000 < 3.0  # seconds: a short sentence, no long silences
    assert first_speech_frame(audio) == 0
    assert ulaw_frame_dbfs(audio[-FRAME_BYTES:]) >= -50.0


def test_synthesize_is_cached_on_disk(espeak: str, tmp_path: Path) -> None:
    voice = Voice("en-us", rate=180, pitch=30)
    first = synthesize("Cache me.", voice, cache_dir=tmp_path)
    [cached] = tmp_path.glob("*.ulaw")
    assert cached.read_bytes() == first
    assert not list(tmp_path.glob("*.tmp"))  # atomic write left no temporary behind
    # The second call must read the file, not run espeak-ng again.
    cached.write_bytes(b"\x00" * FRAME_BYTES)
    assert synthesize("Cache me.", voice, cache_dir=tmp_path) == b"\x00" * FRAME_BYTES
    # Another voice, another entry.
    synthesize("Cache me.", Voice("en-us", rate=180, pitch=31), cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.ulaw"))) == 2


def test_default_cache_dir_follows_environment(
    espeak: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LOADCALLER_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    synthesize("Environment.")
    assert len(list((tmp_path / "c").glob("*.ulaw"))) == 1
    monkeypatch.delenv("LOADCALLER_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "loadcaller" / "utterances"


def test_voice_parameters_change_the_audio(espeak: str) -> None:
    slow = render_espeak("One two three four five.", Voice(rate=120))
    fast = render_espeak("One two three four five.", Voice(rate=250))
    assert len(fast) < 0.7 * len(slow)
    assert render_espeak("Same.", Voice(pitch=20)) != render_espeak("Same.", Voice(pitch=80))


def test_text_that_looks_like_an_option_is_spoken(espeak: str) -> None:
    # Without "--" espeak-ng would parse "-h" as an option and print help, not speech.
    assert len(render_espeak("-h minus")) > 10 * FRAME_BYTES


def test_espeak_version_is_reported(espeak: str) -> None:
    assert espeak_available()
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?\S*", espeak_version())


def test_espeak_failure_is_an_audio_error(espeak: str) -> None:
    with pytest.raises(AudioError, match="espeak-ng failed"):
        render_espeak("Hello.", Voice("zz-no-such-voice"))


def test_empty_text_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty"):
        synthesize("  ", cache_dir=tmp_path)


@pytest.mark.parametrize(
    "kwargs", [{"name": "-v"}, {"name": "en us"}, {"rate": 10}, {"pitch": 100}]
)
def test_voice_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Voice(**kwargs)  # type: ignore[arg-type]


# --- without espeak-ng ---------------------------------------------------------------


@pytest.mark.usefixtures("no_espeak")
def test_without_espeak_pack_phrases_still_work(tmp_path: Path) -> None:
    assert not espeak_available()
    cache = tmp_path / "cache"
    text = "Hi, I'm calling about my order."
    assert synthesize(text, Voice("en-gb"), cache_dir=cache) == load_pack_audio(
        "hello_order", "en-gb"
    )
    # A variant of an accent in the pack uses that accent...
    assert synthesize(text, Voice("en-gb-scotland+m3")) == load_pack_audio(
        "hello_order", "en-gb-scotland"
    )
    # ...and an accent not in the pack falls back to en-us.
    assert synthesize(text, Voice("en-au")) == load_pack_audio("hello_order", "en-us")
    assert not cache.exists()  # nothing is cached: the pack is already on disk


@pytest.mark.usefixtures("no_espeak")
def test_without_espeak_other_text_says_what_to_do() -> None:
    with pytest.raises(SynthesisUnavailable) as info:
        synthesize("Something nobody rendered.")
    message = str(info.value)
    assert "install espeak-ng" in message
    assert "WAV" in message
    assert "pack" in message
    with pytest.raises(SynthesisUnavailable):
        render_espeak("Hello.")
    with pytest.raises(SynthesisUnavailable):
        espeak_version()


# --- resolve_utterance -----------------------------------------------------------------


def test_wav_wins_over_text(
    sox_wav: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Silence, a tone, silence: the WAV is trimmed to the tone.
    wav = sox_wav(
        "u.wav", ["-r", "16000", "-c", "1", "-b", "16"], ["0.5", "sine", "440", "pad", "0.3", "0.4"]
    )
    monkeypatch.setattr(synth, "synthesize", pytest.fail)  # text must not be synthesised
    audio = resolve_utterance("Ignored text.", wav, Voice(), tmp_path)
    assert len(audio) == 25 * FRAME_BYTES  # 0.5 s of tone in 20 ms frames
    assert first_speech_frame(audio) == 0


def test_resolve_without_wav_synthesises(espeak: str, tmp_path: Path) -> None:
    voice = Voice("en-029")
    expected = synthesize("Resolve me.", voice, cache_dir=tmp_path)
    assert resolve_utterance("Resolve me.", None, voice, tmp_path) == expected


def test_resolve_errors(sox_wav: Callable[..., Path]) -> None:
    with pytest.raises(ValueError, match="text or a WAV"):
        resolve_utterance(None, None, Voice(), None)
    quiet = sox_wav("q.wav", ["-r", "8000", "-c", "1"], ["1", "sine", "440", "vol", "0.001"])
    with pytest.raises(AudioError, match="no speech"):
        resolve_utterance(None, quiet, Voice(), None)
