"""``loadcaller compare RUN_A RUN_B``: did B regress against A?

Both results directories' turns.jsonl are grouped the same ways: all turns,
each scenario's turn index (``SCENARIO turn 2``: the same question asked every
call; named so whether a run drew one scenario or several, or a run that drew
only one would share no per-turn group with the other), and each chaos phase
(the turns a fault was active for; ``none``: no fault). Groups found in only one
run are listed, not compared. A group regressed when the change is both large enough to matter
and unlikely to be noise:

- its p95 rose by more than the effect threshold (``--min-increase-ms``, and
  ``--min-increase-ratio`` of A's p95, whichever is larger) and a bootstrap's
  lower confidence bound of the rise is above zero (the tail moved; only from
  :data:`MIN_TAIL_SAMPLES` latencies a side);
- or its median rose by more than the threshold (of A's median) and the
  Mann-Whitney U test says B's latencies tend to be larger (the body moved);
- or its answered ratio fell by more than ``--max-answered-drop`` and Fisher's
  exact test (one-sided: B answered less) says so, at any number of turns: an
  agent that answered 120 of 120 turns and then 0 of 8 regressed.

Every test is one more chance of a false alarm, so each is held to ``alpha``
(default 0.01: a nightly comparison that cries wolf one night in twenty is soon
ignored) divided by the number of tests made (Bonferroni): the answered test of
each group, and the two latency tests of each group with ``--min-samples``
latencies a side. A group with fewer latencies is reported as too few samples
for its latencies; its answered ratio is still judged.

Exit codes: 0 no regression; 1 a regression, including a B that placed calls and
measured no turn (every call failed: the agent was down); 2 bad input: a missing
directory, no turns.jsonl, an unreadable file, a run with no call at all, or a
baseline A that measured no turn (there is nothing to compare B with).
"""

from __future__ import annotations

import json
import math
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO

import numpy as np

from loadcaller.gates import stats
from loadcaller.gates.evaluate import read_turns as read_jsonl_objects
from loadcaller.gates.parse import NO_FAULT_PHASE
from loadcaller.printable import printable

EXIT_OK: Final = 0
EXIT_REGRESSION: Final = 1
EXIT_BAD_INPUT: Final = 2
MAX_REASON: Final = 200
"""Characters of a failed call's reason quoted when a run measured no turn."""
MAX_TURNS: Final = 1_000_000
"""Turns read from each run (about 300 bytes of memory each); the rest are left out."""
MIN_TAIL_SAMPLES: Final = 100
"""The p95 test needs this many latencies a side (five of them in the tail): a bootstrap
of a p95 from 20 values flagged 2 of 100 identical pairs where alpha allowed 1 in 300."""
LATENCY_TESTS: Final = 2  # p95 (bootstrap), median (Mann-Whitney); the answered test is one more


class CompareInputError(ValueError):
    """A results directory that cannot be compared (missing, no turns.jsonl, no call)."""


class NoTurnsMeasured(Exception):
    """A run that placed calls and measured no turn: each call failed (set-up refused,
    the agent down); a regression when it is B, not bad input."""

    def __init__(self, directory: Path, calls: int, why: str) -> None:
        super().__init__(f"{directory}: placed {calls} calls and measured no turn: {why}")
        self.calls = calls
        self.why = why


@dataclass(frozen=True, slots=True)
class Settings:
    """``compare``'s thresholds; a value that makes no sense is a ValueError naming its
    option (the command's exit 2): an alpha of 0 would never flag, a negative effect
    threshold would flag noise."""

    alpha: float = 0.01
    min_increase_ms: float = 50.0
    min_increase_ratio: float = 0.10
    max_answered_drop: float = 0.02
    min_samples: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        checks = (
            ("--alpha", self.alpha, 0 < self.alpha < 1, "must be above 0 and below 1"),
            ("--min-increase-ms", self.min_increase_ms,
             math.isfinite(self.min_increase_ms) and self.min_increase_ms >= 0,
             "must be 0 or more milliseconds"),
            ("--min-increase-ratio", self.min_increase_ratio,
             math.isfinite(self.min_increase_ratio) and self.min_increase_ratio >= 0,
             "must be 0 or more"),
            ("--max-answered-drop", self.max_answered_drop, 0 <= self.max_answered_drop < 1,
             "must be 0 or more and below 1"),
            ("--min-samples", self.min_samples, self.min_samples >= 1, "must be at least 1"),
        )
        for option, value, ok, why in checks:
            if not ok:
                raise ValueError(f"compare {option} {value:g}: {why}")


