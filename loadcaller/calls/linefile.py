"""An append-only file of whole lines: a write that fails leaves no part of its lines.

calls.jsonl and turns.jsonl are read line by line by other tools while a run goes
on and after it was killed. A disk that fills up (or a file-size limit) used to
cut a line in half: the file then ended in JSON no reader parses. Each write here
is unbuffered bytes, and a failed one is cut off again at the last whole line.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


class LineFile:
    """Whole lines appended to ``path`` (created or emptied)."""

    def __init__(self, path: Path) -> None:
        self._f = path.open("wb", buffering=0)
        self.end = 0  # bytes of whole lines written

    def write(self, data: bytes) -> None:
        """Append ``data`` (whole lines) or, raising the OSError, nothing of it."""
        view = memoryview(data)
        done = 0
        try:
            while done < len(data):
                done += self._f.write(view[done:]) or 0
        except OSError:
            self.cut(self.end)
            raise
        self.end += len(data)

    def cut(self, end: int) -> None:
        """Drop everything after byte ``end`` (best effort: the disk may refuse)."""
        with contextlib.suppress(OSError):
            os.ftruncate(self._f.fileno(), end)
            self._f.seek(end)
            self.end = end

    def close(self) -> None:
        self._f.close()
