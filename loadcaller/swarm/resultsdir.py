"""A run's results directory: never someone else's results, silently overwritten.

A directory that already holds files is refused (exit 2) unless the user says
``--overwrite``; then the files a run writes there (:data:`RUN_FILES`) are
removed first, so nothing of the old run mixes with the new one (the demo's
agent appends to its ground truth file). Other files are left alone: with
``--results-dir .`` a user's own files must survive.

A directory is claimed once per process: the demo claims it before its agent
starts writing there, and the swarm run it then starts finds it claimed (it
must not refuse, or remove, the agent's file).
"""

from __future__ import annotations

from pathlib import Path

from loadcaller.errors import LocalError

_claimed: set[Path] = set()

RUN_FILES = ("calls.jsonl", "turns.jsonl", "summary.json", "summary.tmp",
             "agent_turns.jsonl", "demo.json", "profile.yaml", "report.html")


def claim_results_dir(path: Path, *, overwrite: bool) -> None:
    """Make sure ``path`` may take this run's results; :class:`LocalError` if not."""
    key = path.resolve()
    if key in _claimed:
        return
    if path.exists() and not path.is_dir():
        raise LocalError(f"results directory {path} exists and is not a directory")
    if not path.is_dir() or not any(path.iterdir()):
        _claimed.add(key)
        return
    if not overwrite:
        raise LocalError(f"results directory {path} is not empty (a previous run's?); "
                         "choose another --results-dir, or pass --overwrite to replace "
                         "its results")
    for name in RUN_FILES:
        (path / name).unlink(missing_ok=True)
    _claimed.add(key)
