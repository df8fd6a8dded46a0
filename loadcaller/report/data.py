"""What the report needs from a results directory, read in bounded memory.

turns.jsonl and calls.jsonl are streamed line by line, never loaded whole: a
soak run's files can be gigabytes. Per turn the report keeps four numbers
(instant, latency, turn index, fault set) for at most :data:`MAX_KEPT` turns,
a uniform sample (reservoir, seeded: the same files give the same report)
beyond that; counts and outcomes are exact. The slowest calls (by their
slowest turn) are found in one pass, the failed ones in another, and only
their own turns are read back in full for their timelines.

A line that is not a JSON object with the fields the report uses is counted
(``bad_lines``) and skipped: one torn line at the end of a killed run must not
cost the report.
"""

from __future__ import annotations

import heapq
import json
import math
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadcaller.calls.results import count_reason
from loadcaller.media.outcomes import NOT_FAILED

MAX_KEPT = 100_000  # turns (and calls' setup/greeting values) kept for the plots
TOP_CALLS = 10  # slowest and failed calls shown with their timelines


@dataclass
class Sample:
    """A uniform reservoir of at most ``cap`` items, seeded for repeatability."""

    cap: int = MAX_KEPT
    seen: int = 0
    items: list[Any] = field(default_factory=list)
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    def add(self, item: Any) -> None:
        self.seen += 1
        if len(self.items) < self.cap:
            self.items.append(item)
            return
        j = self.rng.randrange(self.seen)
        if j < self.cap:
            self.items[j] = item

    @property
    def sampled(self) -> bool:
        return self.seen > len(self.items)


@dataclass(frozen=True, slots=True)
class Turn:
    """One turn as the report uses it (instants in monotonic seconds)."""

    t: float  # end of the caller's speech
    latency_ms: float | None
    turn: int
    outcome: str
    faults: tuple[str, ...]
    t_reply_onset: float | None = None
    t_speech_start: float | None = None  # newer results only: start of the utterance
    t_reply_end: float | None = None  # newer results only: end of the agent's reply


@dataclass
class RunData:
    """Everything the report draws (see the module docstring for the bounds)."""

    directory: Path
    summary: dict[str, Any]
    summary_error: str | None = None
    profile_text: str | None = None
    turns: Sample = field(default_factory=Sample)
    turn_outcomes: Counter[str] = field(default_factory=Counter)
    call_outcomes: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    setup_ms: Sample = field(default_factory=Sample)
    greeting_ms: Sample = field(default_factory=Sample)
    latencies_seen: int = 0  # turns with a latency (the sample keeps some of them)
    calls_seen: int = 0
    failed_seen: int = 0
    bad_lines: Counter[str] = field(default_factory=Counter)  # file name -> lines skipped
    missing: list[str] = field(default_factory=list)  # files that are not there
    slow: list[dict[str, Any]] = field(default_factory=list)  # call lines, slowest first
    failed: list[dict[str, Any]] = field(default_factory=list)
    call_turns: dict[str, list[Turn]] = field(default_factory=dict)
    t_origin: float | None = None  # the first call's start (or first turn): time 0

    @property
    def summary_lost(self) -> str | None:
        """Why summary.json cannot be trusted (missing or unreadable), or None when it can.

        A run killed before its end (SIGKILL, OOM, a lost host) writes no summary.json:
        the run was never judged, and its figures exist only in the JSONL files.
        """
        if self.summary_error:
            return f"summary.json could not be read ({self.summary_error})"
        if "summary.json" in self.missing:
            return "no summary.json"
        return None


