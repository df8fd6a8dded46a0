"""The bundled pack of pre-rendered utterances (loadcaller/audio/pack/).

So that demos and tests run where espeak-ng is not installed, a few caller
phrases (in six English accents) and the reference agent's phrases ship as raw
8 kHz mu-law files, trimmed by the VAD. ``scripts/render_pack.py`` renders them
and writes ``index.json``::

    {"format": "mulaw/8000/1", "espeak": "1.51",
     "phrases": {"hello_order": {"text": "...", "role": "caller",
                 "accents": {"en-us": {"voice": {"name": "en-us", "rate": 165, "pitch": 50},
                                       "file": "hello_order.en-us.ulaw", "frames": 88}}}}}

Run ``python -m loadcaller.audio.pack`` to list the phrases.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from loadcaller.audio.errors import UnknownPhrase

__all__ = ["PackEntry", "UnknownPhrase", "find_by_text", "load_pack_audio", "pack_entries"]

DEFAULT_ACCENT = "en-us"


@dataclass(frozen=True)
class PackEntry:
    """One rendered phrase: its id, text, accent (espeak-ng voice) and length in 20 ms frames."""

    id: str
    text: str
    accent: str
    frames: int


def _pack_dir() -> resources.abc.Traversable:
    return resources.files("loadcaller.audio").joinpath("pack")


@functools.cache
def _index() -> dict[str, Any]:
    with _pack_dir().joinpath("index.json").open("r", encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data["phrases"]  # type: ignore[no-any-return]


def pack_entries() -> list[PackEntry]:
    """Every (phrase, accent) in the pack, sorted by id then accent."""
    return [
        PackEntry(id=pid, text=phrase["text"], accent=accent, frames=info["frames"])
        for pid, phrase in sorted(_index().items())
        for accent, info in sorted(phrase["accents"].items())
    ]


@functools.cache
def load_pack_audio(id: str, accent: str = DEFAULT_ACCENT) -> bytes:
    """The mu-law audio of phrase ``id`` in ``accent``.

    Raises UnknownPhrase (a KeyError) listing the known ids, or the accents
    available for that id.
    """
    phrases = _index()
    phrase = phrases.get(id)
    if phrase is None:
        raise UnknownPhrase(f"unknown pack phrase {id!r}; known: {', '.join(sorted(phrases))}")
    info = phrase["accents"].get(accent)
    if info is None:
        raise UnknownPhrase(
            f"pack phrase {id!r} has no accent {accent!r}; "
            f"available: {', '.join(sorted(phrase['accents']))}"
        )
    return _pack_dir().joinpath(info["file"]).read_bytes()


def find_by_text(text: str, accent: str | None) -> bytes | None:
    """Audio of the pack phrase whose text is exactly ``text``, or None.

    The requested accent (an espeak-ng voice name such as "en-gb") is preferred;
    otherwise the default accent, otherwise any, so the audio is always the same
    for the same arguments.
    """
    # "en-us+f3" is accent en-us with a voice variant.
    wanted = accent.split("+", 1)[0] if accent else None
    for pid, phrase in sorted(_index().items()):
        if phrase["text"] != text:
            continue
        accents: dict[str, Any] = phrase["accents"]
        for choice in (wanted, DEFAULT_ACCENT):
            if choice is not None and choice in accents:
                return load_pack_audio(pid, choice)
        return load_pack_audio(pid, min(accents))
    return None


def main() -> None:
    """Print the pack's phrases: id, accents, text."""
    by_id: dict[str, list[PackEntry]] = {}
    for entry in pack_entries():
        by_id.setdefault(entry.id, []).append(entry)
    for pid, entries in by_id.items():
        accents = ",".join(e.accent for e in entries)
        print(f"{pid:<18} {accents:<60} {entries[0].text}")


if __name__ == "__main__":
    main()
