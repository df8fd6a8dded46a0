"""``loadcaller compare`` on synthetic runs whose answer is known."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

from loadcaller.cli import main
from loadcaller.gates import stats
from loadcaller.gates.compare import Settings, read_run, run_compare


def write_run(directory: Path, latencies: np.ndarray, *, turns: int = 3,
              faults: list[list[str]] | None = None, unanswered: int = 0,
              scenarios: tuple[str, ...] = ("order",), failed_calls: int = 0) -> Path:
    """A results directory whose turns.jsonl holds ``latencies`` (ms), spread over turns
    and calls, each call a scenario of ``scenarios`` in turn; its calls.jsonl holds
    ``failed_calls`` calls that never connected (and no turn)."""
    directory.mkdir(parents=True)
    with (directory / "calls.jsonl").open("w") as f:
        for i in range(failed_calls):
            f.write(json.dumps({"call_id": f"f{i}", "scenario": scenarios[0],
                                "outcome": "failed_setup", "turns": 0,
                                "reason": "connect to 127.0.0.1:1 failed"}) + "\n")
    with (directory / "turns.jsonl").open("w") as f:
        for i, lat in enumerate(latencies):
            call = i // turns
            f.write(json.dumps({
                "call_id": f"c{call}", "scenario": scenarios[call % len(scenarios)],
                "turn": i % turns,
                "outcome": "answered", "latency_ms": round(float(lat), 3),
                "faults": faults[i] if faults else []}) + "\n")
        for i in range(unanswered):
            f.write(json.dumps({"call_id": f"u{i}", "scenario": "order", "turn": i % turns,
                                "outcome": "no_response", "latency_ms": None,
                                "faults": []}) + "\n")
    return directory


def lognormal(rng: np.random.Generator, n: int, median_ms: float,
              sigma: float = 0.35) -> np.ndarray:
    return rng.lognormal(np.log(median_ms), sigma, n)


def _compare(a: Path, b: Path, **kw: float) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_compare(a, b, Settings(**kw), out, err)  # type: ignore[arg-type]
    return code, out.getvalue(), err.getvalue()


def test_the_same_distribution_resampled_does_not_flag(tmp_path: Path) -> None:
    # twenty pairs of runs drawn from one distribution: none may flag (alpha 0.05 over the
    # groups, and a rise has to exceed 50 ms and 10% as well)
    for seed in range(20):
        rng = np.random.default_rng(seed)
        a = write_run(tmp_path / f"a{seed}", lognormal(rng, 300, 800))
        b = write_run(tmp_path / f"b{seed}", lognormal(rng, 300, 800))
        code, out, _ = _compare(a, b)
        assert code == 0, out
        assert "REGRESSION" not in out


def test_a_shifted_distribution_flags(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    a = write_run(tmp_path / "a", lognormal(rng, 300, 800))
    b = write_run(tmp_path / "b", lognormal(rng, 300, 1000))  # +25 % everywhere
    code, out, err = _compare(a, b)
    assert code == 1
    overall = next(line for line in out.splitlines() if line.strip().startswith("overall"))
    assert "REGRESSION" in overall and "median +" in overall and "p95 +" in overall
    assert "B regressed against A in" in err and "overall" in err


def test_a_tail_that_moved_flags_by_its_p95(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    base = lognormal(rng, 600, 800, sigma=0.2)
    slow = base.copy()
    slow[rng.choice(600, 60, replace=False)] += 2000  # 10 % of turns 2 s slower
    a = write_run(tmp_path / "a", lognormal(rng, 600, 800, sigma=0.2))
    b = write_run(tmp_path / "b", slow)
    code, out, _ = _compare(a, b)
    assert code == 1
    overall = next(line for line in out.splitlines() if line.strip().startswith("overall"))
    assert "p95 +" in overall and "median" not in overall


def test_a_trivial_difference_does_not_flag_however_significant(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    a = write_run(tmp_path / "a", lognormal(rng, 5000, 800, sigma=0.1))
    b = write_run(tmp_path / "b", lognormal(rng, 5000, 815, sigma=0.1))  # +15 ms
    code, out, _ = _compare(a, b)
    assert code == 0, out


def test_per_turn_and_per_phase_groups(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    n = 600
    faults = [["crm-slow"] if i % 3 == 1 else [] for i in range(n)]
    lat_a = lognormal(rng, n, 800)
    lat_b = lognormal(rng, n, 800)
    lat_b[1::3] += 1500  # turn 1 slowed, which is also the crm-slow phase
    a = write_run(tmp_path / "a", lat_a, faults=faults)
    b = write_run(tmp_path / "b", lat_b, faults=faults)
    code, out, _ = _compare(a, b)
    assert code == 1
    verdicts = {" ".join(line.split()[:3 if line.startswith("  order ") else 2]): line
                for line in out.splitlines()
                if line.startswith("  order turn ") or line.startswith("  phase ")}
    assert "REGRESSION" in verdicts["order turn 1"]
    assert "REGRESSION" in verdicts["phase crm-slow"]
    assert "REGRESSION" not in verdicts["order turn 0"]
    assert "REGRESSION" not in verdicts["order turn 2"]
    assert "REGRESSION" not in verdicts["phase none"]


def test_fewer_answered_turns_flag(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    a = write_run(tmp_path / "a", lognormal(rng, 300, 800))
    b = write_run(tmp_path / "b", lognormal(rng, 270, 800), unanswered=30)
    code, out, _ = _compare(a, b)
    assert code == 1
    assert "answered 100.0% -> 90.0%" in out


def test_too_few_samples_says_so_and_does_not_flag(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    a = write_run(tmp_path / "a", lognormal(rng, 9, 800))
    b = write_run(tmp_path / "b", lognormal(rng, 9, 3000))
    code, out, _ = _compare(a, b)
    assert code == 0
    assert "too few samples (need 20 latencies a side)" in out
    assert "groups had too few samples to judge" in out


def test_a_dead_agent_is_a_regression_however_few_its_turns(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A answered 120 of 120 turns, B 0 of 8: no latency to compare, but the answered
    # ratio fell from 100% to 0% (Fisher's exact test needs no minimum of turns)
    rng = np.random.default_rng(10)
    a = write_run(tmp_path / "a", lognormal(rng, 120, 800))
    b = write_run(tmp_path / "b", np.array([]), unanswered=8)
    assert main(["compare", str(a), str(b)]) == 1
    captured = capsys.readouterr()
    overall = next(line for line in captured.out.splitlines()
                   if line.strip().startswith("overall"))
    assert "REGRESSION: answered 100.0% -> 0.0%" in overall
    assert "B regressed against A in" in captured.err


def test_a_small_answered_drop_within_chance_does_not_flag(tmp_path: Path) -> None:
    # 1 of 9 unanswered against 0 of 9: Fisher's p is 0.5, no regression
    rng = np.random.default_rng(11)
    a = write_run(tmp_path / "a", lognormal(rng, 9, 800))
    b = write_run(tmp_path / "b", lognormal(rng, 8, 800), unanswered=1)
    code, out, _ = _compare(a, b)
    assert code == 0, out


def test_fisher_exact_matches_a_hand_computed_case() -> None:
    # A 3 of 4, B 1 of 4: P(B holds 1 or 0 of the 4 successes) = (16 + 1) / C(8, 4)
    assert stats.answered_drop(3, 4, 1, 4) == pytest.approx(17 / 70)
    assert stats.answered_drop(120, 120, 0, 8) == pytest.approx(1 / math.comb(128, 8))
    assert stats.answered_drop(10, 10, 10, 10) == 1.0
    assert stats.answered_drop(0, 0, 0, 8) == 1.0


def test_bad_input_exits_2_through_the_command_line(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(7)
    good = write_run(tmp_path / "good", lognormal(rng, 30, 800))
    (tmp_path / "empty").mkdir()
    no_calls = write_run(tmp_path / "no-calls", np.array([]))  # both files, both empty
    (tmp_path / "blank").mkdir()
    (tmp_path / "blank" / "turns.jsonl").write_text("\n")  # and no calls.jsonl
    assert main(["compare", str(good), str(tmp_path / "nope")]) == 2
    assert "nope: no such results directory" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "empty"), str(good)]) == 2
    assert "empty: no turns.jsonl" in capsys.readouterr().err
    for run in (no_calls, tmp_path / "blank"):
        assert main(["compare", str(good), str(run)]) == 2
        assert "holds no turns and no calls" in capsys.readouterr().err
    assert main(["compare", str(good), str(good)]) == 0


def test_a_run_whose_calls_all_failed_is_a_regression_not_bad_input(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the agent was down: B placed 8 calls, every one failed_setup, turns.jsonl empty
    rng = np.random.default_rng(12)
    good = write_run(tmp_path / "good", lognormal(rng, 30, 800))
    down = write_run(tmp_path / "down", np.array([]), failed_calls=8)
    assert main(["compare", str(good), str(down)]) == 1
    assert ("B placed 8 calls and measured no turn: 8 failed_setup: connect to "
            "127.0.0.1:1 failed") in capsys.readouterr().err
    # as the baseline it leaves nothing to compare with: fix the job
    assert main(["compare", str(down), str(good)]) == 2
    assert "A placed 8 calls and measured no turn" in capsys.readouterr().err


def test_an_agent_s_reason_prints_no_terminal_command(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    good = write_run(tmp_path / "good", lognormal(np.random.default_rng(2), 30, 800))
    down = write_run(tmp_path / "down", np.array([]), failed_calls=3)
    lines = (down / "calls.jsonl").read_text().replace(
        "connect to 127.0.0.1:1 failed", "SIP 486 Occup\\udce9 \\u001b[2J\\u0007")
    (down / "calls.jsonl").write_text(lines)
    assert main(["compare", str(good), str(down)]) == 1
    err = capsys.readouterr().err
    assert "\x1b" not in err and "3 failed_setup: SIP 486 Occup\\xe9 \\x1b[2J\\x07" in err
    # a profile's fault name is printed as a group name: escaped too
    rng = np.random.default_rng(3)
    named = [["slow\x1b]0;x\x07"]] * 60
    a = write_run(tmp_path / "fa", lognormal(rng, 60, 800), faults=named)
    b = write_run(tmp_path / "fb", lognormal(rng, 60, 800), faults=named)
    code, out, err = _compare(a, b)
    assert code == 0 and "\x1b" not in out + err and "phase slow\\x1b]0;x\\x07" in out


def test_read_run_skips_a_half_written_last_line(tmp_path: Path) -> None:
    run = write_run(tmp_path / "a", np.array([100.0, 200.0, 300.0]))
    with (run / "turns.jsonl").open("a") as f:
        f.write('{"call_id": "x", "lat')
    groups = read_run(run)
    assert groups["overall"].latencies == [100.0, 200.0, 300.0]
    assert set(groups) == {"overall", "order turn 0", "order turn 1", "order turn 2"}


def test_per_turn_groups_match_when_one_run_drew_a_single_scenario(tmp_path: Path) -> None:
    # A drew two scenarios, B only one: B's "order" turns still meet A's, and the
    # scenario B never drew is named, not dropped without a word
    rng = np.random.default_rng(9)
    n = 600
    lat_b = lognormal(rng, n, 800)
    lat_b[1::3] += 1500  # turn 1 of "order" slowed
    a = write_run(tmp_path / "a", lognormal(rng, 2 * n, 800), scenarios=("order", "refund"))
    b = write_run(tmp_path / "b", lat_b)
    code, out, _ = _compare(a, b)
    assert code == 1
    rows = {" ".join(line.split()[:3]): line for line in out.splitlines()
            if line.startswith("  order turn ")}
    assert set(rows) == {"order turn 0", "order turn 1", "order turn 2"}
    assert "REGRESSION" in rows["order turn 1"] and "REGRESSION" not in rows["order turn 0"]
    assert ("only in A (not compared): refund turn 0, refund turn 1, refund turn 2"
            in out)
    assert "only in B" not in out


def test_mann_whitney_matches_a_hand_computed_case() -> None:
    # A = [1, 2, 3], B = [4, 5, 6]: U_B = 9 = n_A n_B, so superiority 1.0;
    # z = (9 - 4.5 - 0.5) / sqrt(5.25)
    p, sup = stats.mann_whitney_greater(np.array([1.0, 2, 3]), np.array([4.0, 5, 6]))
    assert sup == 1.0
    assert p == pytest.approx(0.5 * math.erfc(4 / 5.25 ** 0.5 / 2 ** 0.5))
    p_same, sup_same = stats.mann_whitney_greater(np.ones(5), np.ones(5))
    assert (p_same, sup_same) == (1.0, 0.5)


@pytest.mark.parametrize(("option", "value", "why"), [
    ("--alpha", "0", "must be above 0 and below 1"),
    ("--alpha", "1", "must be above 0 and below 1"),
    ("--min-increase-ms", "-100", "must be 0 or more milliseconds"),
    ("--min-increase-ms", "nan", "must be 0 or more milliseconds"),
    ("--min-increase-ratio", "-0.5", "must be 0 or more"),
    ("--max-answered-drop", "1", "must be 0 or more and below 1"),
])
def test_nonsense_thresholds_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         option: str, value: str, why: str) -> None:
    rng = np.random.default_rng(8)
    a = write_run(tmp_path / "a", lognormal(rng, 30, 800))
    b = write_run(tmp_path / "b", lognormal(rng, 30, 800))
    assert main(["compare", str(a), str(b), f"{option}={value}"]) == 2
    err = capsys.readouterr().err
    assert option in err and why in err