def _num(v: Any) -> float | None:
    """A finite number or None (JSON's null, a string, NaN from a broken writer)."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def _lines(path: Path, bad: Counter[str]) -> Iterator[dict[str, Any]]:
    """JSON objects from ``path``, one per line; anything else is counted in ``bad``."""
    with path.open("rb") as f:
        for raw in f:
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                bad[path.name] += 1
                continue
            if isinstance(obj, dict):
                yield obj
            else:
                bad[path.name] += 1


def parse_turn(obj: dict[str, Any]) -> Turn | None:
    """A :class:`Turn` from a turns.jsonl object, or None when it lacks what we need."""
    t = _num(obj.get("t_speech_end"))
    idx = obj.get("turn")
    faults = obj.get("faults", [])
    if t is None or not isinstance(idx, int) or isinstance(idx, bool) or not isinstance(
            faults, list):
        return None
    return Turn(t=t, latency_ms=_num(obj.get("latency_ms")), turn=idx,
                outcome=str(obj.get("outcome", "?"))[:60],
                faults=tuple(sorted(str(f)[:80] for f in faults)),
                t_reply_onset=_num(obj.get("t_reply_onset")),
                t_speech_start=_num(obj.get("t_speech_start")),
                t_reply_end=_num(obj.get("t_reply_end")))


def _read_json(path: Path) -> tuple[dict[str, Any], str | None]:
    if not path.exists():
        return {}, None
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return {}, f"{path.name}: {exc}"
    if not isinstance(obj, dict):
        return {}, f"{path.name}: not a JSON object"
    return obj, None


def load(directory: Path, *, max_kept: int = MAX_KEPT, top: int = TOP_CALLS) -> RunData:
    """Read a results directory into a :class:`RunData` (three streamed passes)."""
    summary, error = _read_json(directory / "summary.json")
    data = RunData(directory, summary, error, turns=Sample(max_kept),
                   setup_ms=Sample(max_kept), greeting_ms=Sample(max_kept))
    if not (directory / "summary.json").exists():
        data.missing.append("summary.json")
    profile = directory / "profile.yaml"
    if profile.exists():
        data.profile_text = profile.read_text(encoding="utf-8", errors="replace")[:200_000]
    turns_path, calls_path = directory / "turns.jsonl", directory / "calls.jsonl"
    slowest = _pass_turns(data, turns_path, top) if turns_path.exists() else {}
    if not turns_path.exists():
        data.missing.append("turns.jsonl")
    if calls_path.exists():
        _pass_calls(data, calls_path, slowest, top)
    else:
        data.missing.append("calls.jsonl")
    wanted = {c["call_id"] for c in data.slow + data.failed}
    if wanted and turns_path.exists():
        for obj in _lines(turns_path, Counter()):  # counted once already
            cid = obj.get("call_id")
            if isinstance(cid, str) and cid in wanted and (turn := parse_turn(obj)):
                data.call_turns.setdefault(cid, []).append(turn)
    if data.t_origin is None and data.turns.items:
        data.t_origin = min(t.t for t in data.turns.items)
    return data


def _pass_turns(data: RunData, path: Path, top: int) -> dict[str, float]:
    """Sample the turns, count outcomes; the ``top`` slowest calls by slowest turn."""
    heap: list[tuple[float, str]] = []  # min-heap of (slowest turn, call id)
    current: str | None = None
    worst = -1.0

    def push(cid: str | None, value: float) -> None:
        if cid is None or value < 0:
            return
        if len(heap) < top * 2:  # a call's turns may be split: room for duplicates
            heapq.heappush(heap, (value, cid))
        elif value > heap[0][0]:
            heapq.heapreplace(heap, (value, cid))

    for obj in _lines(path, data.bad_lines):
        if isinstance(obj, dict) and obj.get("step") == "silence":  # dead air, not a turn
            continue
        turn = parse_turn(obj)
        cid = obj.get("call_id")
        if turn is None or not isinstance(cid, str):
            data.bad_lines[path.name] += 1
            continue
        data.turns.add(turn)
        data.turn_outcomes[turn.outcome] += 1
        if cid != current:  # a call's turns are written together, in one block
            push(current, worst)
            current, worst = cid, -1.0
        if turn.latency_ms is not None:
            data.latencies_seen += 1
            worst = max(worst, turn.latency_ms)
    push(current, worst)
    best: dict[str, float] = {}
    for value, cid in heap:
        best[cid] = max(value, best.get(cid, -1.0))
    return dict(sorted(best.items(), key=lambda kv: -kv[1])[:top])


def _pass_calls(data: RunData, path: Path, slowest: dict[str, float], top: int) -> None:
    """Count calls and outcomes, sample setup/greeting, keep the calls to show."""
    slow: dict[str, dict[str, Any]] = {}
    for obj in _lines(path, data.bad_lines):
        cid, outcome = obj.get("call_id"), obj.get("outcome")
        t_start = _num(obj.get("t_start"))
        if not isinstance(cid, str) or not isinstance(outcome, str) or t_start is None:
            data.bad_lines[path.name] += 1
            continue
        data.calls_seen += 1
        data.call_outcomes[outcome[:60]] += 1
        data.t_origin = t_start if data.t_origin is None else min(data.t_origin, t_start)
        for key, sample in (("setup_ms", data.setup_ms), ("greeting_ms", data.greeting_ms)):
            v = _num(obj.get(key))
            if v is not None:
                sample.add(v)
        if outcome not in NOT_FAILED:
            data.failed_seen += 1
            count_reason(data.reasons, outcome[:60], str(obj.get("reason", ""))[:240])
            if len(data.failed) < top:
                data.failed.append(obj)
        if cid in slowest:
            obj["slowest_turn_ms"] = slowest[cid]
            slow[cid] = obj
    data.slow = sorted(slow.values(), key=lambda c: -c["slowest_turn_ms"])
