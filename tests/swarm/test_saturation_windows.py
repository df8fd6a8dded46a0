"""Saturated windows across the swarm: turns tagged where they were measured, windows
checked on the wire, merged on the master into the summary, the console and /metrics."""

from __future__ import annotations

import dataclasses
import io
import json
import time

import pytest
from prometheus_client import generate_latest

from loadcaller.calls.call import CallRecord
from loadcaller.calls.measure import TurnResult
from loadcaller.calls.stretches import WindowedLag
from loadcaller.console import print_summary, progress_line
from loadcaller.engine import Engine
from loadcaller.metrics import make_registry
from loadcaller.swarm.aggregate import Aggregate
from loadcaller.swarm.node import CpuMeter
from loadcaller.swarm.wire import WireError, record_from_wire, record_to_wire, snapshot_from_wire
from loadcaller.timebase import NS_PER_MS, NS_PER_S, to_monotonic_s
from tests.test_engine import spec_for

MS = NS_PER_MS
S = NS_PER_S
T0 = 5_000 * S


def _record(call_id: str, turns: list[tuple[int, int | None]],
            saturated: tuple[bool, ...] = ()) -> CallRecord:
    """A call whose turns end speaking at ``t`` and hear the reply at ``onset``."""
    out = [TurnResult(i, "answered" if onset else "no_response", t, onset,
                      generator_saturated=i < len(saturated) and saturated[i])
           for i, (t, onset) in enumerate(turns)]
    return CallRecord(call_id, "twilio", "s", "completed", "scenario finished",
                      t_start_ns=T0, t_end_ns=T0 + 60 * S, setup_ns=5 * MS, turns=out)


