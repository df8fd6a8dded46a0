"""The reference agent, driven over a real websocket client as Twilio would."""

from __future__ import annotations

import asyncio
import io
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from loadcaller.agent.backend import start_backend
from loadcaller.agent.dist import parse_distribution
from loadcaller.agent.server import ReferenceAgent
from loadcaller.agent.session import AgentConfig
from loadcaller.audio.pack import load_pack_audio
from loadcaller.calls.utterance import make_utterance
from loadcaller.media.frames import SILENCE_FRAME
from loadcaller.twilio.caller import TwilioCallerStream
from loadcaller.twilio.messages import b64_payload
from loadcaller.twilio.signature import compute_signature

SPEECH = make_utterance("order_number", load_pack_audio("order_number"))
SPEECH_B64 = [b64_payload(f) for f in SPEECH.frames]
SILENCE_B64 = b64_payload(SILENCE_FRAME)


def config(**kw):
    base = dict(think=parse_distribution("100ms"), greeting_delay=parse_distribution("0ms"))
    return AgentConfig(**{**base, **kw})


class Caller:
    """A minimal Twilio impersonation: sends frames in real time, collects events."""

    def __init__(self, ws):
        self.ws = ws
        self.stream = TwilioCallerStream()
        self.events: list[tuple[float, dict]] = []
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self):
        loop = asyncio.get_running_loop()
        async for raw in self.ws:
            self.events.append((loop.time(), json.loads(raw)))

    async def begin(self):
        await self.ws.send(self.stream.connected())
        await self.ws.send(self.stream.start())

    async def send_frames(self, b64s):
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for i, b in enumerate(b64s):
            await asyncio.sleep(max(0.0, t0 + i * 0.02 - loop.time()))
            await self.ws.send(self.stream.media(b))

    def kinds(self):
        return [e["event"] for _, e in self.events]

    def marks(self):
        return [e["mark"]["name"] for _, e in self.events if e["event"] == "mark"]


async def start_agent(**kw):
    truth = io.StringIO()
    agent = ReferenceAgent(config(**kw.pop("cfg", {})), truth=truth, seed=1, **kw)
    server, port = await agent.start("127.0.0.1", 0)
    return agent, server, port, truth


async def one_turn_truth(backend_url: str, **cfg) -> dict:
    """Let the agent greet, say one turn, wait for the reply; the agent's truth for it."""
    agent, server, port, truth = await start_agent(cfg={"backend_url": backend_url, **cfg})
    try:
        async with connect(f"ws://127.0.0.1:{port}/media") as ws:
            caller = Caller(ws)
            await caller.begin()
            await caller.send_frames([SILENCE_B64] * 200)
            await caller.send_frames(list(SPEECH_B64) + [SILENCE_B64] * 75)
    finally:
        server.close()
        await agent.close()
    return next(json.loads(x) for x in truth.getvalue().splitlines() if '"turn": 0' in x)


async def test_greets_then_answers_each_turn_after_half_a_second_of_silence():
    agent, server, port, truth = await start_agent()
    try:
        async with connect(f"ws://127.0.0.1:{port}/media") as ws:
            caller = Caller(ws)
            await caller.begin()
            await caller.send_frames([SILENCE_B64] * 200)  # 4 s: the greeting plays
            assert "greeting" in caller.marks()
            before = len(caller.events)
            await caller.send_frames(list(SPEECH_B64) + [SILENCE_B64] * 100)
            assert "media" in caller.kinds()[before:]  # it replied
            for _ in range(10):  # the reply plays in real time; its mark follows it (<= 5 s)
                if "turn-0" in caller.marks():
                    break
                await caller.send_frames([SILENCE_B64] * 25)
            kinds = caller.kinds()
            assert "turn-0" in caller.marks(), kinds[before:]
            # the mark comes after the reply's last frame: nothing of the reply follows it
            mark_at = next(i for i, (_, e) in enumerate(caller.events)
                           if e["event"] == "mark" and e["mark"]["name"] == "turn-0")
            assert "media" in kinds[before:mark_at] and "media" not in kinds[mark_at + 1:]
    finally:
        server.close()
        await agent.close()
    lines = [json.loads(x) for x in truth.getvalue().splitlines()]
    turn = next(x for x in lines if x["turn"] == 0)
    # ground truth spans the end-of-turn wait (500 ms of silence) and the think time
    assert 570 <= turn["latency_ms"] <= 1000, turn
    assert turn["backend"] == "none" and turn["think_ms"] == 100


