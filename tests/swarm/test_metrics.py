"""Bucket histograms merge by addition; the exposition has our names and no call labels."""

from __future__ import annotations

from prometheus_client import generate_latest

from loadcaller import metrics as m
from loadcaller.calls.call import CallRecord
from loadcaller.calls.histogram import Histogram
from loadcaller.calls.measure import TurnResult
from loadcaller.metrics import (
    LAG_BUCKETS,
    LATENCY_BUCKETS,
    SETUP_BUCKETS,
    BucketHistogram,
    make_registry,
)
from loadcaller.swarm.aggregate import Aggregate, record_from_wire, record_to_wire

from .conftest import read_jsonl
from .exposition import assert_series_match, scraped_histograms, values_by_series

MS = 1_000_000
US = 1_000


def test_latency_buckets_span_50ms_to_20s():
    assert LATENCY_BUCKETS[0] == 0.05 and LATENCY_BUCKETS[-1] == 20.0
    assert list(LATENCY_BUCKETS) == sorted(set(LATENCY_BUCKETS))


def test_call_setup_has_its_own_millisecond_buckets():
    """A 3 ms setup lands in a bucket a few ms wide, not in [0, 50 ms] (10x too high)."""
    assert SETUP_BUCKETS[0] == 0.001 and SETUP_BUCKETS[-1] >= 40.0  # SIP's setup_timeout
    assert list(SETUP_BUCKETS) == sorted(set(SETUP_BUCKETS))
    agg = Aggregate(None, saturation_lag_ms=5.0)
    agg.add_records("w1", [record_to_wire(CallRecord(
        "c1", "twilio", "order", "completed", "done", t_start_ns=1, t_end_ns=2,
        setup_ns=3 * MS, greeting_ns=200 * MS, turns=[]))])
    text = generate_latest(make_registry(agg)).decode()
    (series,) = scraped_histograms(text, m.CALL_SETUP).values()
    bounds = [0.0, *(b for b, _ in series.buckets)]
    first = next(i for i, (_, n) in enumerate(series.buckets, 1) if n)
    low, high = bounds[first - 1], bounds[first]
    assert low < 0.003 <= high and high - low <= 0.003, (low, high)


def test_merged_bucket_counts_are_the_sum_of_the_parts():
    a, b = BucketHistogram(LATENCY_BUCKETS), BucketHistogram(LATENCY_BUCKETS)
    for v in (0.04, 0.3, 0.3, 25.0):
        a.observe(v)
    for v in (0.3, 1.1):
        b.observe(v)
    merged = BucketHistogram(LATENCY_BUCKETS)
    merged.merge(a)
    merged.merge(b)
    assert merged.counts == [x + y for x, y in zip(a.counts, b.counts, strict=True)]
    cum = dict(merged.cumulative())
    assert cum["0.05"] == 1 and cum["0.3"] == 4 and cum["1.25"] == 5 and cum["+Inf"] == 6


def test_buckets_from_hdr_histograms_sum_over_processes():
    h1, h2 = Histogram(), Histogram()
    for us in (50, 900, 4000):
        h1.record_ns(us * 1000)
    h2.record_ns(30_000 * 1000)
    b = BucketHistogram.from_hdr([h1.encode(), h2.encode()], LAG_BUCKETS)
    assert b.count == 4
    cum = dict(b.cumulative())
    assert cum["0.0001"] == 1 and cum["0.001"] == 2 and cum["0.005"] == 3 and cum["0.05"] == 4


def _record(call_id: str, latencies_ms: list[int | None]) -> CallRecord:
    turns = [TurnResult(i, "answered" if lat is not None else "no_response", 1000,
                        None if lat is None else 1000 + lat * MS)
             for i, lat in enumerate(latencies_ms)]
    return CallRecord(call_id, "twilio", "order", "completed", "scenario finished",
                      t_start_ns=1, t_end_ns=2, setup_ns=5 * MS, greeting_ns=200 * MS,
                      turns=turns)


def test_records_survive_the_wire():
    rec = _record("c1", [300, None])
    assert record_from_wire(record_to_wire(rec)) == rec


def test_aggregate_exposition(tmp_path):
    agg = Aggregate(tmp_path, saturation_lag_ms=5.0)
    agg.add_records("w1", [record_to_wire(_record("a", [300, 700]))])
    agg.add_records("w2", [record_to_wire(_record("b", [310, None]))])
    text = generate_latest(make_registry(agg)).decode()
    assert ('loadcaller_turn_latency_seconds_bucket{le="0.35",scenario="order",transport="twilio",'
            'turn="0"} 2.0') in text
    assert 'loadcaller_turns_total{outcome="answered"} 3.0' in text
    assert 'loadcaller_turns_total{outcome="no_response"} 1.0' in text
    assert 'loadcaller_calls_total{outcome="completed"} 2.0' in text
    assert "call_id" not in text and '"a"' not in text  # no per-call labels
    assert len((tmp_path / "turns.jsonl").read_text().splitlines()) == 4
    agg.close()