def _judge_saturated_from(t_sat: int, t_end: int, *, window_s: float = 5.0) -> WindowedLag:
    """Ticks every 20 ms from T0 to ``t_end``, 40 ms late from ``t_sat`` on."""
    judge = WindowedLag(threshold_ms=5.0, window_s=window_s)
    t = T0
    while t < t_end:
        judge.tick(t, 40 * MS if t >= t_sat else MS // 5)
        t += 20 * MS
    return judge


def test_turns_are_tagged_by_the_windows_their_measurement_overlaps():
    engine = Engine(spec_for("ws://127.0.0.1:9/media"), None, saturation_lag_ms=5.0)
    # windows [T0, T0+5s) fine, [T0+5s, T0+10s) saturated, [T0+10s, ...) fine (closed)
    judge = engine.windows
    t = T0
    while t < T0 + 15 * S + 20 * MS:
        judge.tick(t, 40 * MS if T0 + 5 * S <= t < T0 + 10 * S else 0)
        t += 20 * MS
    rec = _record("c", [(T0 + 1 * S, T0 + 2 * S),  # before: clean
                        (T0 + 4 * S, T0 + 5 * S + 300 * MS),  # reply heard in it: tagged
                        (T0 + 7 * S, None),  # unanswered, speech ended in it: tagged
                        (T0 + 10 * S, T0 + 11 * S),  # from its end on: clean
                        (T0 + 14 * S, T0 + 15 * S)])  # in the open window, fine so far
    seen: list[CallRecord] = []
    engine.on_call_end.append(seen.append)
    engine._finished(rec)
    assert [t.generator_saturated for t in seen[0].turns] == [False, True, True, False, False]
    assert engine.results.turns_generator_saturated == 2
    assert engine.generator_health()["saturated"] is True


def test_a_tagged_turn_crosses_the_wire_and_a_bad_tag_is_rejected():
    rec = _record("c", [(T0, T0 + S), (T0 + 2 * S, T0 + 3 * S)], saturated=(False, True))
    back = record_from_wire(record_to_wire(rec))
    assert [t.generator_saturated for t in back.turns] == [False, True]
    data = record_to_wire(rec)
    data["turns"][0]["generator_saturated"] = "yes"
    with pytest.raises(WireError, match="generator_saturated"):
        record_from_wire(data)


@pytest.mark.parametrize("stretches, why", [
    ("nope", "not a list"),
    ([[1, 2, 3]], "four integers"),
    ([[5, 1, 0, 1]], "out of range"),  # ends before it starts
    ([[1, 2, -1, 1]], "out of range"),
    ([[1, 2, 3, 0]], "out of range"),  # no window
    ([[1, 2, True, 1]], "four integers"),
    ([[0, 1, 0, 1]] * 1001, "at most"),
])
def test_bad_stretches_are_rejected(stretches, why):
    with pytest.raises(WireError, match=why):
        snapshot_from_wire({"stretches": stretches})


def test_bad_window_fields_are_rejected():
    for snap, why in (({"saturated_now": 1}, "saturated_now"),
                      ({"cpu_ratio_mean": -0.1}, "cpu_ratio_mean"),
                      ({"cpu_ratio_peak": float("nan")}, "cpu_ratio_peak"),
                      ({"windows_saturated": -1}, "windows_saturated")):
        with pytest.raises(WireError, match=why):
            snapshot_from_wire(snap)


def _snapshot(judge: WindowedLag, cpu: tuple[float, float] = (0.3, 0.5)) -> dict:
    """What CallerNode.snapshot sends, for this judge (through msgpack: lists)."""
    return {"started": 1, "live_turns": [],
            "stretches": [[s.start_ns, s.end_ns, s.lag_p99_ns, s.windows]
                          for s in judge.all_stretches()],
            "saturated_now": judge.saturated_now(), "windows_judged": judge.judged,
            "windows_saturated": judge.saturated_windows,
            "cpu_percent": 12.0, "cpu_ratio_mean": cpu[0], "cpu_ratio_peak": cpu[1]}


def test_the_master_merges_windows_into_the_summary_console_and_metrics(tmp_path):
    agg = Aggregate(tmp_path, saturation_lag_ms=5.0, saturation_window_s=5.0)
    agg.t0_monotonic = to_monotonic_s(T0)
    # process 0 saturates in [5 s, 15 s), process 1 in [10 s, 20 s): one stretch of the run,
    # and both are fine again by 30 s
    agg.update_node("w0", _snapshot(_two_windows(5, 15), (0.4, 0.9)))
    agg.update_node("w1", _snapshot(_two_windows(10, 20), (0.6, 0.7)))
    rec = _record("a", [(T0 + S, T0 + S + 500 * MS), (T0 + 12 * S, T0 + 12 * S + 900 * MS)],
                  saturated=(False, True))
    agg.add_records("w0", [record_to_wire(rec)])
    summary = agg.summary({})
    gen, turns = summary["generator"], summary["turns"]
    assert gen["saturated"] is True
    assert gen["saturated_windows"] == [{
        "from": round(to_monotonic_s(T0 + 5 * S), 3), "to": round(to_monotonic_s(T0 + 20 * S), 3),
        "processes": ["w0", "w1"], "lag_p99_ms": 40.0, "since_start_s": [5.0, 20.0]}]
    assert "media clock lag p99 up to 40.0 ms" in gen["saturation_reasons"][0]
    assert (gen["cpu_ratio_mean"], gen["cpu_ratio_peak"]) == (0.6, 0.9)  # the busiest's
    assert gen["cpu_ratio_by_process"]["w0"] == {"mean": 0.4, "peak": 0.9}
    assert turns["latency_ms"]["count"] == 2 and turns["generator_saturated"] == 1
    assert turns["latency_ms_unsaturated"]["count"] == 1
    assert turns["latency_ms_unsaturated"]["max"] == pytest.approx(500, rel=0.01)
    # the live verdict: both processes' last windows were fine
    assert agg.progress()["generator"]["saturated"] is False
    text = generate_latest(make_registry(agg)).decode()
    assert "loadcaller_generator_saturated 0.0" in text
    assert "loadcaller_generator_saturated_windows_total 4.0" in text
    out = io.StringIO()
    print_summary(json.loads(json.dumps(summary)), out)
    printed = out.getvalue()
    assert "saturated stretches (1; 1 turns measured in them" in printed
    assert "5.0s to    20.0s after the start  lag p99 40.0 ms  (w0, w1)" in printed
    assert "unsaturated turns" in printed and "THE GENERATOR WAS SATURATED" in printed
    assert "CPU mean 60%, peak 90% of a core" in printed
    line = (tmp_path / "turns.jsonl").read_text().splitlines()[1]
    assert json.loads(line)["generator_saturated"] is True
    assert "generator_saturated" not in json.loads(
        (tmp_path / "turns.jsonl").read_text().splitlines()[0])
    agg.close()


def _two_windows(from_s: int, to_s: int) -> WindowedLag:
    """A 5 s judge saturated in [from_s, to_s), fine for 10 s after it (windows closed)."""
    return _judge_saturated_until(T0 + from_s * S, T0 + to_s * S, T0 + (to_s + 10) * S + 1)


def _judge_saturated_until(t_sat: int, t_ok: int, t_end: int) -> WindowedLag:
    judge = WindowedLag(threshold_ms=5.0, window_s=5.0)
    t = T0
    while t < t_end:
        judge.tick(t, 40 * MS if t_sat <= t < t_ok else MS // 5)
        t += 20 * MS
    return judge


def test_the_live_line_follows_the_current_window_and_the_verdict_any_window():
    agg = Aggregate(None, saturation_lag_ms=5.0)
    agg.update_node("local", _snapshot(_judge_saturated_from(T0 + 10 * S, T0 + 12 * S)))
    live = agg.progress()
    assert live["generator"]["saturated"] is True
    assert "GENERATOR SATURATED" in progress_line(12, 60, 3, live)
    text = generate_latest(make_registry(agg)).decode()
    assert "loadcaller_generator_saturated 1.0" in text
    # later: the saturated window closed long ago, the clock is fine again
    agg.update_node("local", _snapshot(_judge_saturated_until(T0 + 10 * S, T0 + 12 * S,
                                                              T0 + 30 * S)))
    live = agg.progress()
    assert live["generator"]["saturated"] is False
    assert "GENERATOR SATURATED" not in progress_line(30, 60, 3, live)
    assert agg.saturated() is True and agg.generator_health()["saturated"] is True


def test_a_run_without_saturated_windows_is_not_saturated():
    agg = Aggregate(None, saturation_lag_ms=5.0)
    agg.update_node("local", _snapshot(_judge_saturated_from(T0 + 99 * S, T0 + 20 * S)))
    gen = agg.generator_health()
    assert gen["saturated"] is False and gen["saturated_windows"] == []
    assert gen["windows_judged"] == 3
    out = io.StringIO()
    print_summary(agg.summary({}), out)
    assert "saturated stretches" not in out.getvalue()


def test_cpu_meter_reports_the_runs_mean_and_a_peak_not_below_it():
    meter = CpuMeter()
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:  # bounded busy work
        pass
    meter.percent()
    mean, peak = meter.run_ratios()
    assert 0.0 < mean <= peak


def test_the_report_shades_and_lists_the_saturated_stretches(tmp_path):
    from loadcaller.report.html import write_report
    from tests.report.test_html import GEN, call, plot, write_run

    tagged = call(0)  # turns end speaking at 102, 106, 110 s (monotonic)
    tagged.turns[1] = dataclasses.replace(tagged.turns[1], generator_saturated=True)
    gen = dict(GEN, saturated=True, saturation_reasons=["media clock lag p99 up to 40 ms"],
               saturated_windows=[{"from": 105.0, "to": 107.5, "processes": ["local"],
                                   "lag_p99_ms": 40.0}],
               cpu_ratio_mean=0.42, cpu_ratio_peak=0.97)
    page = write_report(write_run(tmp_path, [tagged], generator=gen), exit_code=3).read_text()
    over_time = plot(page, "latency-over-time")
    assert over_time.count('class="band sat"') == 1 and "generator saturated" in over_time
    assert "turn latency, unsaturated turns" in page
    assert "5.0 s to 7.5 s after the first call" in page  # the first call started at 100 s
    assert "mean 42%, peak 97% of a core" in page


@pytest.mark.parametrize("value, seconds", [("5s", 5.0), ("500ms", 0.5), ("2", 2.0)])
def test_the_window_option(value, seconds):
    from loadcaller.cli import build_parser
    args = build_parser().parse_args(["run", "p.yaml", "--saturation-window", value])
    assert args.saturation_window == seconds


@pytest.mark.parametrize("value", ["0s", "2m", "banana", "-1"])
def test_a_bad_window_is_a_usage_error(value, capsys):
    from loadcaller.cli import build_parser
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["run", "p.yaml", "--saturation-window", value])
    assert exc.value.code == 2
    assert "--saturation-window" in capsys.readouterr().err


def test_the_progress_line_counts_the_turns_of_calls_in_progress_once():
    agg = Aggregate(None, saturation_lag_ms=5.0)
    live = [{"call_id": "a", "scenario": "s", "transport": "twilio", "index": i,
             "outcome": "answered", "latency_ns": 300 * MS} for i in range(2)]
    agg.add_live_turns(live)
    turns = agg.progress()["turns"]
    assert (turns["count"], turns["answered"]) == (2, 2)  # as /metrics says, mid-call
    assert turns["latency_ms"]["p50"] == pytest.approx(300, rel=0.01)  # not "2 answered, p50 -"
    rec = _record("a", [(T0, T0 + S), (T0 + 2 * S, T0 + 3 * S), (T0 + 5 * S, None)])
    agg.add_records("w0", [record_to_wire(rec)])
    turns = agg.progress()["turns"]
    assert (turns["count"], turns["answered"]) == (3, 2)  # the call's record: once each
    assert "turns     3 (2 answered) p50 300 ms" in progress_line(5.0, 10.0, 0, agg.progress())
    assert progress_line(5.0, 10.0, 1, agg.progress()).startswith("[    5s/10s] active    1 |")
    # past the duration the calls in progress finish: say so, not only "12s/10s"
    assert progress_line(12.0, 10.0, 1, agg.progress()).startswith(
        "[   12s/10s] no new calls, active    1 |")
