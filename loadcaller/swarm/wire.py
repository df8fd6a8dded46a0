"""What workers and the master say to each other beyond Locust's own messages.

A worker's ``report_to_master`` data carries, under :data:`PAYLOAD_KEY`::

    {"records": [call record, ...],   # finished since the last report, each once
     "node": {...}}                   # the worker's cumulative snapshot (may be absent)

and the master sends :data:`HANGUP_NOW` before ``stop`` when the run is
interrupted, so workers skip the grace period and hang up at once.

The master's port takes messages from anyone who can reach it (Locust's
protocol has no authentication), so everything that arrives is checked here
before it is counted: known fields only, each of its type and within its
range, strings of bounded length, histograms that decode to the layout ours
have (bounded decompression first: a few kilobytes must not inflate to
gigabytes). A bad record or snapshot raises :class:`WireError`; the
aggregate counts it, warns and drops it, and the run goes on.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import math
import signal
import struct
import zlib
from collections.abc import Collection
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

from loadcaller.calls.call import CallRecord
from loadcaller.calls.histogram import Histogram
from loadcaller.calls.measure import TurnResult
from loadcaller.calls.stretches import Stretch
from loadcaller.media.outcomes import BargeInOutcome, CallOutcome, TurnOutcome

PAYLOAD_KEY = "loadcaller"
HANGUP_NOW = "loadcaller_hangup_now"
# what a master sends the workers it forked when HANGUP_NOW cannot be read (a worker
# reads no message while it waits out the calls' grace)
HANGUP_SIGNAL = signal.SIGUSR1

MAX_INSTANT_NS = 2**63 - 1  # perf_counter_ns() instants
MAX_SPAN_NS = 7 * 86_400 * 10**9  # any duration: a week is far beyond any call
MAX_COUNT = 2**53  # counters, histogram totals (exact in a float)
MAX_TURNS = 10_000  # per call
MAX_LIVE_TURNS = 100_000  # per snapshot
MAX_ID = 256  # call ids, remote ids, names
MAX_REASON = 1_000  # longer reasons are cut, not rejected
MAX_FAULTS = 64
MAX_MEDIA_KEYS = 64
MAX_TRANSCRIPTS = 2000  # the agent's texts per call (loadcaller.webrtc.datachannel.MAX_TEXTS)
MAX_BLOB = 256 * 1024  # an encoded histogram, base64
MAX_INFLATED = 2 * 1024 * 1024  # the same, decompressed
MAX_CPU_PERCENT = 100.0 * 4096

CALL_OUTCOMES = frozenset(o.value for o in CallOutcome)
TURN_OUTCOMES = frozenset(o.value for o in TurnOutcome)
HISTOGRAM_KEYS = ("media_clock_lag", "send_jitter", "loop_lag", "hub_lag", "handoff_to_loop",
                  "handoff_to_greenlet")
COUNTER_KEYS = ("started", "finished", "turns", "active", "skipped_ticks", "member_errors",
                "windows_judged", "windows_saturated")
CPU_RATIO_KEYS = ("cpu_ratio_mean", "cpu_ratio_peak")  # the run's, 1 = one core busy
SNAPSHOT_KEYS = frozenset((*HISTOGRAM_KEYS, *COUNTER_KEYS, *CPU_RATIO_KEYS, "cpu_percent",
                           "live_turns", "live_calls", "open", "stretches", "saturated_now",
                           "host_cpu"))
HOST_CPU_RATIOS = frozenset(("busy_mean", "busy_peak", "steal_peak"))
HOST_CPU_KEYS = HOST_CPU_RATIOS | {"cpus"}
MAX_CPUS = 4096
MAX_STRETCHES = 1000  # loadcaller.calls.stretches.MAX_STRETCHES
OPEN_KEYS = frozenset(("scheduled", "started", "missed"))
LIVE_TURN_KEYS = frozenset(("call_id", "scenario", "transport", "index", "outcome",
                            "latency_ns"))
# a call in progress whose set-up or greeting latency is newly known (either may be None)
LIVE_CALL_KEYS = frozenset(("call_id", "scenario", "transport", "setup_ns", "greeting_ns"))
RECORD_FIELDS = frozenset(f.name for f in dataclasses.fields(CallRecord))
RECORD_REQUIRED = frozenset(("call_id", "transport", "scenario", "outcome", "reason"))
TURN_FIELDS = frozenset(f.name for f in dataclasses.fields(TurnResult))
TURN_REQUIRED = frozenset(("index", "outcome", "t_speech_end_ns"))
# media figures that MediaTotals adds up: whole counts
MEDIA_COUNTS = frozenset(("packets_sent", "octets_sent", "packets_received", "packets_expected",
                          "lost", "late", "out_of_order", "duplicates", "malformed", "rtcp",
                          "early_media_packets", "rtp_foreign_source", "dtmf_unsent",
                          "sip_garbage"))


class WireError(ValueError):
    """A record or snapshot from a worker that cannot be trusted (the message says why)."""


# ---- records --------------------------------------------------------------------------


def record_to_wire(rec: CallRecord) -> dict[str, Any]:
    """A call record as plain data for Locust's messages (msgpack)."""
    return dataclasses.asdict(rec)


