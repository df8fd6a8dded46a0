"""What a worker sends is checked before it is counted: bad data is counted and dropped."""

from __future__ import annotations

import base64
import struct
import zlib
from typing import Any

import pytest
from prometheus_client import generate_latest

from loadcaller.calls.call import CallRecord
from loadcaller.calls.histogram import Histogram
from loadcaller.calls.measure import TurnResult
from loadcaller.metrics import make_registry
from loadcaller.swarm.aggregate import Aggregate
from loadcaller.swarm.wire import (
    WireError,
    check_histogram,
    record_from_wire,
    record_to_wire,
    snapshot_from_wire,
)

from .conftest import read_jsonl

MS = 1_000_000
T0 = 10**12


def good_record(call_id: str = "c1") -> dict[str, Any]:
    turns = [TurnResult(0, "answered", T0 + 2 * 10**9, T0 + 2 * 10**9 + 300 * MS),
             TurnResult(1, "no_response", T0 + 4 * 10**9)]
    return record_to_wire(CallRecord(call_id, "twilio", "order", "completed", "done",
                                     remote_id="CA1", t_start_ns=T0, t_end_ns=T0 + 6 * 10**9,
                                     setup_ns=5 * MS, greeting_ns=200 * MS, turns=turns))


def with_(rec: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**rec, **changes}


def turn_with(rec: dict[str, Any], **changes: Any) -> dict[str, Any]:
    turns = [dict(t) for t in rec["turns"]]
    turns[0].update(changes)
    return {**rec, "turns": turns}


def lag_blob() -> bytes:
    h = Histogram()
    for us in (100, 200, 9000):
        h.record_ns(us * 1000)
    return h.encode()


def good_snapshot() -> dict[str, Any]:
    return {"started": 3, "finished": 2, "turns": 4, "active": 1, "media_clock_lag": lag_blob(),
            "loop_lag": lag_blob(), "skipped_ticks": 0, "member_errors": 0, "cpu_percent": 12.5,
            "hub_lag": lag_blob(), "handoff_to_loop": lag_blob(),
            "handoff_to_greenlet": Histogram().encode(),
            "live_turns": [{"call_id": "c9", "scenario": "order", "transport": "twilio",
                            "index": 0, "outcome": "answered", "latency_ns": 250 * MS}],
            "live_calls": [{"call_id": "c9", "scenario": "order", "transport": "twilio",
                            "setup_ns": 20 * MS, "greeting_ns": None}]}


def test_a_good_record_and_snapshot_pass() -> None:
    rec = record_from_wire(good_record(), scenarios={"order"}, transports={"twilio"})
    assert rec.turns[0].latency_ns == 300 * MS
    snap = snapshot_from_wire(good_snapshot(), scenarios={"order"}, transports={"twilio"})
    assert snap["started"] == 3 and len(snap["live_turns"]) == 1
    assert snap["live_calls"] == good_snapshot()["live_calls"]


BAD_RECORDS = {
    "not a mapping": "call",
    "a list": [1, 2],
    "missing call_id": {k: v for k, v in good_record().items() if k != "call_id"},
    "unknown key": with_(good_record(), evil=1),
    "call_id not a string": with_(good_record(), call_id=7),
    "outcome unknown": with_(good_record(), outcome="pwned"),
    "scenario not this run's": with_(good_record(), scenario="x" * 50),
    "transport not this run's": with_(good_record(), transport="sip"),
    "string where a list is expected": with_(good_record(), turns="0,1"),
    "huge number": with_(good_record(), setup_ns=2**64 - 1),
    "float timestamp": with_(good_record(), t_end_ns=1e300),
    "negative duration": with_(good_record(), greeting_ns=-5),
    "bool as int": with_(good_record(), setup_ns=True),
    "end before start": with_(good_record(), t_end_ns=T0 - 1),
    "negative latency": turn_with(good_record(), t_reply_onset_ns=T0 + 10**9),
    "turn outcome unknown": turn_with(good_record(), outcome="maybe"),
    "turn unknown key": turn_with(good_record(), latency_ns=5),
    "turn index negative": turn_with(good_record(), index=-1),
    "faults not names": turn_with(good_record(), faults=[{"a": 1}]),
    "media not a mapping": with_(good_record(), media=[1]),
    "media count a string": with_(good_record(), media={"packets_sent": "many"}),
    "media NaN": with_(good_record(), media={"jitter_ms": float("nan")}),
    "media nested": with_(good_record(), media={"x": {"y": 1}}),
    "call_id huge": with_(good_record(), call_id="c" * 10_000),
}


@pytest.mark.parametrize("name", sorted(BAD_RECORDS))
def test_bad_records_are_refused(name: str) -> None:
    with pytest.raises(WireError):
        record_from_wire(BAD_RECORDS[name], scenarios={"order"}, transports={"twilio"})


def test_an_overlapping_reply_may_begin_before_the_callers_end() -> None:
    rec = turn_with(good_record(), t_reply_onset_ns=T0 + 10**9, overlap=True)
    assert record_from_wire(rec).turns[0].latency_ns == 0


def test_a_long_reason_is_cut_not_refused() -> None:
    assert len(record_from_wire(with_(good_record(), reason="r" * 50_000)).reason) == 1000


def _reencoded(blob: bytes, mutate: Any) -> bytes:
    raw = base64.b64decode(blob)
    inner = bytearray(zlib.decompress(raw[8:]))
    mutate(inner)
    payload = zlib.compress(bytes(inner))
    return base64.b64encode(raw[:4] + struct.pack(">I", len(payload)) + payload)


