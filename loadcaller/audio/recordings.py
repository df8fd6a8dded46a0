"""Recorded caller utterances: a directory of WAV files and a ``manifest.csv``.

``manifest.csv`` has a header row ``file,text`` and one row per recording: the
WAV file's name (relative to the directory) and what is said in it. A profile
names the directory (``recordings: DIR``) and plays a recording with
``say: {recording: FILE}`` (the file name, or its name without ``.wav``). The
text is the utterance's key in the results and what a transcript is checked
against. docs/personas.md says how to record them.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["MANIFEST", "Recording", "read_manifest"]

MANIFEST: Final = "manifest.csv"
_MAX_BYTES: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Recording:
    """One recorded utterance: its WAV file and what it says."""

    path: Path
    text: str


def read_manifest(directory: Path) -> dict[str, Recording]:
    """Recordings by file name and by stem; ValueError naming file:line if the manifest is bad."""
    path = directory / MANIFEST
    try:
        raw = path.read_bytes()[: _MAX_BYTES + 1]
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the recordings manifest: "
                         f"{exc.strerror or exc}") from None
    if len(raw) > _MAX_BYTES:
        raise ValueError(f"{path}:1: the manifest is over 1 MiB")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: not UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    out: dict[str, Recording] = {}
    try:
        rows = [(reader.line_num, r) for r in reader if any(c.strip() for c in r)]
    except csv.Error as exc:
        raise ValueError(f"{path}:{reader.line_num}: {exc}") from None
    if not rows or [c.strip() for c in rows[0][1]] != ["file", "text"]:
        raise ValueError(f"{path}:1: the manifest's header row is: file,text")
    for line, cells in rows[1:]:
        if len(cells) != 2 or not cells[0].strip():
            raise ValueError(f"{path}:{line}: a row is: FILE.wav,what is said")
        name = cells[0].strip()
        wav = (directory / name).resolve()
        if directory.resolve() not in wav.parents:
            raise ValueError(f"{path}:{line}: {name!r} is outside the recordings directory")
        if not wav.is_file():
            raise ValueError(f"{path}:{line}: {name}: no such file")
        rec = Recording(wav, cells[1].strip())
        out[name] = rec
        out.setdefault(Path(name).stem, rec)
    return out
