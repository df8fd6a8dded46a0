"""The results directory: turns.jsonl, calls.jsonl, summary.json.

A contract other tools read. Lines are written and flushed as each call ends,
so a run that is killed keeps everything measured before. Instants are seconds
on ``time.monotonic()``'s clock; latencies are milliseconds.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import IO, Any

from loadcaller.calls import measure
from loadcaller.calls.call import CallRecord, turn_latency_ms
from loadcaller.calls.histogram import Histogram
from loadcaller.calls.media_totals import MediaTotals
from loadcaller.media.outcomes import NOT_FAILED, CallOutcome, TurnOutcome
from loadcaller.timebase import NS_PER_MS, to_monotonic_s


def _ms(ns: int | None) -> float | None:
    return None if ns is None else round(ns / NS_PER_MS, 3)


def turn_line(rec: CallRecord, turn: measure.TurnResult) -> dict[str, Any]:
    onset = turn.t_reply_onset_ns
    return {
        "call_id": rec.call_id,
        "scenario": rec.scenario,
        "transport": rec.transport,
        "turn": turn.index,
        "outcome": turn.outcome,
        "latency_ms": turn_latency_ms(turn),
        "t_speech_end": round(to_monotonic_s(turn.t_speech_end_ns), 6),
        "t_reply_onset": None if onset is None else round(to_monotonic_s(onset), 6),
        "overlap": turn.overlap,
        "remote_id": rec.remote_id,
        "faults": list(turn.faults),
    }


def call_line(rec: CallRecord) -> dict[str, Any]:
    line: dict[str, Any] = {
        "call_id": rec.call_id,
        "transport": rec.transport,
        "scenario": rec.scenario,
        "outcome": rec.outcome,
        "reason": rec.reason,
        "setup_ms": _ms(rec.setup_ns),
        "greeting_ms": _ms(rec.greeting_ns),
        "turns": len(rec.turns),
        "turns_answered": sum(t.outcome == TurnOutcome.ANSWERED for t in rec.turns),
        "remote_id": rec.remote_id,
        "t_start": round(to_monotonic_s(rec.t_start_ns), 6),
        "t_end": round(to_monotonic_s(rec.t_end_ns), 6),
        "duration_ms": _ms(rec.t_end_ns - rec.t_start_ns),
    }
    if rec.media is not None:  # RTP transports: packets, loss, jitter, MOS
        line["media"] = rec.media
    return line


def failure_verdict(summary: dict[str, Any], *, max_failed_ratio: float) -> str | None:
    """Why a run's calls failed it (one line), or None: the run's exit 1.

    A run fails when calls were placed and none connected, or when more than
    ``max_failed_ratio`` of the calls that ended (cancelled ones aside) failed. A
    run that placed no call (duration 0, a web UI never started) does not.
    """
    calls = summary.get("calls") or {}
    finished = int(calls.get("finished", 0))
    if finished == 0:
        return None
    outcomes: dict[str, int] = calls.get("outcomes") or {}
    reasons: dict[str, int] = calls.get("top_failure_reasons") or {}
    top = next(iter(reasons.items()), None)  # most common first
    why = f"{top[1]} {top[0]}" if top else ", ".join(f"{n} {o}" for o, n in outcomes.items())
    if int(calls.get("connected", 0)) == 0:
        return f"no call connected: {why}"
    failed = int(calls.get("failed", 0))
    ended = finished - int(calls.get("cancelled", 0))
    if ended > 0 and failed / ended > max_failed_ratio:
        return (f"{failed} of {ended} calls failed ({100 * failed / ended:.0f}% > "
                f"--max-failed-ratio {max_failed_ratio:g}); most often: {why}")
    return None


class Results:
    """Aggregates every finished call and writes the results directory."""

    def __init__(self, directory: Path | None, *, phases: bool = False) -> None:
        self.directory = directory
        # (t_speech_end, faults, outcome, latency) of every turn, for phases(); kept only
        # when the run has chaos, so a long run without it holds no per-turn state
        self._timeline: list[tuple[int, tuple[str, ...], str, int | None]] | None = (
            [] if phases else None)
        self.calls_started = 0
        self.calls_connected = 0  # calls that were set up (the agent answered)
        self.call_outcomes: Counter[str] = Counter()
        self.turn_outcomes: Counter[str] = Counter()
        self.turn_latency = Histogram()
        self.greeting = Histogram()
        self.setup = Histogram()
        self.reasons: Counter[str] = Counter()
        self.media = MediaTotals()
        self._turns_f: IO[str] | None = None
        self._calls_f: IO[str] | None = None
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            self._turns_f = (directory / "turns.jsonl").open("w", encoding="utf-8")
            self._calls_f = (directory / "calls.jsonl").open("w", encoding="utf-8")

    @property
    def calls_finished(self) -> int:
        return sum(self.call_outcomes.values())

    def record_call(self, rec: CallRecord) -> None:
        """Count one finished call and write its lines (flushed)."""
        self.call_outcomes[rec.outcome] += 1
        if rec.outcome not in NOT_FAILED:
            self.reasons[f"{rec.outcome}: {rec.reason}"] += 1
        if rec.setup_ns is not None:
            self.calls_connected += 1
            self.setup.record_ns(rec.setup_ns)
        if rec.greeting_ns is not None:
            self.greeting.record_ns(rec.greeting_ns)
        if rec.media is not None:
            self.media.add(rec.media)
        for turn in rec.turns:
            self.turn_outcomes[turn.outcome] += 1
            if turn.latency_ns is not None:
                self.turn_latency.record_ns(turn.latency_ns)
            if self._timeline is not None:
                self._timeline.append(
                    (turn.t_speech_end_ns, tuple(turn.faults), turn.outcome, turn.latency_ns))
        if self._turns_f is not None and self._calls_f is not None:
            for turn in rec.turns:
                self._turns_f.write(json.dumps(turn_line(rec, turn)) + "\n")
            self._turns_f.flush()
            self._calls_f.write(json.dumps(call_line(rec)) + "\n")
            self._calls_f.flush()

    def summary(self, generator: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
        """summary.json's content."""
        outcomes = dict(self.call_outcomes)
        lat = self.turn_latency.summary_ms()
        return {
            "run": run,
            "calls": {
                "started": self.calls_started,
                "finished": self.calls_finished,
                "connected": self.calls_connected,
                "completed": outcomes.get(CallOutcome.COMPLETED, 0),
                "failed": sum(n for o, n in outcomes.items() if o not in NOT_FAILED),
                "cancelled": outcomes.get(CallOutcome.CANCELLED, 0),
                "outcomes": outcomes,
                "top_failure_reasons": dict(self.reasons.most_common(10)),
            },
            "turns": {
                "count": sum(self.turn_outcomes.values()),
                "answered": self.turn_outcomes.get(TurnOutcome.ANSWERED, 0),
                "latency_ms": lat,
                "outcomes": dict(self.turn_outcomes),
            },
            "phases": self.phases(),
            "greeting_latency_ms": self.greeting.summary_ms(),
            "setup_ms": self.setup.summary_ms(),
            "media": self.media.summary(),
            "generator": generator,
        }

    def phases(self) -> list[dict[str, Any]]:
        """Turns grouped into consecutive stretches of time with the same faults active.

        Empty when no fault ever touched a turn. Otherwise e.g. none -> latency ->
        none -> schema_drift -> none: per-turn latency and outcomes before, during
        and after each fault.
        """
        if not self._timeline or not any(faults for _, faults, _, _ in self._timeline):
            return []
        rows = sorted(self._timeline)
        out: list[dict[str, Any]] = []
        hist: Histogram | None = None
        outcomes: Counter[str] = Counter()
        current: tuple[str, ...] | None = None
        start = 0

        def close(end: int) -> None:
            if hist is not None and current is not None:
                out.append({
                    "faults": list(current),
                    "from": round(to_monotonic_s(start), 3),
                    "to": round(to_monotonic_s(end), 3),
                    "turns": sum(outcomes.values()),
                    "outcomes": dict(outcomes),
                    "latency_ms": hist.summary_ms(),
                })

        last = 0
        for t, faults, outcome, lat in rows:
            if faults != current:
                close(last)
                current, start, hist, outcomes = faults, t, Histogram(), Counter()
            assert hist is not None
            outcomes[outcome] += 1
            if lat is not None:
                hist.record_ns(lat)
            last = t
        close(last)
        return out

    def write_summary(self, summary: dict[str, Any]) -> None:
        if self.directory is None:
            return
        path = self.directory / "summary.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)

    def close(self) -> None:
        for f in (self._turns_f, self._calls_f):
            if f is not None:
                f.close()
        self._turns_f = self._calls_f = None