def record_from_wire(data: Any, *, scenarios: Collection[str] | None = None,
                     transports: Collection[str] | None = None) -> CallRecord:
    """A checked :class:`CallRecord` from a worker's data; :class:`WireError` if bad.

    ``scenarios`` and ``transports``, when given, are the only names accepted
    (the run's own: a label value from elsewhere would be a new Prometheus
    series).
    """
    d = _mapping(data, "record", RECORD_FIELDS, RECORD_REQUIRED)
    t_start = _int(d, "t_start_ns", 0, MAX_INSTANT_NS, default=0)
    t_end = _int(d, "t_end_ns", 0, MAX_INSTANT_NS, default=0)
    if t_end and t_start and not 0 <= t_end - t_start <= MAX_SPAN_NS:
        raise WireError(f"t_end_ns - t_start_ns = {t_end - t_start} is out of range")
    turns_data = d.get("turns", [])
    if not isinstance(turns_data, list):
        raise WireError(f"turns is {type(turns_data).__name__}, not a list")
    if len(turns_data) > MAX_TURNS:
        raise WireError(f"{len(turns_data)} turns (at most {MAX_TURNS})")
    return CallRecord(
        call_id=_str(d, "call_id", MAX_ID),
        transport=_name(d, "transport", transports),
        scenario=_name(d, "scenario", scenarios),
        outcome=_choice(d, "outcome", CALL_OUTCOMES),
        reason=_str(d, "reason", None)[:MAX_REASON],
        remote_id=_str(d, "remote_id", MAX_ID, default=""),
        t_start_ns=t_start,
        t_end_ns=t_end,
        setup_ns=_int(d, "setup_ns", 0, MAX_SPAN_NS, default=None, optional=True),
        greeting_ns=_int(d, "greeting_ns", 0, MAX_SPAN_NS, default=None, optional=True),
        turns=[_turn(t) for t in turns_data],
        media=_media(d.get("media")),
        transcripts=_transcripts(d.get("transcripts")),
        persona=_str(d, "persona", MAX_ID, default=""),
    )


def _turn(data: Any) -> TurnResult:
    d = _mapping(data, "turn", TURN_FIELDS, TURN_REQUIRED)
    end = _int(d, "t_speech_end_ns", 0, MAX_INSTANT_NS)
    onset = _int(d, "t_reply_onset_ns", 0, MAX_INSTANT_NS, default=None, optional=True)
    overlap = d.get("overlap", False)
    if not isinstance(overlap, bool):
        raise WireError(f"turn overlap is {type(overlap).__name__}, not a bool")
    # only a reply that overlapped the caller's speech may begin before its end
    if onset is not None and (onset - end > MAX_SPAN_NS or (onset < end and not overlap)):
        raise WireError(f"turn latency {onset - end} ns is out of range")
    faults = d.get("faults", ())
    if not isinstance(faults, (list, tuple)) or len(faults) > MAX_FAULTS or not all(
            isinstance(f, str) and len(f) <= MAX_ID for f in faults):
        raise WireError("turn faults is not a short list of names")
    saturated = d.get("generator_saturated", False)
    if not isinstance(saturated, bool):
        raise WireError(f"turn generator_saturated is {type(saturated).__name__}, not a bool")
    t_faults = _int(d, "t_faults_ns", 0, MAX_INSTANT_NS, default=None, optional=True)
    if t_faults is not None and not 0 <= t_faults - end <= MAX_SPAN_NS:
        raise WireError(f"turn t_faults_ns is {t_faults - end} ns after its speech end")
    return TurnResult(index=_int(d, "index", 0, MAX_TURNS),
                      outcome=TurnOutcome(_choice(d, "outcome", TURN_OUTCOMES)),
                      t_speech_end_ns=end, t_reply_onset_ns=onset, overlap=overlap,
                      faults=tuple(faults), generator_saturated=saturated,
                      t_faults_ns=t_faults, **_step_fields(d))


