"""The results directory: turns.jsonl, calls.jsonl, summary.json.

A contract other tools read. Lines are written and flushed as each call ends,
so a run that is killed keeps everything measured before. Instants are seconds
on ``time.monotonic()``'s clock; latencies are milliseconds.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection
from pathlib import Path
from typing import Any

from loadcaller.calls import measure
from loadcaller.calls.call import CallRecord, turn_latency_ms
from loadcaller.calls.histogram import Histogram
from loadcaller.calls.linefile import LineFile
from loadcaller.calls.media_totals import MediaTotals
from loadcaller.calls.persona_totals import PersonaTotals
from loadcaller.media.outcomes import NOT_FAILED, CallOutcome, TurnOutcome
from loadcaller.timebase import NS_PER_MS, to_monotonic_s


def _ms(ns: int | None) -> float | None:
    return None if ns is None else round(ns / NS_PER_MS, 3)


def turn_line(rec: CallRecord, turn: measure.TurnResult) -> dict[str, Any]:
    onset = turn.t_reply_onset_ns
    line = {
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
    if turn.generator_saturated:  # measured while the generator itself was behind
        line["generator_saturated"] = True
    if rec.transcripts:
        line["agent_text"] = agent_text(rec, turn)
    line.update(step_fields(turn))
    if rec.persona:
        line["persona"] = rec.persona
    return line


def _s(ns: int | None) -> float | None:
    return None if ns is None else round(to_monotonic_s(ns), 6)


def step_fields(turn: measure.TurnResult) -> dict[str, Any]:
    """turns.jsonl's fields for barge-ins, silences and expect: checks."""
    out: dict[str, Any] = {"step": turn.step}
    if turn.step == "barge_in":
        out.update(bargein=turn.bargein, bargein_reaction_ms=_ms(turn.bargein_reaction_ns),
                   t_bargein=_s(turn.t_bargein_ns), t_agent_stop=_s(turn.t_agent_stop_ns))
    elif turn.step == "silence":
        out.update(reprompt_ms=_ms(turn.reprompt_ns), t_reprompt=_s(turn.t_reprompt_ns))
    if turn.expect_ok is not None or turn.expect_reason is not None:
        out.update(heard_text=turn.heard_text, expect_ok=turn.expect_ok,
                   expect_reason=turn.expect_reason)
    if turn.t_cut_in_ns is not None:  # the agent replied in the caller's mid-utterance pause
        out.update(agent_cut_in=True, cut_in_ms=_ms(turn.cut_in_ns),
                   t_cut_in=_s(turn.t_cut_in_ns))
    return out


def agent_text(rec: CallRecord, turn: measure.TurnResult) -> str | None:
    """What the agent said in ``turn`` by its own account (text that arrived between the
    end of the caller's speech and the end of the caller's next), when it sends any."""
    following = [t.t_speech_end_ns for t in rec.turns if t.index == turn.index + 1]
    end = following[0] if following else None
    parts = [text.strip() for at, text in rec.transcripts or ()
             if at >= turn.t_speech_end_ns and (end is None or at < end)]
    return " ".join(p for p in parts if p) or None


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
    if rec.persona:
        line["persona"] = rec.persona
    return line


MAX_REASONS = 1_000
"""Distinct failure reasons counted; a new one past these is pooled (:func:`count_reason`)."""
OTHER_REASONS = f"(other reasons: more than {MAX_REASONS:,} distinct ones)"


def reason_key(known: Collection[str], outcome: str, reason: str) -> str:
    """A failed call's ``outcome: reason``, or ``outcome: (other reasons...)`` when it is
    new and ``known`` holds :data:`MAX_REASONS` already: an agent that puts a call id in
    each close reason must not grow a soak run's memory by a line per failed call."""
    key = f"{outcome}: {reason}"
    if key not in known and len(known) >= MAX_REASONS:
        return f"{outcome}: {OTHER_REASONS}"
    return key


