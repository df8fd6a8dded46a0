"""A run's media quality from the calls' RTP figures: loss, jitter, MOS.

Each call of a packet transport (SIP/RTP) reports its own figures in calls.jsonl
(``media``); this sums them for summary.json and the console. MOS and jitter are
kept as counts per 0.01 MOS and per 0.1 ms, so the state stays small however
long the run, and their percentiles are exact to that grain.
"""

from __future__ import annotations

from collections import Counter
from typing import Any


def _percentile(counts: Counter[float], q: float) -> float | None:
    total = sum(counts.values())
    if not total:
        return None
    rank, seen = q / 100.0 * (total - 1), 0
    for value in sorted(counts):
        seen += counts[value]
        if seen > rank:
            return value
    return max(counts)


class MediaTotals:
    """Sums of per-call media figures (see the module docstring)."""

    def __init__(self) -> None:
        self.calls = 0
        self.sent = 0
        self.received = 0
        self.expected = 0
        self.lost = 0
        self.mos: Counter[float] = Counter()
        self.jitter: Counter[float] = Counter()

    def add(self, media: dict[str, Any]) -> None:
        self.calls += 1
        self.sent += int(media.get("packets_sent") or 0)
        self.received += int(media.get("packets_received") or 0)
        self.expected += int(media.get("packets_expected") or 0)
        self.lost += int(media.get("lost") or 0) + int(media.get("late") or 0)
        if isinstance(media.get("mos"), (int, float)) and media.get("packets_received"):
            self.mos[round(float(media["mos"]), 2)] += 1
        if isinstance(media.get("jitter_ms"), (int, float)):
            self.jitter[round(min(float(media["jitter_ms"]), 10_000.0), 1)] += 1

    def summary(self) -> dict[str, Any] | None:
        """summary.json's ``media``; None when no call carried media figures."""
        if not self.calls:
            return None
        return {
            "calls": self.calls,
            "packets_sent": self.sent,
            "packets_received": self.received,
            "loss_ratio": round(self.lost / self.expected, 4) if self.expected else None,
            "jitter_ms": {"p50": _percentile(self.jitter, 50),
                          "p95": _percentile(self.jitter, 95)},
            "mos": {"p50": _percentile(self.mos, 50), "p5": _percentile(self.mos, 5),
                    "min": min(self.mos) if self.mos else None},
        }