STEP_KINDS = frozenset(("say", "barge_in", "silence"))
BARGEIN_OUTCOMES = frozenset(o.value for o in BargeInOutcome)


def _step_fields(d: dict[str, Any]) -> dict[str, Any]:
    """A turn's barge-in, silence and expect: fields, checked."""
    out: dict[str, Any] = {"step": _choice(d, "step", STEP_KINDS) if "step" in d else "say"}
    if d.get("bargein") is not None:
        out["bargein"] = _choice(d, "bargein", BARGEIN_OUTCOMES)
    for key in ("t_bargein_ns", "t_agent_stop_ns", "t_reprompt_ns", "t_cut_in_ns",
                "t_cut_in_after_ns"):
        out[key] = _int(d, key, 0, MAX_INSTANT_NS, default=None, optional=True)
    for key, limit in (("heard_text", MAX_REASON), ("expect_reason", MAX_REASON)):
        value = d.get(key)
        if value is not None and not isinstance(value, str):
            raise WireError(f"turn {key} is {type(value).__name__}, not a string")
        out[key] = None if value is None else value[:limit]
    ok = d.get("expect_ok")
    if ok is not None and not isinstance(ok, bool):
        raise WireError(f"turn expect_ok is {type(ok).__name__}, not a bool")
    out["expect_ok"] = ok
    return out


def _transcripts(data: Any) -> list[tuple[int, str]] | None:
    """The agent's words as (arrival ns, text) pairs (WebRTC's RTVI texts), bounded."""
    if data is None:
        return None
    if not isinstance(data, list) or len(data) > MAX_TRANSCRIPTS:
        raise WireError("transcripts is not a short list")
    out: list[tuple[int, str]] = []
    for item in data:
        if (not isinstance(item, (list, tuple)) or len(item) != 2
                or isinstance(item[0], bool) or not isinstance(item[0], int)
                or not 0 <= item[0] <= MAX_INSTANT_NS or not isinstance(item[1], str)
                or len(item[1]) > MAX_REASON * 2):
            raise WireError("a transcript is not an (instant, short text) pair")
        out.append((item[0], item[1]))
    return out


def _media(data: Any) -> dict[str, Any] | None:
    """A call's media figures: an open set of names (transports add their own), each a
    scalar; the ones :class:`~loadcaller.calls.media_totals.MediaTotals` adds are checked."""
    if data is None:
        return None
    if not isinstance(data, dict) or len(data) > MAX_MEDIA_KEYS:
        raise WireError("media is not a small mapping")
    for key, value in data.items():
        if not isinstance(key, str) or len(key) > 64:
            raise WireError("media has a field name that is not a short string")
        if isinstance(value, str):
            if len(value) > MAX_ID:
                raise WireError(f"media {key} is too long")
        elif isinstance(value, float):
            if not math.isfinite(value) or not -MAX_COUNT <= value <= MAX_COUNT:
                raise WireError(f"media {key} = {value!r} is out of range")
        elif value is not None and not isinstance(value, (bool, int)):
            raise WireError(f"media {key} is {type(value).__name__}, not a scalar")
    for key in MEDIA_COUNTS & data.keys():
        _int(data, key, 0, MAX_COUNT)
    for key in ("mos", "jitter_ms"):
        value = data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not 0 <= value <= MAX_COUNT):
            raise WireError(f"media {key} = {value!r} is out of range")
    return dict(data)


# ---- snapshots --------------------------------------------------------------------------