@dataclass
class Group:
    """One side's turns of a group: latencies (ms) and answered/total counts."""

    latencies: list[float]
    answered: int = 0
    total: int = 0


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    n_a: int
    n_b: int
    p50_a: float | None
    p50_b: float | None
    p95_a: float | None
    p95_b: float | None
    p_value: float | None  # Mann-Whitney, B greater
    answered_a: float | None
    answered_b: float | None
    verdict: str

    @property
    def regressed(self) -> bool:
        return self.verdict.startswith("REGRESSION")


def _calls_without_turns(directory: Path) -> NoTurnsMeasured:
    """Why a run with no turn measured none, from its calls.jsonl (the most common
    outcome and reason); CompareInputError when it placed no call either."""
    path = directory / "calls.jsonl"
    why: Counter[str] = Counter()
    if path.is_file():
        for rec in read_jsonl_objects(path):
            if isinstance(rec.get("outcome"), str):
                reason = printable(str(rec.get("reason") or "")[:MAX_REASON], one_line=True)
                why[f"{rec['outcome']}: {reason}" if reason else rec["outcome"]] += 1
    calls = why.total()
    if not calls:
        raise CompareInputError(f"{directory}: holds no turns and no calls (a run that "
                                "placed no call)")
    (top, n), = why.most_common(1)
    rest = f" (and {calls - n} calls failing otherwise)" if n < calls else ""
    return NoTurnsMeasured(directory, calls, f"{n} {top}{rest}")


def read_run(directory: Path) -> dict[str, Group]:
    """Group a results directory's turns. Raise NoTurnsMeasured when it has none but
    placed calls, CompareInputError when it is no results directory or placed none."""
    if not directory.is_dir():
        raise CompareInputError(f"{directory}: no such results directory")
    path = directory / "turns.jsonl"
    if not path.is_file():
        raise CompareInputError(f"{directory}: no turns.jsonl (not a loadcaller results "
                                "directory, or a run that measured nothing)")
    groups: dict[str, Group] = defaultdict(lambda: Group([]))
    turns = 0
    rows: list[tuple[str, int, list[str], bool, float | None]] = []
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a run killed mid-write leaves half a line
            if not isinstance(rec, dict) or rec.get("step") == "silence":  # dead air: no turn
                continue
            if turns >= MAX_TURNS:
                print(f"loadcaller compare: {path}: only its first {MAX_TURNS:,} turns are "
                      "compared", file=sys.stderr)
                break
            turns += 1
            raw_lat, raw_faults, raw_turn = (rec.get(k) for k in ("latency_ms", "faults", "turn"))
            lat = (float(raw_lat) if isinstance(raw_lat, int | float)
                   and not isinstance(raw_lat, bool) and raw_lat >= 0 else None)
            # names a profile gave (printed: no terminal command in them)
            faults = ([printable(x, one_line=True) for x in raw_faults]
                      if isinstance(raw_faults, list) else [])
            scenario = printable(rec.get("scenario", "?"), one_line=True)
            turn = raw_turn if isinstance(raw_turn, int) else -1
            rows.append((scenario, turn, faults, rec.get("outcome") == "answered", lat))
    if not turns:
        raise _calls_without_turns(directory)
    any_fault = any(r[2] for r in rows)
    for scenario, turn, faults, answered, lat in rows:
        keys = ["overall", f"{scenario} turn {turn}"]
        if any_fault:
            keys += [f"phase {f}" for f in faults] or [f"phase {NO_FAULT_PHASE}"]
        for key in keys:
            g = groups[key]
            g.total += 1
            g.answered += answered
            if lat is not None:
                g.latencies.append(lat)
    return dict(groups)


