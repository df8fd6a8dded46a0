"""Bad input from the agent: every call gets a classified outcome with a reason,
the run goes on, nothing already measured is lost, and a run whose calls all
failed exits 1 saying why in its last line (tests/e2e/test_hostile_agents.py
has the agents that attack the caller itself)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from loadcaller.audio.pack import load_pack_audio
from loadcaller.calls.utterance import make_utterance

from .conftest import read_jsonl, run_cli, write_profile

GREETING = load_pack_audio("agent_greeting")
# write_profile's scenario: wait for the greeting, then say hello_order first
FIRST_PHRASE = make_utterance("hello_order", load_pack_audio("hello_order"))
FRAMES_AFTER_TURN = 5  # 100 ms more of the caller's media: its turn is on record by then
TURN_DEADLINE_S = 30.0  # greeting 3.6 s + hangover + phrase 1.9 s, on a busy machine
# these runs are about the calls' failures: a busy machine must not turn their 1 into a 3
CALM = ("--saturation-lag-ms", "1000")


async def _read_start(ws: ServerConnection) -> str:
    async for raw in ws:
        msg = json.loads(raw)
        if msg["event"] == "start":
            return str(msg["streamSid"])
    return ""


async def _greet(ws: ServerConnection, sid: str) -> None:
    payload = base64.b64encode(GREETING).decode()
    await ws.send(json.dumps({"event": "media", "streamSid": sid, "media": {"payload": payload}}))


async def silent(ws: ServerConnection) -> None:
    async for _ in ws:
        pass


async def _heard_first_turn(ws: ServerConnection) -> bool:
    """Wait until the caller has sent the last frame of its first phrase (and a few
    frames more): the turn was spoken, and the agent has not answered it.

    On a miss (TURN_DEADLINE_S, or the caller hung up) the line is closed with
    4000, which no case expects, so the test fails saying so.
    """
    last = FIRST_PHRASE.frames[-1]
    after: int | None = None
    try:
        async with asyncio.timeout(TURN_DEADLINE_S):
            async for raw in ws:
                msg = json.loads(raw)
                if msg.get("event") != "media":
                    continue
                if after is not None:
                    after += 1
                elif base64.b64decode(msg["media"]["payload"]) == last:
                    after = 0
                if after is not None and after >= FRAMES_AFTER_TURN:
                    return True
    except (TimeoutError, ConnectionClosed):
        pass
    await ws.close(4000, "test agent: never heard the caller's first phrase end")
    return False


async def greet_then_close_1011(ws: ServerConnection) -> None:
    sid = await _read_start(ws)
    await _greet(ws, sid)
    if await _heard_first_turn(ws):
        await ws.close(1011, "internal error")


async def greet_then_hang_up(ws: ServerConnection) -> None:
    sid = await _read_start(ws)
    await _greet(ws, sid)
    if await _heard_first_turn(ws):
        await ws.close(1000, "bye")


async def greet_then_vanish(ws: ServerConnection) -> None:
    sid = await _read_start(ws)
    await _greet(ws, sid)
    if await _heard_first_turn(ws):
        ws.transport.abort()


async def malformed_json(ws: ServerConnection) -> None:
    await _read_start(ws)
    await ws.send("{this is not json")
    async for _ in ws:
        pass


async def binary_frames(ws: ServerConnection) -> None:
    await _read_start(ws)
    await ws.send(b"\x00\x01\x02 binary audio")
    async for _ in ws:
        pass


Handler = Callable[[ServerConnection], Awaitable[None]]


async def _serve(handler: Handler, status: int | None = None) -> tuple[object, str]:
    def reject(conn, request):
        return conn.respond(status, "go away\n") if status else None

    server = await serve(handler, "127.0.0.1", 0, process_request=reject)
    port = next(iter(server.sockets)).getsockname()[1]
    return server, f"ws://127.0.0.1:{port}/media"


CASES = [
    # handler, reject status, call outcome, reason contains, greeting heard
    (silent, None, "no_response", "timed out", False),
    (greet_then_close_1011, None, "dropped", "1011", True),
    (greet_then_hang_up, None, "agent_hangup", "1000", True),
    (greet_then_vanish, None, "dropped", "connection lost", True),
    (malformed_json, None, "error", "malformed JSON", False),
    (binary_frames, None, "error", "binary", False),
    (silent, 403, "failed_setup", "HTTP 403", False),
    (silent, 500, "failed_setup", "HTTP 500", False),
]


@pytest.fixture
async def server_factory() -> AsyncIterator[Callable[..., Awaitable[tuple[object, str]]]]:
    servers = []

    async def make(handler: Handler, status: int | None) -> tuple[object, str]:
        server, url = await _serve(handler, status)
        servers.append(server)
        return server, url

    yield make
    for s in servers:
        s.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize(("handler", "status", "outcome", "reason", "greeted"), CASES,
                         ids=[f"{c[0].__name__}-{c[1] or 'ws'}" for c in CASES])
async def test_misbehaving_agent_gives_classified_outcomes(tmp_path, server_factory, handler,
                                                           status, outcome, reason, greeted):
    _, url = await server_factory(handler, status)
    profile = write_profile(tmp_path / "p.yaml", url=url, users=2, duration="3s",
                            turn_timeout="2s")
    out = tmp_path / "r"
    code, _, err = await run_cli("run", str(profile), "--results-dir", str(out),
                                 "--progress-every", "0", *CALM, timeout=120)
    assert code == 1, err  # every call failed
    assert "Traceback" not in err
    # calls still in progress when the run ended are hung up: "cancelled", not the agent's fault
    calls = [c for c in read_jsonl(out / "calls.jsonl") if c["outcome"] != "cancelled"]
    assert len(calls) >= 2
    for call in calls:
        assert call["outcome"] == outcome, call
        assert reason in call["reason"], call
        assert (call["greeting_ms"] is not None) == greeted, call
    summary = json.loads((out / "summary.json").read_text())
    assert summary["calls"]["failed"] == len(calls)
    assert summary["calls"]["outcomes"][outcome] == len(calls)
    last = err.strip().splitlines()[-1]
    assert last == f"loadcaller: {summary['failure']}"
    if outcome == "failed_setup":
        assert last.startswith(f"loadcaller: no call connected: {len(calls)} failed_setup: ")
    else:
        assert f"{len(calls)} of {len(calls)} calls failed (100% > --max-failed-ratio 0.5)" in last
    assert reason in last
    if outcome in ("dropped", "agent_hangup"):
        # the first turn was spoken and then the line died: it is kept, classified
        turns = read_jsonl(out / "turns.jsonl")
        assert turns and {t["outcome"] for t in turns} == {outcome}
        assert all(t["latency_ms"] is None for t in turns)


async def test_nothing_listening_is_a_setup_failure_the_run_goes_on_and_exits_1(tmp_path):
    profile = write_profile(tmp_path / "p.yaml", url="ws://127.0.0.1:9/media", users=2,
                            duration="3s")
    out = tmp_path / "r"
    code, _, err = await run_cli("run", str(profile), "--results-dir", str(out),
                                 "--progress-every", "0", *CALM, timeout=60)
    assert code == 1, err  # it used to exit 0, "done and trustworthy"
    calls = [c for c in read_jsonl(out / "calls.jsonl") if c["outcome"] != "cancelled"]
    assert len(calls) >= 4  # users redial (with a back-off) for the whole duration
    assert all(c["outcome"] == "failed_setup" and "refused" in c["reason"] for c in calls)
    assert err.strip().splitlines()[-1].startswith(
        f"loadcaller: no call connected: {len(calls)} failed_setup: connect to 127.0.0.1:9 "
        "failed: ")
