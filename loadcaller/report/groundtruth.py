"""Check the callers' measurement against the reference agent's ground truth.

The agent logs, per turn, when it received the caller's last speech frame and
when it sent its first reply frame; the caller measured the same turn from its
side. Matched by callSid and turn index, the two intervals should agree to a
few milliseconds (loopback transit both ways, plus the agent's own scheduling).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    out = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                out.append(json.loads(line))
    return out


def compare(turns_path: Path, truth_path: Path) -> dict[str, Any]:
    """Pair caller turns with agent truth; differences in milliseconds."""
    truth = {}
    for rec in _read_jsonl(truth_path):
        if isinstance(rec.get("turn"), int) and rec.get("latency_ms") is not None:
            truth[(rec["call_sid"], rec["turn"])] = rec
    diffs = []
    for turn in _read_jsonl(turns_path):
        if turn.get("outcome") != "answered" or turn.get("overlap"):
            continue
        gt = truth.get((turn.get("remote_id"), turn.get("turn")))
        if gt is None:
            continue
        diffs.append(turn["latency_ms"] - gt["latency_ms"])
    if not diffs:
        return {"matched": 0}
    absd = sorted(abs(d) for d in diffs)
    return {
        "matched": len(diffs),
        "median_abs_diff_ms": round(statistics.median(absd), 3),
        "p95_abs_diff_ms": round(absd[min(len(absd) - 1, int(0.95 * len(absd)))], 3),
        "max_abs_diff_ms": round(absd[-1], 3),
        "mean_diff_ms": round(statistics.fmean(diffs), 3),
    }
