"""A rogue on the master's worker port: Locust's own RPC client sending malformed reports.

Used by test_rogue_worker.py as ``python tests/swarm/rogue_worker.py PORT``. It
connects to a running master's port as Locust workers do (ZeroMQ DEALER,
msgpack ``Message``), sends ``stats`` reports whose Locust part is valid and
whose loadcaller part is malformed in every way we could think of, then
malformed messages of Locust's own kinds; waits for ZeroMQ to hand them over
and prints ``{"records": N, "snapshots": M, "messages": K}``: how many of each
the master should have counted.
"""

from __future__ import annotations

import base64
import json
import os
import struct
import sys
import zlib
from typing import Any

os.environ["LOCUST_SKIP_MONKEY_PATCH"] = "1"  # nothing here needs gevent's patching

from locust.rpc.protocol import Message
from locust.rpc.zmqrpc import Client
from locust.stats import RequestStats

T0 = 10**12


def record(**changes: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "call_id": "rogue-1", "transport": "twilio", "scenario": "quick", "outcome": "completed",
        "reason": "done", "remote_id": "", "t_start_ns": T0, "t_end_ns": T0 + 10**9,
        "setup_ns": 10**6, "greeting_ns": 10**8, "media": None,
        "turns": [{"index": 0, "outcome": "answered", "t_speech_end_ns": T0 + 10**8,
                   "t_reply_onset_ns": T0 + 2 * 10**8, "overlap": False, "faults": []}]}
    rec.update(changes)
    return rec


def turn(**changes: Any) -> dict[str, Any]:
    return record(turns=[{**record()["turns"][0], **changes}])


def bomb() -> bytes:
    """A histogram header over 50 MB of zeros, compressed to a few tens of kB."""
    header = struct.pack(">IIIIQQd", 0x1C849303, 0, 0, 3, 1, 3_600_000_000, 1.0)
    payload = zlib.compress(header + bytes(50 * 1024 * 1024), 9)
    return base64.b64encode(struct.pack(">II", 0x1C849304, len(payload)) + payload)


BAD_RECORDS = [
    "not a record",
    {k: v for k, v in record().items() if k != "outcome"},  # a field missing
    record(call_id=12345),  # wrong type
    record(setup_ns=2**64 - 1),  # huge
    record(t_end_ns=1e308),  # a float for an instant
    record(greeting_ns=-1),  # negative
    turn(t_reply_onset_ns=T0),  # reply before the caller's end: negative latency
    record(injected="x"),  # unknown key
    record(turns="0,1,2"),  # a string where a list is expected
    record(scenario="label-bomb-" + "x" * 40),  # not this run's scenario
    record(outcome="hacked"),
    record(media={"packets_sent": "lots"}),
]

BAD_SNAPSHOTS = [
    {"started": "3", "finished": -1},
    {"media_clock_lag": b"not a histogram"},
    {"media_clock_lag": bomb()},
    {"started": 1, "live_turns": [{"call_id": "x", "scenario": "quick", "transport": "twilio",
                                    "index": 0, "outcome": "answered", "latency_ns": -5}]},
    {"cpu_percent": float("inf")},
    {"unknown": 1},
]

BAD_MESSAGES = [
    ("client_ready", 5),  # a version that is not a string
    ("exception", None),  # no msg, no traceback
    ("locustfile", []),
]


def main() -> None:
    port = int(sys.argv[1])
    identity = f"rogue_{os.getpid()}"
    client = Client("127.0.0.1", port, identity)
    locust_part = {"stats": [], "stats_total": RequestStats().total.serialize(), "errors": {},
                   "user_classes_count": {}, "user_count": 0}
    payloads: list[Any] = [{"records": BAD_RECORDS}]
    payloads += [{"records": [], "node": snap} for snap in BAD_SNAPSHOTS]
    payloads += [{"records": "a string, not a list"},  # one more bad record (batch)
                 "not a payload",  # one more bad snapshot (the whole report)
                 {"records": [], "node": None, "extra": True}]  # and another
    for payload in payloads:
        client.send(Message("stats", {**locust_part, "loadcaller": payload}, identity))
    # and Locust's own messages, malformed: each would end the master's listener
    for kind, data in BAD_MESSAGES:
        client.send(Message(kind, data, identity))
    context = client.socket.context
    client.close(linger=10_000)
    context.term()  # returns once ZeroMQ handed everything over (or after the linger)
    print(json.dumps({"records": len(BAD_RECORDS) + 1, "snapshots": len(BAD_SNAPSHOTS) + 2,
                      "messages": len(BAD_MESSAGES)}))


if __name__ == "__main__":
    main()
