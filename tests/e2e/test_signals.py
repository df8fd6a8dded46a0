"""Ctrl-C / SIGTERM: every call sends Twilio `stop`, the summary is written, exit 130/143."""

from __future__ import annotations

import json
import signal

import pytest
from websockets.asyncio.server import ServerConnection, serve

from .conftest import read_jsonl, run_cli, write_profile


class Recorder:
    """An agent that records which streams started and which were stopped."""

    def __init__(self) -> None:
        self.started: set[str] = set()
        self.stopped: set[str] = set()

    async def handle(self, ws: ServerConnection) -> None:
        async for raw in ws:
            msg = json.loads(raw)
            if msg["event"] == "start":
                self.started.add(msg["streamSid"])
            elif msg["event"] == "stop":
                self.stopped.add(msg["streamSid"])


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
async def test_signal_stops_every_call_and_writes_the_summary(tmp_path, sig, code):
    rec = Recorder()
    server = await serve(rec.handle, "127.0.0.1", 0)
    port = next(iter(server.sockets)).getsockname()[1]
    try:
        profile = write_profile(tmp_path / "p.yaml", url=f"ws://127.0.0.1:{port}/media",
                                users=6, duration="60s", turn_timeout="30s")
        out = tmp_path / "r"
        rc, _, err = await run_cli("run", str(profile), "--results-dir", str(out),
                                   "--progress-every", "0", timeout=90,
                                   signal_after=(lambda: len(rec.started) >= 6, sig))
    finally:
        server.close()
    assert rc == code, err
    assert "Traceback" not in err
    assert len(rec.started) >= 6
    assert rec.stopped == rec.started  # every call said stop before hanging up
    summary = json.loads((out / "summary.json").read_text())
    calls = read_jsonl(out / "calls.jsonl")
    assert len(calls) == len(rec.started)
    assert {c["outcome"] for c in calls} == {"cancelled"}
    assert summary["calls"]["cancelled"] == len(calls)
