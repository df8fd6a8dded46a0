"""Malformed and random input never breaks the sans-I/O cores, and the CLI runs for real."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chaos.config import parse_config, parse_fault
from chaos.drift import apply_patch, compile_ops
from chaos.errors import ConfigError
from chaos.faults.schema_drift import SchemaDriftParams, drift_json
from chaos.sse import SseSplitter

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["a", "b", "c", "id"]), children, max_size=4),
    max_leaves=20,
)
OPS = ["rename", "remove", "set_null", "retype", "add_field", "enum_drift", "empty_array",
       "wrap_list", "stringify"]
PATHS = ["$", "$.a", "$..a", "$.b[*]", "$.*", "$.a[0].b", "$..id", "$['c']"]


@given(json_values, st.sampled_from(OPS), st.sampled_from(PATHS))
def test_drift_never_crashes_and_only_touches_selected_values(doc, op, path):
    ops = compile_ops(doc, op, path, to="x" if op != "retype" else "string", key="k", value=1)
    out = apply_patch(doc, ops)
    json.dumps(out)  # still JSON
    if not ops:
        assert out == doc


@given(st.binary(max_size=300))
def test_drift_on_arbitrary_bytes(body):
    params = SchemaDriftParams(op="remove", path="$.a")
    result = drift_json(body, params)
    assert result is None or isinstance(json.loads(result), dict | list)


@given(st.lists(st.binary(max_size=40), max_size=20))
def test_sse_splitter_loses_no_bytes(chunks):
    splitter = SseSplitter()
    events = [e for c in chunks for e in splitter.feed(c)]
    assert b"".join(events) + splitter.rest() == b"".join(chunks)


scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.floats(-1, 2) | st.sampled_from(
    ["latency", "status", "schema_drift", "udp_loss", "1s", "x", "$.a"])


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(["type", "probability", "at", "delay", "route",
                                        "match", "ramp", "every_nth", "status", "op"]),
                       scalars | st.lists(scalars, max_size=2), max_size=6))
def test_random_fault_entries_give_config_errors_not_crashes(entry):
    try:
        parse_fault(entry)
    except ConfigError as e:
        assert e.issues and all(i.message for i in e.issues)


@given(json_values)
def test_random_configs_give_config_errors_not_crashes(data):
    with pytest.raises(ConfigError):
        parse_config(data)


def test_same_seed_same_fault_rngs():
    from chaos.wrapper import fault_rng

    spec = parse_fault({"type": "reset", "name": "x"})
    assert fault_rng(spec, 5).random() == fault_rng(spec, 5).random()
    assert fault_rng(spec, 5).random() != fault_rng(spec, 6).random()
    assert isinstance(fault_rng(spec, None), random.Random)


def test_cli_serves_then_stops_cleanly_on_sigterm(tmp_path):
    config = tmp_path / "chaos.yaml"
    config.write_text(
        "routes:\n"
        "  - {name: api, kind: http, listen: '127.0.0.1:0', upstream: 'http://127.0.0.1:9'}\n"
        "faults:\n"
        "  - {type: status, name: teapot, status: 418}\n"
        "control: {listen: '127.0.0.1:0', token: t0k}\n")
    proc = subprocess.Popen([sys.executable, "-m", "chaos.cli", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        addresses = dict(line.split()[1:5:3] for line in lines[:2])
        assert "active faults: teapot" in lines[2]
        api, control = addresses["api"], addresses["control"]
        assert httpx.get(f"http://{api}/x").status_code == 418
        assert httpx.get(f"http://{control}/faults").status_code == 401
        r = httpx.get(f"http://{control}/faults", headers={"Authorization": "Bearer t0k"})
        assert r.json()["faults"][0]["injected"] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and time.monotonic() - started < 5
    assert "Traceback" not in err


def _events_at_once(data: bytes) -> tuple[list[bytes], bytes]:
    splitter = SseSplitter()
    return splitter.feed(data), splitter.rest()


@given(st.lists(st.sampled_from([b"data: x", b"\n", b"\r", b"\r\n", b"y", b":"]),
                max_size=40), st.data())
def test_sse_splitter_cuts_the_same_events_whatever_the_chunking(parts, data):
    stream = b"".join(parts)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    splitter = SseSplitter()
    events = [e for c in chunks for e in splitter.feed(c)]
    assert (events, splitter.rest()) == _events_at_once(stream)


def test_sse_splitter_searches_each_byte_a_bounded_number_of_times(monkeypatch):
    # was: the whole buffer searched (and copied) again on every chunk: a 5 MB event
    # in 1 KB pieces blocked the event loop, every route of the proxy, for minutes
    import chaos.sse

    searched = []

    class Counting:
        def __init__(self, pattern):
            self.pattern = pattern

        def search(self, buffer, pos=0):
            searched.append(len(buffer) - pos)
            return self.pattern.search(buffer, pos)

    monkeypatch.setattr(chaos.sse, "_SEPARATOR", Counting(chaos.sse._SEPARATOR))
    splitter = SseSplitter()
    total = 0
    for _ in range(2000):
        chunk = b"data: " + b"x" * 500  # one long event, never ended
        total += len(chunk)
        assert splitter.feed(chunk) == []
    assert sum(searched) < 2 * total
    events = splitter.feed(b"\n\n")
    assert len(events) == 1 and len(events[0]) == total + 2
