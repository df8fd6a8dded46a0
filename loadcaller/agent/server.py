"""The reference agent's websocket server (Twilio Media Streams, agent side).

``loadcaller agent`` runs it: it accepts Media Streams on any path, validates
``X-Twilio-Signature`` when given an auth token, and runs one
:class:`~loadcaller.agent.session.AgentSession` per call.
"""

from __future__ import annotations

import logging
import random
from typing import IO

import aiohttp
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from chaos.bound import bound_address
from loadcaller.agent.backend import REPLIES
from loadcaller.agent.metrics import CountingTruth
from loadcaller.agent.session import AgentConfig, AgentSession
from loadcaller.audio.pack import load_pack_audio
from loadcaller.calls.utterance import Utterance, make_utterance
from loadcaller.errors import RemoteProtocolError
from loadcaller.timebase import now_ns
from loadcaller.twilio import messages as tw
from loadcaller.twilio.signature import validate_signature

log = logging.getLogger(__name__)

AGENT_PHRASES = ("agent_greeting", "agent_fallback", *(rid for rid, _ in REPLIES))


def agent_voice() -> dict[str, Utterance]:
    """The agent's phrases from the bundled pack, framed once."""
    return {pid: make_utterance(pid, load_pack_audio(pid, "en-us")) for pid in AGENT_PHRASES}


class TwilioLine:
    """A session's outbound side as Twilio Media Streams messages."""

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.stream_sid = ""

    async def send_audio(self, frame: bytes) -> None:
        await self.ws.send(tw.agent_media(self.stream_sid, frame))

    async def clear(self) -> None:
        await self.ws.send(tw.agent_clear(self.stream_sid))

    async def mark(self, name: str) -> None:
        await self.ws.send(tw.agent_mark(self.stream_sid, name))


class ReferenceAgent:
    """Holds what every call shares: the voice, the HTTP client, the truth log."""

    def __init__(self, config: AgentConfig, *, truth: IO[str] | None = None,
                 auth_token: str | None = None, public_url: str | None = None,
                 seed: int | None = None) -> None:
        self.config = config
        self.voice = agent_voice()
        self.truth = CountingTruth(truth)  # also serves GET /metrics (agent fallbacks)
        self.auth_token = auth_token
        self.public_url = public_url
        self.rng = random.Random(seed)
        self.http: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        """Open what every transport's calls share (the backend's HTTP client)."""
        if self.config.backend_url and self.http is None:
            self.http = aiohttp.ClientSession()

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> tuple[Server, int]:
        await self.open()
        server = await serve(self._handle, host, port, process_request=self._check,
                             reuse_port=reuse_port, max_size=2**22, compression=None)
        try:
            _, bound = bound_address(server.sockets, host, port)
        except OSError:
            server.close()
            raise
        return server, bound

    async def close(self) -> None:
        if self.http is not None:
            await self.http.close()

    def _check(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/metrics" and "websocket" not in request.headers.get(
                "Upgrade", "").lower():
            response = connection.respond(200, self.truth.exposition().decode())
            del response.headers["Content-Type"]  # Prometheus' text format, versioned
            response.headers["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
            return response
        if not self.auth_token:
            return None
        signature = request.headers.get("X-Twilio-Signature", "")
        url = self.public_url or f"wss://{request.headers.get('Host', '')}{request.path}"
        if validate_signature(self.auth_token, url, signature):
            return None
        return connection.respond(403, "invalid X-Twilio-Signature\n")

    async def _handle(self, ws: ServerConnection) -> None:
        line = TwilioLine(ws)
        session = AgentSession(line=line, config=self.config, voice=self.voice,
                               http=self.http, truth=self.truth, rng=self.rng)
        try:
            async for message in ws:
                t = now_ns()
                try:
                    msg = tw.parse_twilio_message(message)
                except RemoteProtocolError as exc:
                    log.warning("call %s: %s", session.call_sid or "?", exc)
                    continue
                if isinstance(msg, tw.Media):
                    session.on_audio(msg.payload, t)
                elif isinstance(msg, tw.Start):
                    line.stream_sid = msg.stream_sid
                    session.on_start(msg.call_sid, t, msg.stream_sid)
                    if msg.custom_parameters:  # logged: a caller's per-call data arrived
                        self.truth.write({"call_sid": msg.call_sid,
                                          "custom_parameters": msg.custom_parameters})
                elif isinstance(msg, tw.Dtmf):
                    session.on_dtmf(msg.digit, t)
                elif isinstance(msg, tw.Stop):
                    break
        except ConnectionClosed:
            pass
        finally:
            session.close()
