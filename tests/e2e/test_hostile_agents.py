"""Hostile agents: one small server per behaviour, all attacking one caller process at once.

Each behaviour ends its calls with a classified outcome and a reason; the
caller's memory stays bounded however much the agent sends, or refuses to
read; and calls to a well-behaved agent (the reference agent) placed by the
same process at the same time complete, answered.

The servers run here, in the test process; the caller runs in a child process
(:func:`caller_main`, an :class:`~loadcaller.engine.Engine` per agent, all on one
event loop), so that the RSS read from its ``/proc/self/status`` is the caller's
own. The peak (``VmHWM``) is reset (``clear_refs``) just before the first call,
so the growth measured is what the calls cost. Each agent gets two calls one
after the other: the first failure does not stop the next call.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from .conftest import ROOT, write_profile
from .test_bad_agents import GREETING, _greet, _read_start, _serve, binary_frames, silent

CALLS_PER_AGENT = 2
CALL_TIMEOUT_S = 25.0  # a call still going after this is cut (and shows as cancelled)
RSS_GROWTH_BOUND_MIB = 16  # all agents at once (7 MiB here); unbounded, 50+ MiB

pytestmark = pytest.mark.timeout(180)

Handler = Callable[[ServerConnection], Awaitable[None]]


def _media(sid: str, payload: bytes) -> str:
    b64 = base64.b64encode(payload).decode()
    return json.dumps({"event": "media", "streamSid": sid, "media": {"payload": b64}})


def _quiet(handler: Handler) -> Handler:
    """The caller hanging up on a hostile agent is the point: no noise about it."""

    async def run(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            await handler(ws)

    run.__name__ = handler.__name__
    return run


# ---- the behaviours --------------------------------------------------------------


async def audio_flood(ws: ServerConnection) -> None:
    """Twenty minutes of audio as fast as the socket takes it (about 13 MB of JSON)."""
    sid = await _read_start(ws)
    second = (GREETING * 3)[:8000]
    message = _media(sid, second)
    for _ in range(20 * 60):
        await ws.send(message)
    await silent(ws)


async def mark_flood(ws: ServerConnection) -> None:
    """Five seconds of audio, then 50,000 marks queued behind it."""
    sid = await _read_start(ws)
    await ws.send(_media(sid, (GREETING * 2)[:40_000]))
    for i in range(50_000):
        await ws.send(json.dumps({"event": "mark", "streamSid": sid, "mark": {"name": f"m{i}"}}))
    await silent(ws)


async def huge_message(ws: ServerConnection) -> None:
    """One media message of 5 MiB (websockets' limit on the caller is 4 MiB)."""
    sid = await _read_start(ws)
    await ws.send(_media(sid, b"\xff" * (5 * 2**20 * 3 // 4)))
    await silent(ws)


async def never_reads(ws: ServerConnection) -> None:
    """Reads nothing after ``start`` but sends marks, whose echoes pile up at the caller.

    The caller's own media (15 kB/s) would take minutes to fill the kernel's socket
    buffers (about 4 MB on loopback); the echoes of these marks fill them in seconds.
    """
    sid = await _read_start(ws)
    name = "x" * 800
    for i in range(20_000):
        await ws.send(json.dumps({"event": "mark", "streamSid": sid,
                                  "mark": {"name": f"{i}-{name}"}}))
        if i % 50 == 0:
            await asyncio.sleep(0.005)  # no more marks pending at once than a real agent's
    await asyncio.sleep(CALL_TIMEOUT_S)


async def unknown_event(ws: ServerConnection) -> None:
    sid = await _read_start(ws)
    await ws.send(json.dumps({"event": "transfer", "streamSid": sid, "to": "+15550100"}))
    await silent(ws)


async def invalid_base64(ws: ServerConnection) -> None:
    sid = await _read_start(ws)
    await ws.send(json.dumps({"event": "media", "streamSid": sid,
                              "media": {"payload": "this is not base64!"}}))
    await silent(ws)


async def invalid_utf8(ws: ServerConnection) -> None:
    """A text frame that is not UTF-8: the websocket protocol itself is broken."""
    await _read_start(ws)
    await ws.send(b'{"event": "media", "\xff\xfe"}', text=True)
    await silent(ws)


async def deep_json(ws: ServerConnection) -> None:
    """Valid JSON nested deeper than the caller's interpreter recurses (10 kB)."""
    await _read_start(ws)
    await ws.send('{"event": "media", "x": ' + "[" * 5000 + "]" * 5000 + "}")
    await silent(ws)


async def no_close_frame(ws: ServerConnection) -> None:
    """Greets, then ends the TCP stream (FIN) without a websocket close frame."""
    sid = await _read_start(ws)
    await _greet(ws, sid)
    await asyncio.sleep(0.5)
    ws.transport.write_eof()
    await silent(ws)


async def _slowloris(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reads the upgrade request, then dribbles a 101 response a byte every 250 ms."""
    try:
        await reader.readuntil(b"\r\n\r\n")
        for byte in b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n":
            if writer.is_closing():
                return
            writer.write(bytes([byte]))
            await asyncio.sleep(0.25)
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


# ---- servers ---------------------------------------------------------------------


async def _serve_never_reading(handler: Handler) -> tuple[Server, str]:
    """A websockets server with a small receive buffer that stops reading at once."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # inherited by accepted sockets
    sock.bind(("127.0.0.1", 0))
    server = await serve(_quiet(handler), sock=sock, max_queue=1)
    return server, f"ws://127.0.0.1:{sock.getsockname()[1]}/media"


async def _serve_raw(handler: Any) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"ws://127.0.0.1:{port}/media"


async def _serve_good() -> tuple[Any, str]:
    from loadcaller.agent.dist import parse_distribution
    from loadcaller.agent.server import ReferenceAgent
    from loadcaller.agent.session import AgentConfig

    agent = ReferenceAgent(AgentConfig(think=parse_distribution("100ms"),
                                       greeting_delay=parse_distribution("0ms")), seed=1)
    server, port = await agent.start("127.0.0.1", 0)
    return (server, agent), f"ws://127.0.0.1:{port}/media"


@dataclass(frozen=True)
class Case:
    name: str
    outcome: str
    reason: str  # the reason contains this (case-insensitive)
    target: str = ""  # extra target fields, YAML flow style


CASES = [
    Case("audio_flood", "error", "faster than real time"),
    Case("mark_flood", "error", "marks"),
    Case("huge_message", "error", "message too big"),
    Case("never_reads", "error", "not reading"),
    Case("binary_frames", "error", "binary"),
    Case("unknown_event", "error", "unknown event"),
    Case("invalid_base64", "error", "not base64"),
    Case("invalid_utf8", "error", "utf-8"),
    Case("deep_json", "error", "nested too deeply"),
    Case("no_close_frame", "dropped", "without a close frame"),
    Case("reject_403", "failed_setup", "HTTP 403"),
    Case("reject_500", "failed_setup", "HTTP 500"),
    Case("accept_then_silence", "no_response", "waits for the agent timed out"),
    Case("slowloris", "failed_setup", "no websocket upgrade within 2s", "setup_timeout: 2s"),
]
GOOD = Case("good", "completed", "scenario finished")


async def _start(case: Case) -> tuple[Any, str]:
    name = case.name
    if name == "never_reads":
        return await _serve_never_reading(never_reads)
    if name == "slowloris":
        return await _serve_raw(_slowloris)
    if name == "good":
        return await _serve_good()
    if name.startswith("reject_"):
        return await _serve(silent, int(name.split("_")[1]))
    handler = {"accept_then_silence": silent, "binary_frames": binary_frames}.get(name)
    return await _serve(_quiet(handler or globals()[name]), None)


async def _stop(server: Any) -> None:
    if isinstance(server, tuple):  # the reference agent
        server[0].close()
        await server[1].close()
        return
    server.close()


# ---- the caller process ----------------------------------------------------------


def _memory_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")


def caller_main() -> None:
    """Child process: place every agent's calls at once; print records and memory as JSON."""
    import uvloop

    plan = json.loads(sys.argv[1])
    print(json.dumps(uvloop.run(_place_all(plan))))


async def _place_all(plan: dict[str, Any]) -> dict[str, Any]:
    import gc

    from loadcaller.calls.call import CallRecord
    from loadcaller.calls.results import call_line
    from loadcaller.compile import compile_profile
    from loadcaller.engine import Engine
    from loadcaller.profile import load_profile

    records: list[dict[str, Any]] = []
    engines: dict[str, Engine] = {}
    for name, path in plan["profiles"].items():
        engine = Engine(compile_profile(load_profile(Path(path))), None)

        def keep(rec: CallRecord, name: str = name) -> None:
            records.append({**call_line(rec), "case": name})

        engine.on_call_end.append(keep)
        engines[name] = engine
    escaped: list[str] = []

    async def calls(name: str, engine: Engine) -> None:
        for i in range(plan["calls"]):
            try:
                async with asyncio.timeout(plan["call_timeout"]):
                    await engine.place_call(f"{name}-{i}")
            except TimeoutError:
                pass
            except Exception as exc:  # the engine must never let one out
                escaped.append(f"{name}: {type(exc).__name__}: {exc}")

    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS from here on
    base = _memory_kib("VmRSS")
    await asyncio.gather(*(calls(name, engine) for name, engine in engines.items()))
    peak = _memory_kib("VmHWM")
    for engine in engines.values():
        await engine.close()
    return {"records": records, "escaped": escaped, "rss_base_kib": base, "rss_peak_kib": peak}


# ---- the attack ------------------------------------------------------------------


async def _attack(tmp: Path) -> dict[str, Any]:
    servers = []
    profiles = {}
    try:
        for case in [*CASES, GOOD]:
            server, url = await _start(case)
            servers.append(server)
            path = write_profile(tmp / f"{case.name}.yaml", url=url, turn_timeout="2s", turns=1)
            if case.target:
                text = path.read_text().replace(f'url: "{url}"', f'url: "{url}", {case.target}')
                path.write_text(text)
            profiles[case.name] = str(path)
        plan = {"profiles": profiles, "calls": CALLS_PER_AGENT, "call_timeout": CALL_TIMEOUT_S}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c",
            "from tests.e2e.test_hostile_agents import caller_main; caller_main()",
            json.dumps(plan), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL)
        out, err = await asyncio.wait_for(proc.communicate(), 150)
    finally:
        for server in servers:
            await _stop(server)
    assert proc.returncode == 0, err.decode()[-5000:]
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    result["stderr"] = err.decode()
    return result


@pytest.fixture(scope="module")
def attack(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return asyncio.run(_attack(tmp_path_factory.mktemp("hostile")))


def _calls(attack: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [r for r in attack["records"] if r["case"] == name]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_hostile_agent_gets_a_classified_outcome_with_a_reason(attack, case):
    calls = _calls(attack, case.name)
    assert len(calls) == CALLS_PER_AGENT, (calls, attack["escaped"])
    for call in calls:
        assert call["outcome"] == case.outcome, call
        assert case.reason.lower() in call["reason"].lower(), call


def test_no_exception_escapes_and_nothing_is_logged_as_a_traceback(attack):
    assert attack["escaped"] == []
    assert "Traceback" not in attack["stderr"], attack["stderr"][-5000:]


def test_the_caller_s_memory_stays_bounded_under_every_attack_at_once(attack):
    growth_mib = (attack["rss_peak_kib"] - attack["rss_base_kib"]) / 1024
    assert growth_mib < RSS_GROWTH_BOUND_MIB, f"caller RSS grew {growth_mib:.1f} MiB"


def test_calls_to_a_good_agent_complete_while_the_others_attack(attack):
    calls = _calls(attack, GOOD.name)
    assert [c["outcome"] for c in calls] == ["completed"] * CALLS_PER_AGENT, calls
    assert all(c["turns_answered"] == 1 and c["greeting_ms"] is not None for c in calls), calls
