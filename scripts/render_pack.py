"""Render the bundled utterance pack (loadcaller/audio/pack/) with espeak-ng and flite.

Re-run after changing a phrase, a voice, or the audio pipeline (resampler, VAD
trimming), from the repository root::

    python scripts/render_pack.py            # rewrite loadcaller/audio/pack/
    python scripts/render_pack.py --check    # exit 1 if the pack is out of date

Needs espeak-ng and flite (``apt-get install espeak-ng flite``). The output is
reproducible for given espeak-ng and flite versions (recorded in index.json):
both synthesisers are deterministic (two renders are byte-identical) and the
rest of the pipeline is numpy arithmetic. Files no longer listed are deleted.

Why the agent speaks with flite: ``expect:`` checks the agent's replies with
pocketsphinx (loadcaller/calls/asr.py), whose US English model mishears
espeak-ng's formant voices (the agent's former ``en-us+f3`` passed 0 of 5 of
its replies' natural expects, 3 of 5 slowed to 0.75) and hears flite's
diphone voice ``rms`` almost verbatim (5 of 5: "sure what is your order
number"). Voice agents speak with natural TTS; espeak-ng was the outlier. The
callers keep espeak-ng: its accents are what personas vary.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from loadcaller.audio.frames import FRAME_BYTES
from loadcaller.audio.synth import Voice, espeak_available, espeak_version, render_espeak
from loadcaller.audio.vad import trim_silence
from loadcaller.audio.wav import read_wav_bytes, to_ulaw_8k

PACK_DIR = Path(__file__).resolve().parent.parent / "loadcaller" / "audio" / "pack"

# Accent -> voice. Rates and pitches differ a little so a swarm does not sound cloned.
CALLER_VOICES: dict[str, Voice] = {
    "en-us": Voice("en-us", rate=165, pitch=50),
    "en-gb": Voice("en-gb", rate=160, pitch=45),
    "en-gb-scotland": Voice("en-gb-scotland", rate=155, pitch=40),
    "en-029": Voice("en-029", rate=170, pitch=55),
    "en-gb-x-rp": Voice("en-gb-x-rp", rate=150, pitch=58),
    "en-us-nyc": Voice("en-us-nyc", rate=178, pitch=47),
}


@dataclass(frozen=True)
class FliteVoice:
    """A flite voice (``flite -lv`` lists them: rms, slt, awb, kal16, ...)."""

    name: str


# The agent speaks with another synthesiser than the callers, so a listener (and a
# recording) can tell the two sides apart, and speech recognition hears it well.
AGENT_ACCENT = "en-us"
AGENT_VOICE = FliteVoice("rms")  # US English, male
_FLITE_TIMEOUT_S = 60.0

CALLER_PHRASES: dict[str, str] = {
    "hello_order": "Hi, I'm calling about my order.",
    "order_number": "The order number is four five seven two.",
    "delivery_when": "When will it be delivered?",
    "change_address": "Can I change the delivery address?",
    "thanks_bye": "Great, thank you. Goodbye.",
    "human_please": "Can I speak to a human please?",
    "yes": "Yes.",
    "no": "No, that's not right.",
}
AGENT_PHRASES: dict[str, str] = {
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


def render() -> tuple[dict[str, object], dict[str, bytes]]:
    """Render every phrase; return (index.json content, file name -> audio)."""
    files: dict[str, bytes] = {}
    phrases: dict[str, object] = {}
    jobs: list[tuple[str, str, str, dict[str, Voice | FliteVoice]]] = [
        (pid, text, "caller", dict(CALLER_VOICES)) for pid, text in CALLER_PHRASES.items()]
    agent_voices: dict[str, Voice | FliteVoice] = {AGENT_ACCENT: AGENT_VOICE}
    jobs += [(pid, text, "agent", agent_voices) for pid, text in AGENT_PHRASES.items()]
    for pid, text, role, voices in jobs:
        accents: dict[str, object] = {}
        for accent, voice in voices.items():
            audio = render_espeak(text, voice) if isinstance(voice, Voice) else render_flite(
                text, voice)
            name = f"{pid}.{accent}.ulaw"
            files[name] = audio
            accents[accent] = {"voice": _describe(voice), "file": name,
                               "frames": len(audio) // FRAME_BYTES}
        phrases[pid] = {"text": text, "role": role, "accents": accents}
    index: dict[str, object] = {
        "format": "mulaw/8000/1",
        "espeak": espeak_version(),
        "flite": flite_version(),
        "phrases": phrases,
    }
    return index, files


def _describe(voice: Voice | FliteVoice) -> dict[str, object]:
    if isinstance(voice, FliteVoice):
        return {"engine": "flite", "name": voice.name}
    return {"name": voice.name, "rate": voice.rate, "pitch": voice.pitch}


def flite_version() -> str:
    """The installed flite's version (e.g. "flite-2.2-current")."""
    out = subprocess.run(["flite", "--version"], capture_output=True, text=True,
                         timeout=_FLITE_TIMEOUT_S, check=False).stdout
    match = re.search(r"version:\s*(\S+)", out)
    return match.group(1) if match else out.strip()


def render_flite(text: str, voice: FliteVoice) -> bytes:
    """Synthesise ``text`` with flite: trimmed 8 kHz mu-law, as render_espeak does.

    flite writes 16 kHz WAV to a file only (not to stdout), hence the temporary
    directory; the resampling and trimming are espeak-ng's pipeline.
    """
    with tempfile.TemporaryDirectory(prefix="render_pack") as tmp:
        wav = Path(tmp) / "out.wav"
        argv = ["flite", "-voice", voice.name, "-t", text, "-o", str(wav)]
        proc = subprocess.run(argv, capture_output=True, timeout=_FLITE_TIMEOUT_S, check=False)
        if proc.returncode != 0 or not wav.exists():
            err = proc.stderr.decode(errors="replace").strip()
            raise RuntimeError(f"flite failed (voice {voice.name!r}): {err or proc.returncode}")
        samples, rate = read_wav_bytes(wav.read_bytes(), name="flite output")
    audio = trim_silence(to_ulaw_8k(samples, rate))
    if not audio:
        raise RuntimeError(f"flite produced no speech for {text!r}")
    return audio


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("--out", type=Path, default=PACK_DIR, help="pack directory")
    args = parser.parse_args(argv)
    if not espeak_available() or shutil.which("flite") is None:
        print("espeak-ng and flite are needed (apt-get install espeak-ng flite)", file=sys.stderr)
        return 2
    index, files = render()
    index_text = json.dumps(index, indent=1, sort_keys=True) + "\n"
    out: Path = args.out
    if args.check:
        stale = [n for n, data in files.items() if _read(out / n) != data]
        if _read(out / "index.json") != index_text.encode():
            stale.append("index.json")
        for name in stale:
            print(f"out of date: {name}", file=sys.stderr)
        return 1 if stale else 0
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.ulaw"):
        if old.name not in files:
            old.unlink()
    for name, data in files.items():
        (out / name).write_bytes(data)
    (out / "index.json").write_text(index_text, encoding="utf-8")
    total = sum(len(d) for d in files.values())
    print(f"wrote {len(files)} utterances, {total / 1e6:.2f} MB, to {out}")
    return 0


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main())
