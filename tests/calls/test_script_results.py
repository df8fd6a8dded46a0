"""Barge-ins, silences and expect: checks in turns.jsonl, summary.json and /metrics."""

from __future__ import annotations

import json
from pathlib import Path

from loadcaller.calls.call import CallRecord
from loadcaller.calls.measure import TurnResult
from loadcaller.calls.results import Results
from loadcaller.media.outcomes import BargeInOutcome, TurnOutcome
from loadcaller.swarm.aggregate import Aggregate
from loadcaller.swarm.wire import record_to_wire

MS = 1_000_000
T = 10**12


def record() -> CallRecord:
    turns = [
        TurnResult(0, TurnOutcome.REPROMPTED, T, step="silence", t_reprompt_ns=T + 4_000 * MS),
        TurnResult(0, TurnOutcome.ANSWERED, T + 6_000 * MS, T + 6_700 * MS,
                   heard_text="it ships tomorrow", expect_ok=True, expect_reason="ok"),
        TurnResult(1, TurnOutcome.ANSWERED, T + 9_000 * MS, T + 9_600 * MS, step="barge_in",
                   bargein=BargeInOutcome.STOPPED, t_bargein_ns=T + 8_000 * MS,
                   t_agent_stop_ns=T + 8_170 * MS, heard_text="a colleague",
                   expect_ok=False, expect_reason="missing 'ships'"),
        TurnResult(2, TurnOutcome.ANSWERED, T + 12_000 * MS, T + 12_000 * MS, overlap=True,
                   step="barge_in", bargein=BargeInOutcome.NOT_STOPPED,
                   t_bargein_ns=T + 11_000 * MS),
        TurnResult(3, TurnOutcome.NO_REPROMPT, T + 13_000 * MS, step="silence"),
    ]
    return CallRecord("c1", "twilio", "s", "completed", "done", remote_id="CA1",
                      t_start_ns=T, t_end_ns=T + 20_000 * MS, turns=turns)


def test_turn_lines_and_summary(tmp_path: Path) -> None:
    results = Results(tmp_path)
    results.record_call(record())
    results.close()
    lines = [json.loads(x) for x in (tmp_path / "turns.jsonl").read_text().splitlines()]
    assert [ln["step"] for ln in lines] == ["silence", "say", "barge_in", "barge_in", "silence"]
    assert lines[0]["reprompt_ms"] == 4_000.0 and lines[0]["latency_ms"] is None
    assert lines[1]["expect_ok"] is True and lines[1]["heard_text"] == "it ships tomorrow"
    assert lines[2]["bargein"] == "stopped" and lines[2]["bargein_reaction_ms"] == 170.0
    assert lines[2]["expect_reason"] == "missing 'ships'"
    assert lines[3]["bargein"] == "not_stopped" and lines[3]["bargein_reaction_ms"] is None
    assert "expect_ok" not in lines[3]
    summary = results.summary({}, {})
    assert summary["turns"]["count"] == 3  # silences are dead air, not turns
    assert summary["dead_air"]["silences"] == 2 and summary["dead_air"]["reprompted"] == 1
    assert abs(summary["dead_air"]["reprompt_ms"]["p50"] - 4_000.0) < 5  # HdrHistogram
    assert summary["bargein"]["outcomes"] == {"stopped": 1, "not_stopped": 1}
    assert summary["bargein"]["reaction_ms"]["count"] == 1
    assert summary["expect"] == {"checked": 2, "passed": 1, "failed": 1, "unchecked": 0}


def test_a_record_over_the_wire_keeps_its_steps_and_reaches_metrics() -> None:
    agg = Aggregate(None, saturation_lag_ms=5.0)
    agg.add_records("w", [record_to_wire(record())])
    assert agg.rejected["records"] == 0
    assert agg.bargein_outcomes == {"stopped": 1, "not_stopped": 1}
    assert agg.expect_failed == {("s", "twilio"): 1}
    (hist,) = agg.bargein.values()
    assert hist.count == 1 and abs(hist.total - 0.170) < 1e-9
    assert "reprompted" not in agg.turn_outcomes and agg.turn_outcomes["answered"] == 3
    bad = record_to_wire(record())
    bad["turns"][2]["bargein"] = "maybe"
    agg.add_records("w", [bad])
    assert agg.rejected["records"] == 1