def snapshot_from_wire(data: Any, *, scenarios: Collection[str] | None = None,
                       transports: Collection[str] | None = None) -> dict[str, Any]:
    """A checked copy of a worker's cumulative snapshot (``CallerNode.snapshot``)."""
    d = _mapping(data, "snapshot", SNAPSHOT_KEYS, frozenset())
    out: dict[str, Any] = {}
    for key in COUNTER_KEYS:
        if key in d:
            out[key] = _int(d, key, 0, MAX_COUNT)
    for key in HISTOGRAM_KEYS:
        if key in d:
            out[key] = check_histogram(d[key], key)
    if "cpu_percent" in d:
        cpu = d["cpu_percent"]
        if (isinstance(cpu, bool) or not isinstance(cpu, (int, float))
                or not 0.0 <= cpu <= MAX_CPU_PERCENT):  # NaN fails both comparisons
            raise WireError(f"cpu_percent = {cpu!r} is out of range")
        out["cpu_percent"] = float(cpu)
    for key in CPU_RATIO_KEYS:
        if key in d:
            ratio = d[key]
            if (isinstance(ratio, bool) or not isinstance(ratio, (int, float))
                    or not 0.0 <= ratio <= MAX_CPU_PERCENT / 100.0):
                raise WireError(f"{key} = {ratio!r} is out of range")
            out[key] = float(ratio)
    if "saturated_now" in d:
        if not isinstance(d["saturated_now"], bool):
            raise WireError("saturated_now is not a bool")
        out["saturated_now"] = d["saturated_now"]
    if "stretches" in d:
        out["stretches"] = _stretches(d["stretches"])
    if "host_cpu" in d:
        host = _mapping(d["host_cpu"], "host_cpu", HOST_CPU_KEYS, HOST_CPU_KEYS)
        for key in HOST_CPU_RATIOS:
            v = host[key]
            if (isinstance(v, bool) or not isinstance(v, (int, float))
                    or not 0.0 <= v <= 1.0):  # NaN fails both comparisons
                raise WireError(f"host_cpu {key} = {v!r} is out of range")
        out["host_cpu"] = {**{k: float(host[k]) for k in HOST_CPU_RATIOS},
                           "cpus": _int(host, "cpus", 1, MAX_CPUS)}
    if d.get("open") is not None:
        o = _mapping(d["open"], "open", OPEN_KEYS, frozenset())
        out["open"] = {k: _int(o, k, 0, MAX_COUNT) for k in o}
    live = d.get("live_turns", [])
    if not isinstance(live, list) or len(live) > MAX_LIVE_TURNS:
        raise WireError("live_turns is not a list of turns")
    out["live_turns"] = [_live_turn(t, scenarios, transports) for t in live]
    calls = d.get("live_calls", [])
    if not isinstance(calls, list) or len(calls) > MAX_LIVE_TURNS:
        raise WireError("live_calls is not a list of calls")
    out["live_calls"] = [_live_call(c, scenarios, transports) for c in calls]
    return out


def _stretches(data: Any) -> list[Stretch]:
    """A process's saturated stretches: [start_ns, end_ns, lag_p99_ns, windows] each."""
    if not isinstance(data, list) or len(data) > MAX_STRETCHES:
        raise WireError(f"stretches is not a list of at most {MAX_STRETCHES}")
    out = []
    for item in data:
        if (not isinstance(item, (list, tuple)) or len(item) != 4
                or any(isinstance(v, bool) or not isinstance(v, int) for v in item)):
            raise WireError("a stretch is not four integers")
        start, end, p99, windows = item
        if not (0 <= start <= end <= MAX_INSTANT_NS and end - start <= MAX_SPAN_NS
                and 0 <= p99 <= MAX_SPAN_NS and 1 <= windows <= MAX_COUNT):
            raise WireError(f"stretch {item[:4]!r} is out of range")
        out.append(Stretch(start, end, p99, windows))
    return out


def _live_of(d: dict[str, Any], scenarios: Collection[str] | None,
             transports: Collection[str] | None) -> dict[str, Any]:
    """Which call in progress a live turn or latency belongs to, checked."""
    return {"call_id": _str(d, "call_id", MAX_ID),
            "scenario": _name(d, "scenario", scenarios),
            "transport": _name(d, "transport", transports)}


def _live_turn(data: Any, scenarios: Collection[str] | None,
               transports: Collection[str] | None) -> dict[str, Any]:
    d = _mapping(data, "live turn", LIVE_TURN_KEYS, LIVE_TURN_KEYS)
    return {**_live_of(d, scenarios, transports),
            "index": _int(d, "index", 0, MAX_TURNS),
            "outcome": _choice(d, "outcome", TURN_OUTCOMES),
            "latency_ns": _int(d, "latency_ns", 0, MAX_SPAN_NS, optional=True)}


def _live_call(data: Any, scenarios: Collection[str] | None,
               transports: Collection[str] | None) -> dict[str, Any]:
    d = _mapping(data, "live call", LIVE_CALL_KEYS, LIVE_CALL_KEYS)
    return {**_live_of(d, scenarios, transports),
            "setup_ns": _int(d, "setup_ns", 0, MAX_SPAN_NS, optional=True),
            "greeting_ns": _int(d, "greeting_ns", 0, MAX_SPAN_NS, optional=True)}


