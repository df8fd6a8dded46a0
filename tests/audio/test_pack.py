"""The bundled utterance pack: complete, loadable, trimmed speech, and up to date."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from loadcaller.audio.errors import AudioError
from loadcaller.audio.frames import FRAME_BYTES, split_frames
from loadcaller.audio.pack import (
    PackEntry,
    UnknownPhrase,
    find_by_text,
    load_pack_audio,
    pack_entries,
)
from loadcaller.audio.synth import espeak_version
from loadcaller.audio.vad import SpeechStart, StreamingVad, VadConfig, trim_silence, ulaw_frame_dbfs
from tests.peers import require_binary

REPO = Path(__file__).resolve().parents[2]
PACK = resources.files("loadcaller.audio").joinpath("pack")
ACCENTS = {"en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-us-nyc"}
CALLER = {
    "hello_order": "Hi, I'm calling about my order.",
    "order_number": "The order number is four five seven two.",
    "delivery_when": "When will it be delivered?",
    "change_address": "Can I change the delivery address?",
    "thanks_bye": "Great, thank you. Goodbye.",
    "human_please": "Can I speak to a human please?",
    "yes": "Yes.",
    "no": "No, that's not right.",
}
AGENT = {
    "agent_greeting": "Thanks for calling Acme support. How can I help you today?",
    "agent_order_found": "I found your order. It ships tomorrow.",
    "agent_ask_number": "Sure. What is your order number?",
    "agent_delivery": "It will arrive on Thursday between nine and noon.",
    "agent_address": "I can update that. What is the new address?",
    "agent_transfer": "Let me connect you to a colleague.",
    "agent_goodbye": "You're welcome. Have a great day.",
    "agent_fallback": "Sorry, I'm having trouble reaching our systems. Could you say that again?",
    "agent_reprompt": "Are you still there?",
}


def test_pack_has_every_phrase_in_the_right_accents() -> None:
    entries = pack_entries()
    got = {(e.id, e.accent): e.text for e in entries}
    expected = {(pid, a): text for pid, text in CALLER.items() for a in ACCENTS}
    expected |= {(pid, "en-us"): text for pid, text in AGENT.items()}
    assert got == expected
    assert entries == sorted(entries, key=lambda e: (e.id, e.accent))


@pytest.mark.parametrize("entry", pack_entries(), ids=lambda e: f"{e.id}@{e.accent}")
def test_every_entry_is_trimmed_speech_of_the_declared_length(entry: PackEntry) -> None:
    audio = load_pack_audio(entry.id, entry.accent)
    assert len(audio) == entry.frames * FRAME_BYTES
    vad = StreamingVad()
    events = [vad.feed(ulaw_frame_dbfs(f), i) for i, f in enumerate(split_frames(audio))]
    starts = [e for e in events if isinstance(e, SpeechStart)]
    assert starts and starts[0].t_ns == 0  # speech from the very first frame
    assert ulaw_frame_dbfs(audio[-FRAME_BYTES:]) >= VadConfig().off_dbfs  # and to the last
    assert trim_silence(audio) == audio


def test_agent_speaks_with_flite_and_the_callers_with_espeak() -> None:
    index = json.loads(PACK.joinpath("index.json").read_text())
    for pid, phrase in index["phrases"].items():
        for info in phrase["accents"].values():
            engine = info["voice"].get("engine", "espeak-ng")
            assert engine == ("flite" if pid.startswith("agent_") else "espeak-ng"), pid
    assert index["phrases"]["agent_goodbye"]["accents"]["en-us"]["voice"]["name"] == "rms"
    assert index["flite"] and index["espeak"]


def test_agent_sentence_pauses_are_shorter_than_the_callers_end_of_reply() -> None:
    """A pause inside one agent reply must not end the reply for the caller (the
    caller hears a reply out after LISTEN_VAD's 400 ms hangover; flite's pause at a
    full stop is 60-120 ms below the VAD's off threshold)."""
    from loadcaller.calls.script import LISTEN_VAD

    for entry in pack_entries():
        if not entry.id.startswith("agent_"):
            continue
        quiet = longest = 0
        for frame in split_frames(load_pack_audio(entry.id, entry.accent)):
            quiet = quiet + 1 if ulaw_frame_dbfs(frame) < LISTEN_VAD.off_dbfs else 0
            longest = max(longest, quiet)
        assert longest * 20 < LISTEN_VAD.hangover_ms / 2, (entry.id, longest * 20)


def test_pack_is_small() -> None:
    total = sum(f.stat().st_size for f in Path(str(PACK)).iterdir())
    assert total < 1_500_000


def test_audio_is_cached_in_memory() -> None:
    assert load_pack_audio("yes", "en-gb") is load_pack_audio("yes", "en-gb")


def test_unknown_phrase_lists_the_known_ids() -> None:
    with pytest.raises(UnknownPhrase) as info:
        load_pack_audio("no_such_phrase")
    assert isinstance(info.value, KeyError) and isinstance(info.value, AudioError)
    assert "hello_order" in str(info.value) and "agent_greeting" in str(info.value)
    with pytest.raises(KeyError, match=r"available: en-us$"):
        load_pack_audio("agent_greeting", "en-gb")


def test_find_by_text_prefers_the_accent_then_en_us() -> None:
    text = CALLER["thanks_bye"]
    assert find_by_text(text, "en-029") == load_pack_audio("thanks_bye", "en-029")
    assert find_by_text(text, "en-us-nyc+f2") == load_pack_audio("thanks_bye", "en-us-nyc")
    assert find_by_text(text, "fr") == load_pack_audio("thanks_bye", "en-us")
    assert find_by_text(text, None) == load_pack_audio("thanks_bye", "en-us")
    assert find_by_text(AGENT["agent_transfer"], "en-gb") == load_pack_audio("agent_transfer")
    assert find_by_text("Not in the pack.", "en-us") is None
    assert find_by_text(text.lower(), "en-us") is None  # exact text only


def test_pack_matches_a_fresh_render(espeak: str) -> None:
    require_binary("flite", "flite")
    index = json.loads(PACK.joinpath("index.json").read_text())
    if index["espeak"] != espeak_version():
        pytest.skip(f"pack rendered with espeak-ng {index['espeak']}")
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from render_pack import flite_version
    finally:
        sys.path.remove(str(REPO / "scripts"))
    if index["flite"] != flite_version():
        pytest.skip(f"pack rendered with {index['flite']}")
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "render_pack.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
