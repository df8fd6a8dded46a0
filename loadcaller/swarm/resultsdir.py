"""A run's results directory: never someone else's results, silently overwritten.

A directory that already holds files is refused (exit 2) unless the user says
``--overwrite``; then the files a run writes there (:data:`RUN_FILES`) are
removed first, so nothing of the old run mixes with the new one (the demo's
agent appends to its ground truth file). Other files are left alone: with
``--results-dir .`` a user's own files must survive.

Nor may a run's file land on one of the run's inputs: with ``--results-dir .
--overwrite`` in the profile's own directory, the results copy ``profile.yaml``
would replace the user's profile (comments gone, secrets redacted). A results
directory where any of :data:`RUN_FILES` is the same file as an input (symlinks
and hard links followed) is refused, before anything is removed.

Claiming creates the directory and writes (then removes) a file there: a
directory that cannot take the results (under /proc, /sys, a name over 255
bytes) is refused at once, not by the first call's write, with a traceback.

A directory is claimed once per process: the demo claims it before its agent
starts writing there, and the swarm run it then starts finds it claimed (it
must not refuse, or remove, the agent's file).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from loadcaller.errors import LocalError

_claimed: set[Path] = set()

RUN_FILES = ("calls.jsonl", "turns.jsonl", "summary.json", "summary.tmp",
             "agent_turns.jsonl", "demo.json", "profile.yaml", "report.html")


def claim_results_dir(path: Path, *, overwrite: bool, inputs: Iterable[Path] = ()) -> None:
    """Make sure ``path`` may take this run's results; :class:`LocalError` if not.

    ``inputs`` are the files the run reads (its profile first): none may be one of
    the files the run writes there.
    """
    try:
        key = path.resolve()
        if key in _claimed:
            return
        _check_inputs(path, inputs)
        if path.exists() and not path.is_dir():
            raise LocalError(f"results directory {path} exists and is not a directory")
        if path.is_dir() and any(path.iterdir()):
            if not overwrite:
                raise LocalError(f"results directory {path} is not empty (a previous run's?); "
                                 "choose another --results-dir, or pass --overwrite to "
                                 "replace its results")
            for name in RUN_FILES:
                (path / name).unlink(missing_ok=True)
        path.mkdir(parents=True, exist_ok=True)
        with (path / "summary.tmp").open("w", encoding="utf-8"):  # a run file: ours to remove
            pass
        (path / "summary.tmp").unlink()
    except OSError as exc:  # e.g. under /proc or /sys, or a name over 255 bytes
        raise LocalError(f"results directory {path}: cannot write there "
                         f"({exc.strerror or exc})") from None
    _claimed.add(key)


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except (OSError, ValueError):  # absent, unreadable, or a NUL in the name
        return None
    return st.st_dev, st.st_ino


def _check_inputs(path: Path, inputs: Iterable[Path]) -> None:
    """:class:`LocalError` when a file of :data:`RUN_FILES` in ``path`` is one of ``inputs``."""
    ids = {fid: p for p in inputs if (fid := _file_id(p)) is not None}
    for name in RUN_FILES:
        hit = ids.get(_file_id(path / name) or (-1, -1))
        if hit is not None:
            raise LocalError(f"results directory {path}: the run writes {name} there, which "
                             f"is {hit}, one of the run's inputs; choose another --results-dir")
