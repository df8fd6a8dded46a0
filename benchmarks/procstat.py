"""CPU time of any process, from /proc (Linux): shared by the benchmark scripts."""

from __future__ import annotations

import os
from pathlib import Path

NAN = float("nan")


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process, all its threads; NaNs when unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return NAN, NAN
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process; NaN when it cannot be read."""
    return sum(cpu_times(pid))


def descendants(pid: int) -> list[int]:
    """``pid`` and every live process below it (forked workers included)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def tree_cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of ``pid`` and its live descendants, summed. Compare two
    readings only while the tree is stable: a child that exits takes its time with it."""
    user = system = 0.0
    for p in descendants(pid):
        u, s = cpu_times(p)
        if u == u:  # not NaN: the process is still there
            user, system = user + u, system + s
    return user, system