def _bomb() -> bytes:
    raw = base64.b64decode(Histogram().encode())
    payload = zlib.compress(raw[8:48] + bytes(50 * 1024 * 1024), 9)  # 50 MB of zeros
    return base64.b64encode(raw[:4] + struct.pack(">I", len(payload)) + payload)


BAD_HISTOGRAMS = {
    "not bytes": "AAAA",
    "not base64": b"!!!!",
    "garbage": base64.b64encode(b"\x1c\x84\x93\x14" + b"junk" * 10),
    "truncated": lag_blob()[:-8],
    "other range": _reencoded(lag_blob(), lambda b: b.__setitem__(slice(24, 32),
                                                                   struct.pack(">Q", 2**62))),
    "other digits": _reencoded(lag_blob(), lambda b: b.__setitem__(slice(12, 16),
                                                                    struct.pack(">I", 5))),
    "zlib bomb": _bomb(),
    "huge": b"A" * (1024 * 1024),
}


@pytest.mark.parametrize("name", sorted(BAD_HISTOGRAMS))
def test_bad_histograms_are_refused(name: str) -> None:
    with pytest.raises(WireError):
        check_histogram(BAD_HISTOGRAMS[name])


def test_our_histograms_pass() -> None:
    for blob in (Histogram().encode(), lag_blob(), b""):
        assert check_histogram(blob) == blob


BAD_SNAPSHOTS = {
    "not a mapping": ["started", 1],
    "unknown key": {**good_snapshot(), "rogue": 1},
    "counter a string": {**good_snapshot(), "started": "3"},
    "counter negative": {**good_snapshot(), "finished": -1},
    "counter huge": {**good_snapshot(), "turns": 2**60},
    "cpu NaN": {**good_snapshot(), "cpu_percent": float("nan")},
    "histogram garbage": {**good_snapshot(), "media_clock_lag": b"garbage"},
    "live turns a string": {**good_snapshot(), "live_turns": "turns"},
    "live turn negative latency": {**good_snapshot(), "live_turns": [
        {**good_snapshot()["live_turns"][0], "latency_ns": -1}]},
    "live turn of another scenario": {**good_snapshot(), "live_turns": [
        {**good_snapshot()["live_turns"][0], "scenario": "spam"}]},
    "live calls a string": {**good_snapshot(), "live_calls": "calls"},
    "live call negative greeting": {**good_snapshot(), "live_calls": [
        {**good_snapshot()["live_calls"][0], "greeting_ns": -1}]},
    "live call without setup_ns": {**good_snapshot(), "live_calls": [
        {k: v for k, v in good_snapshot()["live_calls"][0].items() if k != "setup_ns"}]},
    "live call of another transport": {**good_snapshot(), "live_calls": [
        {**good_snapshot()["live_calls"][0], "transport": "sip"}]},
    "open not a mapping": {**good_snapshot(), "open": 5},
}


@pytest.mark.parametrize("name", sorted(BAD_SNAPSHOTS))
def test_bad_snapshots_are_refused(name: str) -> None:
    with pytest.raises(WireError):
        snapshot_from_wire(BAD_SNAPSHOTS[name], scenarios={"order"}, transports={"twilio"})


def test_the_aggregate_counts_and_drops_what_it_refuses(tmp_path, caplog) -> None:
    agg = Aggregate(tmp_path, saturation_lag_ms=5.0, scenarios={"order"},
                    transports={"twilio"})
    agg.update_node("w1", good_snapshot())
    bad = list(BAD_RECORDS.values())
    agg.add_report("w1", {"records": [good_record("a"), *bad, good_record("b")],
                          "node": good_snapshot()})
    agg.add_report("w1", {"records": "a string", "node": BAD_SNAPSHOTS["histogram garbage"]})
    agg.add_report("w2", "not a report")
    agg.add_report("w3", {"records": [], "node": {}, "extra": 1})
    for snap in BAD_SNAPSHOTS.values():
        agg.update_node("w4", snap)
    # everything still works: /metrics, the summary, the files
    text = generate_latest(make_registry(agg)).decode()
    assert 'loadcaller_calls_total{outcome="completed"} 2.0' in text
    summary = agg.summary({})
    agg.close()
    swarm = summary["swarm"]
    assert swarm["rejected_records"] == len(bad) + 1  # and the string where a list was due
    assert swarm["rejected_snapshots"] == 1 + 1 + 1 + len(BAD_SNAPSHOTS)
    assert list(swarm["processes"]) == ["w1"]  # no made-up process got in
    assert swarm["processes"]["w1"]["records_received"] == 2
    assert summary["calls"]["finished"] == 2
    assert [c["call_id"] for c in read_jsonl(tmp_path / "calls.jsonl")] == ["a", "b"]
    warnings = [r for r in caplog.records if "rejected a" in r.getMessage()]
    assert 1 <= len(warnings) <= 20  # warned, but never a flood


def test_a_turn_seen_live_twice_is_counted_once(tmp_path) -> None:
    agg = Aggregate(None, saturation_lag_ms=5.0)
    live = good_snapshot()["live_turns"][0]
    agg.add_live_turns([live])
    agg.add_live_turns([live])  # a snapshot whose ship failed, sent again
    agg.add_records("w1", [with_(good_record("c9"), turns=[good_record()["turns"][0]])])
    assert sum(agg.turn_outcomes.values()) == 1


def test_a_set_up_seen_live_twice_is_counted_once(tmp_path) -> None:
    agg = Aggregate(None, saturation_lag_ms=5.0)
    live = good_snapshot()["live_calls"][0]
    agg.add_live_calls([live])
    agg.add_live_calls([live])  # a snapshot whose ship failed, sent again
    agg.add_records("w1", [with_(good_record("c9"), setup_ns=live["setup_ns"])])
    assert sum(agg.setup[("twilio",)].counts) == 1