@functools.cache
def _reference_headers() -> tuple[int, tuple[int, int, int, int, int, float]]:
    """The external cookie and the payload header (cookie, offset, digits, lowest,
    highest, ratio) of our own histograms, read off an encoded empty one."""
    raw = base64.b64decode(Histogram().encode())
    cookie, _ = struct.unpack(">II", raw[:8])
    inner = zlib.decompress(raw[8:])
    c, _plen, offset, digits, low, high, ratio = struct.unpack(">IIIIQQd", inner[:40])
    return cookie, (c, offset, digits, low, high, ratio)


def check_histogram(blob: Any, what: str = "histogram") -> bytes:
    """``blob`` if it is one of our encoded histograms with sane counts, else :class:`WireError`.

    The layout is checked on the decompressed header before hdrh allocates
    anything, and decompression stops at :data:`MAX_INFLATED`.
    """
    if not isinstance(blob, bytes):
        raise WireError(f"{what} is {type(blob).__name__}, not bytes")
    if not blob:
        return blob
    if len(blob) > MAX_BLOB:
        raise WireError(f"{what} is {len(blob)} bytes (at most {MAX_BLOB})")
    try:
        raw = base64.b64decode(blob, validate=True)
    except binascii.Error:
        raise WireError(f"{what} is not base64") from None
    cookie, (c, offset, digits, low, high, ratio) = _reference_headers()
    if len(raw) < 8 or struct.unpack(">II", raw[:8]) != (cookie, len(raw) - 8):
        raise WireError(f"{what} has a bad header")
    inflate = zlib.decompressobj()
    try:
        inner = inflate.decompress(raw[8:], MAX_INFLATED)
    except zlib.error:
        raise WireError(f"{what} does not decompress") from None
    if not inflate.eof or inflate.unconsumed_tail or len(inner) < 40:
        raise WireError(f"{what} decompresses to too much or too little")
    got = struct.unpack(">IIIIQQd", inner[:40])
    if (got[0], got[2], got[3], got[4], got[5], got[6]) != (c, offset, digits, low, high,
                                                              ratio) or got[1] != len(inner) - 40:
        raise WireError(f"{what} is not laid out like ours (range, digits or length)")
    try:
        h = HdrHistogram.decode(blob)
        counts = np.ctypeslib.as_array(h.counts)[: h.counts_len]
    except Exception as exc:  # hdrh raises many kinds on bad content
        raise WireError(f"{what} does not decode: {type(exc).__name__}") from None
    if counts.size and (int(counts.min()) < 0 or int(counts.sum(dtype=np.float64)) > MAX_COUNT):
        raise WireError(f"{what} has negative or huge counts")
    return blob


# ---- field checks -------------------------------------------------------------------


def _mapping(data: Any, what: str, known: frozenset[str], required: frozenset[str],
             ) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise WireError(f"{what} is {type(data).__name__}, not a mapping")
    unknown = [k for k in data if k not in known]
    if unknown:
        raise WireError(f"{what} has unknown fields {sorted(map(str, unknown))[:5]}")
    missing = required - data.keys()
    if missing:
        raise WireError(f"{what} lacks {sorted(missing)}")
    return data


_NO_DEFAULT: Any = object()


def _int(d: dict[str, Any], key: str, low: int, high: int, *, default: Any = _NO_DEFAULT,
         optional: bool = False) -> Any:
    value = d.get(key, default)
    if value is _NO_DEFAULT:
        raise WireError(f"{key} is missing")
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise WireError(f"{key} is {type(value).__name__}, not an integer")
    if not low <= value <= high:
        raise WireError(f"{key} = {value} is out of range")
    return value


def _str(d: dict[str, Any], key: str, max_len: int | None, *, default: Any = _NO_DEFAULT) -> str:
    value = d.get(key, default)
    if not isinstance(value, str):
        raise WireError(f"{key} is {type(value).__name__}, not a string")
    if max_len is not None and len(value) > max_len:
        raise WireError(f"{key} is {len(value)} characters (at most {max_len})")
    return value


def _name(d: dict[str, Any], key: str, allowed: Collection[str] | None) -> str:
    value = _str(d, key, MAX_ID)
    if allowed is not None and value not in allowed:
        raise WireError(f"{key} {value[:64]!r} is not one of this run's ({', '.join(allowed)})")
    return value


def _choice(d: dict[str, Any], key: str, allowed: frozenset[str]) -> str:
    value = _str(d, key, MAX_ID)
    if value not in allowed:
        raise WireError(f"{key} {value[:64]!r} is not one of {sorted(allowed)}")
    return value