def _pct(x: np.ndarray, q: float) -> float | None:
    return float(np.percentile(x, q)) if len(x) else None


def _judge(name: str, a: Group, b: Group, s: Settings, alpha: float,
           rng: np.random.Generator) -> Row:
    xa, xb = np.asarray(a.latencies, dtype=np.float64), np.asarray(b.latencies, dtype=np.float64)
    p50_a, p50_b, p95_a, p95_b = _pct(xa, 50), _pct(xb, 50), _pct(xa, 95), _pct(xb, 95)
    ans_a = a.answered / a.total if a.total else None
    ans_b = b.answered / b.total if b.total else None
    common = dict(name=name, n_a=len(xa), n_b=len(xb), p50_a=p50_a, p50_b=p50_b, p95_a=p95_a,
                  p95_b=p95_b, answered_a=ans_a, answered_b=ans_b)
    reasons: list[str] = []
    if ans_a is not None and ans_b is not None:  # Fisher's test is exact: no minimum
        p_ans = stats.answered_drop(a.answered, a.total, b.answered, b.total)
        if ans_a - ans_b > s.max_answered_drop and p_ans < alpha:
            reasons.append(f"answered {100 * ans_a:.1f}% -> {100 * ans_b:.1f}%")
    if min(len(xa), len(xb)) < s.min_samples:
        verdict = ("REGRESSION: " + "; ".join(reasons) if reasons
                   else f"too few samples (need {s.min_samples} latencies a side)")
        return Row(**common, p_value=None, verdict=verdict)  # type: ignore[arg-type]
    p_value, _ = stats.mann_whitney_greater(xa, xb)
    assert p50_a is not None and p50_b is not None and p95_a is not None and p95_b is not None
    tail = max(s.min_increase_ms, s.min_increase_ratio * p95_a)
    if (min(len(xa), len(xb)) >= MIN_TAIL_SAMPLES and p95_b - p95_a > tail
            and stats.p95_shift_lower_bound(xa, xb, alpha, rng) > 0):
        reasons.append(f"p95 +{p95_b - p95_a:,.0f} ms")
    body = max(s.min_increase_ms, s.min_increase_ratio * p50_a)
    if p50_b - p50_a > body and p_value < alpha:
        reasons.append(f"median +{p50_b - p50_a:,.0f} ms")
    verdict = "REGRESSION: " + "; ".join(reasons) if reasons else "ok"
    return Row(**common, p_value=p_value, verdict=verdict)  # type: ignore[arg-type]


def _order(name: str) -> tuple[int, str, int, str]:
    """overall, then turns (turn 2 before turn 10), then phases."""
    head, _, last = name.rpartition(" ")
    rank = 0 if name == "overall" else 2 if name.startswith("phase ") else 1
    return rank, head, int(last) if last.isdigit() else 0, name


def compare_runs(a: dict[str, Group], b: dict[str, Group], s: Settings) -> list[Row]:
    """One row per group present in both runs, overall first (:func:`unmatched` names
    the others)."""
    names = sorted(set(a) & set(b), key=_order)
    tests = sum((min(a[n].total, b[n].total) > 0)
                + LATENCY_TESTS * (min(len(a[n].latencies), len(b[n].latencies))
                                   >= s.min_samples) for n in names)
    alpha = s.alpha / max(1, tests)
    rng = np.random.default_rng(s.seed)
    return [_judge(n, a[n], b[n], s, alpha, rng) for n in names]


def unmatched(a: dict[str, Group], b: dict[str, Group]) -> tuple[list[str], list[str]]:
    """The groups only A has and those only B has (a scenario, turn or fault one run
    never drew), in table order."""
    return sorted(set(a) - set(b), key=_order), sorted(set(b) - set(a), key=_order)