def count_reason(reasons: Counter[str], outcome: str, reason: str) -> None:
    """Count one failed call's reason (:func:`reason_key`)."""
    reasons[reason_key(reasons, outcome, reason)] += 1


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
        # (when its faults were known, faults, outcome, latency) of every turn, for
        # phases(); kept only when the run has chaos, so a long run without it holds no
        # per-turn state
        self._timeline: list[tuple[int, tuple[str, ...], str, int | None]] | None = (
            [] if phases else None)
        self.calls_started = 0
        self.calls_connected = 0  # calls that were set up (the agent answered)
        self.call_outcomes: Counter[str] = Counter()
        self.turn_outcomes: Counter[str] = Counter()
        self.turn_latency = Histogram()
        self.turn_latency_unsaturated = Histogram()  # without generator_saturated turns
        self.turns_generator_saturated = 0
        self.greeting = Histogram()
        self.setup = Histogram()
        self.bargein_reaction = Histogram()
        self.bargein_outcomes: Counter[str] = Counter()
        self.reprompt = Histogram()
        self.silences: Counter[str] = Counter()  # silence steps: reprompted, no_reprompt
        self.expect: Counter[str] = Counter()  # passed, failed, unchecked
        self.reasons: Counter[str] = Counter()
        self.personas = PersonaTotals()
        self.media = MediaTotals()
        self._turns_f: LineFile | None = None
        self._calls_f: LineFile | None = None
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            self._turns_f = LineFile(directory / "turns.jsonl")
            self._calls_f = LineFile(directory / "calls.jsonl")

    @property
    def calls_finished(self) -> int:
        return sum(self.call_outcomes.values())

    def record_call(self, rec: CallRecord) -> None:
        """Count one finished call and write its lines (flushed)."""
        self.call_outcomes[rec.outcome] += 1
        if rec.outcome not in NOT_FAILED:
            count_reason(self.reasons, rec.outcome, rec.reason)
        if rec.setup_ns is not None:
            self.calls_connected += 1
            self.setup.record_ns(rec.setup_ns)
        if rec.greeting_ns is not None:
            self.greeting.record_ns(rec.greeting_ns)
        if rec.media is not None:
            self.media.add(rec.media)
        self.personas.add(rec)
        for turn in rec.turns:
            if turn.step == "silence":  # dead air, not a turn: summary.json's dead_air
                self.silences[turn.outcome] += 1
                if turn.reprompt_ns is not None:
                    self.reprompt.record_ns(turn.reprompt_ns)
                continue
            self.turn_outcomes[turn.outcome] += 1
            if turn.latency_ns is not None:
                self.turn_latency.record_ns(turn.latency_ns)
                if not turn.generator_saturated:
                    self.turn_latency_unsaturated.record_ns(turn.latency_ns)
            self.turns_generator_saturated += turn.generator_saturated
            self._record_step(turn)
            if self._timeline is not None:
                when = turn.t_faults_ns or turn.t_speech_end_ns  # see TurnResult
                self._timeline.append((when, tuple(turn.faults), turn.outcome, turn.latency_ns))
        turns_f, calls_f = self._turns_f, self._calls_f
        if turns_f is not None and calls_f is not None:
            # a record's lines go in whole or not at all: its turns without its call
            # line would be turns of a call calls.jsonl does not have
            before = turns_f.end
            turns_f.write("".join(json.dumps(turn_line(rec, turn)) + "\n"
                                  for turn in rec.turns).encode())
            try:
                calls_f.write((json.dumps(call_line(rec)) + "\n").encode())
            except OSError:
                turns_f.cut(before)
                raise

    def _record_step(self, turn: measure.TurnResult) -> None:
        if turn.bargein is not None:
            self.bargein_outcomes[turn.bargein] += 1
            if turn.bargein_reaction_ns is not None:
                self.bargein_reaction.record_ns(max(0, turn.bargein_reaction_ns))
        if turn.expect_ok is not None:
            self.expect["passed" if turn.expect_ok else "failed"] += 1
        elif turn.expect_reason is not None:
            self.expect["unchecked"] += 1

    def behaviour_summary(self) -> dict[str, Any]:
        """summary.json's barge-in, dead-air and expect: sections."""
        return {
            "bargein": {"count": sum(self.bargein_outcomes.values()),
                        "outcomes": dict(self.bargein_outcomes),
                        "reaction_ms": self.bargein_reaction.summary_ms()},
            "dead_air": {"silences": sum(self.silences.values()),
                         "reprompted": self.silences.get(TurnOutcome.REPROMPTED, 0),
                         "reprompt_ms": self.reprompt.summary_ms()},
            "expect": {"checked": self.expect["passed"] + self.expect["failed"],
                       "passed": self.expect["passed"], "failed": self.expect["failed"],
                       "unchecked": self.expect["unchecked"]},
        }

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
                # the same with the turns measured while the generator was saturated left out
                "latency_ms_unsaturated": self.turn_latency_unsaturated.summary_ms(),
                "generator_saturated": self.turns_generator_saturated,
                "outcomes": dict(self.turn_outcomes),
            },
            **self.behaviour_summary(),
            **({"personas": self.personas.summary()} if self.personas.by_name else {}),
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
        try:
            tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
            tmp.replace(path)
        except OSError:
            tmp.unlink(missing_ok=True)  # no half summary left behind
            raise

    def close(self) -> None:
        for f in (self._turns_f, self._calls_f):
            if f is not None:
                f.close()
        self._turns_f = self._calls_f = None
