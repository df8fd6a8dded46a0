"""Signalling clients against a real aiohttp server that misbehaves in each way we classify."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from pydantic import SecretStr

from loadcaller.errors import SetupFailed
from loadcaller.webrtc.datachannel import DataChannelLog, Signal
from loadcaller.webrtc.signalling import IceCandidate, PipecatSignalling, WhipSignalling

SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Server:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, str], str]] = []
        self.handler: Handler = self._ok
        self.port = 0

    async def _ok(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"sdp": SDP, "type": "answer", "pc_id": "pc-1"})

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.method, request.path, dict(request.headers),
                          await request.text()))
        return await self.handler(request)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/offer"


@pytest_asyncio.fixture
async def server() -> AsyncIterator[Server]:
    s = Server()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", s.dispatch)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    s.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield s
    await runner.cleanup()


async def test_pipecat_offer_answer_renegotiation_and_trickle(server):
    sig = PipecatSignalling(server.url)
    answer = await sig.offer(SDP)
    assert (answer.sdp, answer.session_id) == (SDP, "pc-1")
    await sig.renegotiate(SDP)  # the same session: the pc_id goes with the new offer
    await sig.trickle([IceCandidate("candidate:1 1 udp 1 127.0.0.1 9 typ host", "0", 0)])
    await sig.close()
    first, second, patch = (json.loads(s[3]) for s in server.seen)
    assert first == {"sdp": SDP, "type": "offer"}
    assert second == {"sdp": SDP, "type": "offer", "pc_id": "pc-1", "restart_pc": False}
    assert [s[0] for s in server.seen] == ["POST", "POST", "PATCH"]
    assert patch == {"pc_id": "pc-1", "candidates": [
        {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdp_mid": "0",
         "sdp_mline_index": 0}]}


def _respond(status: int, body: str, ctype: str = "application/json") -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, text=body, content_type=ctype)
    return handler


@pytest.mark.parametrize("handler, reason", [
    (_respond(503, "busy"), "signalling: HTTP 503 Service Unavailable from {url}: busy"),
    (_respond(404, ""), "signalling: HTTP 404 Not Found from {url}"),
    (_respond(401, "no token"), "signalling: HTTP 401 Unauthorized from {url}: no token"),
    (_respond(200, "{not json", "text/plain"),
     "signalling: the answer from {url} is not JSON: {{not json"),
    (_respond(200, json.dumps({"type": "answer"})), "signalling: the answer from {url} has no SDP"),
    (_respond(200, json.dumps({"sdp": "hello", "type": "answer"})),
     "signalling: the answer from {url} has no SDP"),
    (_respond(200, json.dumps([1, 2])), "signalling: the answer from {url} has no SDP"),
    (_respond(200, json.dumps({"sdp": SDP, "type": "offer"})),
     "signalling: the answer from {url} is of type 'offer', not 'answer'"),
    (_respond(200, "x" * 300_000), "signalling: answer over 262144 bytes from {url}"),
    (_respond(302, ""), "signalling: HTTP 302 Found from {url}"),
])
async def test_pipecat_bad_answers_are_setup_failures_with_the_reason(server, handler, reason):
    server.handler = handler
    sig = PipecatSignalling(server.url)
    with pytest.raises(SetupFailed) as exc:
        await sig.offer(SDP)
    await sig.close()
    assert str(exc.value).startswith(reason.format(url=server.url)), str(exc.value)


async def test_a_silent_server_times_out_and_a_closed_port_is_refused(server):
    async def hang(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(3)
        raise AssertionError("not reached")
    server.handler = hang
    sig = PipecatSignalling(server.url, timeout_s=0.5)
    with pytest.raises(SetupFailed, match=r"^signalling: no answer within 0.5s from http://"):
        await sig.offer(SDP)
    await sig.close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sig = PipecatSignalling(f"http://127.0.0.1:{port}/api/offer")
    with pytest.raises(SetupFailed, match=r"^signalling: cannot connect to http://127.0.0.1:"):
        await sig.offer(SDP)
    await sig.close()


async def test_whip_201_location_then_delete_with_the_token_never_logged(server, caplog):
    async def whip(request: web.Request) -> web.StreamResponse:
        if request.method == "DELETE":
            return web.Response(status=200)
        return web.Response(status=201, text=SDP, content_type="application/sdp",
                            headers={"Location": "/whip/session/abc123"})
    server.handler = whip
    caplog.set_level(logging.DEBUG)
    url = f"http://127.0.0.1:{server.port}/whip"
    sig = WhipSignalling(url, token=SecretStr("tok-s3cret"),
                         headers={"X-Tenant": SecretStr("hdr-s3cret")})
    answer = await sig.offer(SDP)
    assert answer.session_id == "abc123" and answer.sdp == SDP
    await sig.close()
    (m1, p1, h1, b1), (m2, p2, h2, _) = server.seen
    assert (m1, p1, b1) == ("POST", "/whip", SDP) and (m2, p2) == ("DELETE", "/whip/session/abc123")
    assert h1["Content-Type"] == "application/sdp"
    assert h1["Authorization"] == h2["Authorization"] == "Bearer tok-s3cret"
    assert h1["X-Tenant"] == "hdr-s3cret"
    assert "s3cret" not in caplog.text + repr(sig.__dict__)


@pytest.mark.parametrize("status, headers, body, reason", [
    (200, {"Location": "/w/1"}, SDP, "signalling: WHIP answered HTTP 200 from {url}, not 201"),
    (201, {}, SDP, "signalling: WHIP 201 from {url} without Location"),
    (201, {"Location": "/w/1"}, "nope", "signalling: the answer from {url} has no SDP: nope"),
    (201, {"Location": "ftp://x/1"}, SDP, "signalling: WHIP Location 'ftp://x/1' from {url} "
     "is not an http(s) URL"),
])
async def test_whip_bad_answers(server, status, headers, body, reason):
    async def whip(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, text=body, headers=headers)
    server.handler = whip
    url = f"http://127.0.0.1:{server.port}/whip"
    sig = WhipSignalling(url)
    with pytest.raises(SetupFailed) as exc:
        await sig.offer(SDP)
    await sig.close()
    assert str(exc.value).startswith(reason.format(url=url)), str(exc.value)


async def test_a_url_password_is_not_in_the_reason(server):
    server.handler = _respond(500, "")
    sig = PipecatSignalling(f"http://u:pw-s3cret@127.0.0.1:{server.port}/api/offer")
    with pytest.raises(SetupFailed) as exc:
        await sig.offer(SDP)
    await sig.close()
    assert "pw-s3cret" not in str(exc.value) and "HTTP 500" in str(exc.value)


def test_data_channel_log_counts_messages_and_keeps_the_best_text_kind():
    dc = DataChannelLog()
    msgs: list[Any] = [
        {"label": "rtvi-ai", "type": "bot-ready", "data": {}},
        {"label": "rtvi-ai", "type": "bot-tts-text", "data": {"text": "Hel"}},
        {"label": "rtvi-ai", "type": "bot-transcription", "data": {"text": "Hello there."}},
        {"label": "rtvi-ai", "type": "bot-tts-text", "data": {"text": "lo"}},
        {"label": "other", "type": "bot-transcription", "data": {"text": "not rtvi"}},
    ]
    for i, m in enumerate(msgs):
        assert dc.receive(json.dumps(m), i) is None
    assert dc.receive("ping", 9) is None and dc.receive(b"\x00", 10) is None
    assert dc.receive(json.dumps({"type": "signalling", "message": {"type": "renegotiate"}}),
                      11) is Signal.RENEGOTIATE
    assert dc.receive(json.dumps({"type": "signalling", "message": {"type": "peerLeft"}}),
                      12) is Signal.PEER_LEFT
    assert dc.transcripts == [(2, "Hello there.")]
    assert dc.stats() == {"datachannel_messages": 9, "datachannel_bytes": dc.octets,
                          "rtvi_messages": 4, "datachannel_not_json": 1, "rtvi_texts": 3}