def _lag_snapshot(late: int, on_time: int) -> dict:
    h = Histogram()
    for _ in range(on_time):
        h.record_ns(200_000)  # 0.2 ms
    for _ in range(late):
        h.record_ns(9 * MS)
    return {"media_clock_lag": h.encode(), "started": 0}


# the saturation rule (lag p99 and ten late ticks) is judged per window in each caller
# process: tests/calls/test_stretches.py, tests/swarm/test_saturation_windows.py


def test_locust_cpu_warning_marks_the_run_saturated():
    agg = Aggregate(None, saturation_lag_ms=5.0)
    agg.update_node("w1", _lag_snapshot(late=0, on_time=100))
    assert agg.saturated() is False
    agg.locust_cpu_warning = True
    assert agg.saturated() is True


def test_turns_seen_live_are_not_counted_again_when_the_call_ends(tmp_path):
    agg = Aggregate(tmp_path, saturation_lag_ms=5.0)
    live = {"call_id": "a", "scenario": "order", "transport": "twilio", "index": 0,
            "outcome": "answered", "latency_ns": 300 * MS}
    agg.update_node("w1", {"started": 1, "live_turns": [live]})
    text = generate_latest(make_registry(agg)).decode()
    assert 'loadcaller_turns_total{outcome="answered"} 1.0' in text  # while the call goes on
    agg.add_records("w1", [record_to_wire(_record("a", [300, 700]))])
    text = generate_latest(make_registry(agg)).decode()
    assert 'loadcaller_turns_total{outcome="answered"} 2.0' in text
    assert ('loadcaller_turn_latency_seconds_count{scenario="order",transport="twilio",turn="0"}'
            ' 1.0') in text
    assert len((tmp_path / "turns.jsonl").read_text().splitlines()) == 2
    agg.close()


# Whole microseconds (what the results files can state exactly): on and next to
# bounds (50 ms, 300 ms), below the first, above the last (+Inf), and in between.
_LATENCIES_US = [
    [49_999, 50_000, 50_001, 299_999, 300_000, 300_001],
    [123_457, 987_654, None, 25_000_000, 19_999_999, 20_000_000],
    [1, 734_211, 1_250_000, 4_999_998, 10_000_001, 612_345],
]


def _exact_record(n: int, scenario: str, latencies_us: list[int | None]) -> CallRecord:
    t = 10**12 + n * 10**10
    turns = [TurnResult(i, "answered" if us is not None else "no_response", t + i * 10**9,
                        None if us is None else t + i * 10**9 + us * US)
             for i, us in enumerate(latencies_us)]
    return CallRecord(f"c{n}", "twilio", scenario, "completed", "scenario finished",
                      t_start_ns=t, t_end_ns=t + 10**10, setup_ns=(4_321 + 997 * n) * US,
                      greeting_ns=(149_999 + 150_001 * n) * US if n != 1 else None, turns=turns)


def test_exported_histograms_equal_the_results_files_bucket_by_bucket(tmp_path):
    """Every latency histogram on /metrics says exactly what turns/calls.jsonl say."""
    agg = Aggregate(tmp_path, saturation_lag_ms=5.0)
    records = [_exact_record(n, ("order", "refund", "order")[n], lat)
               for n, lat in enumerate(_LATENCIES_US)]
    # call c2's first two turns reach /metrics while it is in progress, the rest with its record
    live = [{"call_id": "c2", "scenario": "order", "transport": "twilio", "index": t.index,
             "outcome": t.outcome, "latency_ns": t.latency_ns} for t in records[2].turns[:2]]
    # and its set-up, then its greeting, in two snapshots (the set-up sent once)
    c2 = {"call_id": "c2", "scenario": "order", "transport": "twilio"}
    agg.update_node("w1", {"started": 3, "live_turns": [], "live_calls": [
        {**c2, "setup_ns": records[2].setup_ns, "greeting_ns": None}]})
    agg.update_node("w1", {"started": 3, "live_turns": live, "live_calls": [
        {**c2, "setup_ns": None, "greeting_ns": records[2].greeting_ns}]})
    agg.add_records("w1", [record_to_wire(r) for r in records[:2]])
    agg.add_records("w2", [record_to_wire(records[2])])
    agg.close()
    text = generate_latest(make_registry(agg)).decode()
    turns = read_jsonl(tmp_path / "turns.jsonl")
    calls = read_jsonl(tmp_path / "calls.jsonl")
    assert len(turns) == 18 and len(calls) == 3

    expected = {
        m.TURN_LATENCY: values_by_series(turns, "latency_ms", {"scenario": "scenario",
                                         "transport": "transport", "turn": "turn"}),
        m.GREETING_LATENCY: values_by_series(calls, "greeting_ms", {"scenario": "scenario",
                                             "transport": "transport"}),
        m.CALL_SETUP: values_by_series(calls, "setup_ms", {"transport": "transport"}),
    }
    assert sum(map(len, expected[m.TURN_LATENCY].values())) == 17
    assert sum(map(len, expected[m.GREETING_LATENCY].values())) == 2
    for name, values in expected.items():
        bounds = SETUP_BUCKETS if name == m.CALL_SETUP else LATENCY_BUCKETS
        assert_series_match(scraped_histograms(text, name), values, bounds, whole_us=True)