async def test_barge_in_stops_the_reply_and_sends_clear():
    agent, server, port, _ = await start_agent()
    try:
        async with connect(f"ws://127.0.0.1:{port}/media") as ws:
            caller = Caller(ws)
            await caller.begin()
            await caller.send_frames([SILENCE_B64] * 25)  # the greeting is playing now
            assert caller.kinds().count("media") > 0
            await caller.send_frames(list(SPEECH_B64[:10]))  # talk over it
            await caller.send_frames([SILENCE_B64] * 5)
            assert "clear" in caller.kinds()
            n = caller.kinds().count("media")
            await caller.send_frames([SILENCE_B64] * 10)
            # after the clear, no more greeting audio (the reply to the barge-in waits for
            # the end of the caller's turn: 500 ms of silence, then think time)
            assert caller.kinds().count("media") == n
    finally:
        server.close()
        await agent.close()


async def test_backend_down_gives_the_fallback_phrase_not_silence():
    turn = await one_turn_truth("http://127.0.0.1:9/v1/turn", backend_timeout_s=1.0)
    assert turn["reply"] == "agent_fallback"
    assert turn["backend"].startswith("error")


async def test_backend_schema_change_makes_the_agent_fall_back():
    from aiohttp import web

    async def drifted(_):
        return web.json_response({"response": {"id": "agent_delivery"}})  # "reply" renamed

    app = web.Application()
    app.router.add_post("/v1/turn", drifted)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    bport = runner.addresses[0][1]
    try:
        turn = await one_turn_truth(f"http://127.0.0.1:{bport}/v1/turn")
    finally:
        await runner.cleanup()
    assert turn["reply"] == "agent_fallback" and "KeyError" in turn["backend"]


async def test_mock_backend_answers_with_a_reply_id():
    import aiohttp

    runner, port = await start_backend("127.0.0.1", 0, parse_distribution("1ms"))
    try:
        async with aiohttp.ClientSession() as s:
            async with s.post(f"http://127.0.0.1:{port}/v1/turn", json={"turn": 1}) as r:
                body = await r.json()
            async with s.post(f"http://127.0.0.1:{port}/v1/turn", data="nope") as r:
                assert r.status == 400
    finally:
        await runner.cleanup()
    assert body["reply"]["id"] == "agent_order_found"


async def test_signature_is_required_when_the_agent_has_an_auth_token():
    agent, server, port, _ = await start_agent(auth_token="tok")
    url = f"ws://127.0.0.1:{port}/media"
    try:
        with pytest.raises(InvalidStatus) as info:
            async with connect(url):
                pass
        assert info.value.response.status_code == 403
        good = compute_signature("tok", f"wss://127.0.0.1:{port}/media")
        async with connect(url, additional_headers={"X-Twilio-Signature": good}) as ws:
            await ws.send(TwilioCallerStream().connected())
    finally:
        server.close()
        await agent.close()


def test_distribution_specs():
    import random

    rng = random.Random(3)
    assert parse_distribution("250ms").sample(rng) == 250
    assert parse_distribution("1.5s").sample(rng) == 1500
    assert 200 <= parse_distribution("uniform:200:400").sample(rng) <= 400
    assert parse_distribution("normal:300:50").sample(rng) >= 0
    assert parse_distribution("lognormal:300:0.4").sample(rng) > 0
    for bad in ("fast", "uniform:5", "uniform:9:1", "normal:-1:2"):
        with pytest.raises(ValueError, match="distribution"):
            parse_distribution(bad)