def _f(v: float | None, spec: str = ",.0f") -> str:
    return "-" if v is None else format(v, spec)


def print_table(rows: list[Row], out: TextIO) -> None:
    w = min(60, max([len("group"), *(len(r.name) for r in rows)])) + 2
    head = (f"  {'group':<{w}}{'n A':>7}{'n B':>7}{'p50 A':>9}{'p50 B':>9}{'p95 A':>9}"
            f"{'p95 B':>9}{'answ A':>8}{'answ B':>8}{'p (MWU)':>10}  verdict")
    print(head, file=out)
    for r in rows:
        ans_a = "-" if r.answered_a is None else f"{100 * r.answered_a:.1f}%"
        ans_b = "-" if r.answered_b is None else f"{100 * r.answered_b:.1f}%"
        print(f"  {r.name[:w - 2]:<{w}}{r.n_a:>7}{r.n_b:>7}{_f(r.p50_a):>9}{_f(r.p50_b):>9}"
              f"{_f(r.p95_a):>9}{_f(r.p95_b):>9}{ans_a:>8}{ans_b:>8}"
              f"{_f(r.p_value, '.2g'):>10}  {r.verdict}", file=out)


def _read_side(directory: Path) -> dict[str, Group] | NoTurnsMeasured:
    try:
        return read_run(directory)
    except NoTurnsMeasured as exc:
        return exc


def run_compare(run_a: Path, run_b: Path, settings: Settings | None = None,
                out: TextIO | None = None, err: TextIO | None = None) -> int:
    """The ``compare`` command: print the table; return 0, 1 (regression) or 2."""
    s = settings or Settings()
    out, err = out or sys.stdout, err or sys.stderr
    try:
        a, b = _read_side(run_a), _read_side(run_b)
    except CompareInputError as exc:
        print(f"loadcaller compare: {exc}", file=err)
        return EXIT_BAD_INPUT
    except OSError as exc:
        print(f"loadcaller compare: cannot read: {exc}", file=err)
        return EXIT_BAD_INPUT
    if isinstance(b, NoTurnsMeasured):  # the agent was down: B regressed, whatever A was
        print(f"loadcaller compare: B placed {b.calls} calls and measured no turn: {b.why}",
              file=err)
        return EXIT_REGRESSION
    if isinstance(a, NoTurnsMeasured):
        print(f"loadcaller compare: A placed {a.calls} calls and measured no turn: {a.why}; "
              "a baseline needs turns to compare B with", file=err)
        return EXIT_BAD_INPUT
    rows = compare_runs(a, b, s)
    print(f"  A: {run_a}\n  B: {run_b}\n  latencies in ms; a regression is significant at "
          f"alpha {s.alpha:g} (Bonferroni over groups and tests) and larger than "
          f"{s.min_increase_ms:g} ms and {100 * s.min_increase_ratio:g}%\n", file=out)
    print_table(rows, out)
    for side, names in zip("AB", unmatched(a, b), strict=True):
        if names:
            print(f"  only in {side} (not compared): {', '.join(names)}", file=out)
    regressed = [r for r in rows if r.regressed]
    if regressed:
        print(f"\nloadcaller compare: B regressed against A in {len(regressed)} of "
              f"{len(rows)} groups: {', '.join(r.name for r in regressed)}", file=err)
        return EXIT_REGRESSION
    few = [r for r in rows if r.verdict.startswith("too few")]
    print(f"\n  no regression{f' ({len(few)} groups had too few samples to judge)' if few else ''}",
          file=out)
    return EXIT_OK


def settings_from(args: Any) -> Settings:
    """Settings from ``loadcaller compare``'s options."""
    return Settings(alpha=args.alpha, min_increase_ms=args.min_increase_ms,
                    min_increase_ratio=args.min_increase_ratio,
                    max_answered_drop=args.max_answered_drop, min_samples=args.min_samples)
