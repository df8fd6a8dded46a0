"""Our media-stream server: where Twilio brings a PSTN call's audio.

One websockets server per listen address and process, started by the first
PSTN call and closed with the engine (:func:`close_servers`). Each call
registers a :class:`StreamWaiter` under its ``loadcaller_call_id``; Twilio's
websocket carries that id as a custom parameter in its ``start`` message and is
handed to the waiter. Here loadcaller is on the agent's side of Twilio's
protocol: Twilio sends ``connected``, ``start``, ``media``, ``mark``, ``stop``.

Refused: an upgrade whose ``X-Twilio-Signature`` is not Twilio's signature of
the public URL with the auth token of a call waiting here (HTTP 403), and a
stream whose call id no call waits for (closed with 1008).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from loadcaller.errors import RemoteProtocolError
from loadcaller.timebase import now_ns
from loadcaller.twilio import messages as tw
from loadcaller.twilio.rest import CALL_ID_PARAMETER
from loadcaller.twilio.signature import signed_url, validate_signature

log = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0  # from the upgrade to Twilio's start message
MAX_MESSAGE_BYTES = 2**22


@dataclass(slots=True)
class StreamWaiter:
    """A call waiting for its stream, and where the stream's messages go once it came."""

    auth_token: str
    public_url: str
    on_start: Callable[[ServerConnection, tw.Start, int], None]
    on_message: Callable[[tw.TwilioMessage, int], None]
    on_closed: Callable[[int | None, str], None]


class StreamServer:
    """The websockets server and the calls waiting on it."""

    def __init__(self) -> None:
        self.waiting: dict[str, StreamWaiter] = {}
        self.server: Server | None = None

    async def start(self, host: str, port: int) -> None:
        self.server = await serve(self._handle, host, port, process_request=self._check,
                                  max_size=MAX_MESSAGE_BYTES, compression=None)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5.0):
                    await self.server.wait_closed()
            self.server = None

    def _check(self, connection: ServerConnection, request: Request) -> Response | None:
        signature = request.headers.get("X-Twilio-Signature", "")
        keys = {(w.auth_token, signed_url(w.public_url)) for w in self.waiting.values()}
        if signature and any(validate_signature(token, url, signature) for token, url in keys):
            return None
        log.warning("refused a media-stream upgrade from %s: %s", connection.remote_address,
                    "bad X-Twilio-Signature" if signature else "no X-Twilio-Signature")
        return connection.respond(403, "invalid X-Twilio-Signature\n")

    async def _handle(self, ws: ServerConnection) -> None:
        waiter = await self._route(ws)
        if waiter is None:
            return
        try:
            async for message in ws:
                t = now_ns()
                try:
                    msg = tw.parse_twilio_message(message)
                except RemoteProtocolError as exc:
                    log.warning("media stream: %s", exc)
                    continue
                waiter.on_message(msg, t)
        except ConnectionClosed:
            pass
        rcvd = ws.protocol.close_rcvd
        waiter.on_closed(rcvd.code if rcvd is not None else None,
                         rcvd.reason if rcvd is not None else "")

    async def _route(self, ws: ServerConnection) -> StreamWaiter | None:
        """Read up to ``start``; the waiter its call id names, or None (closed)."""
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                async for message in ws:
                    t = now_ns()
                    try:
                        msg = tw.parse_twilio_message(message)
                    except RemoteProtocolError as exc:
                        await ws.close(1008, f"bad message before start: {exc}"[:120])
                        return None
                    if isinstance(msg, tw.Start):
                        call_id = msg.custom_parameters.get(CALL_ID_PARAMETER, "")
                        waiter = self.waiting.pop(call_id, None)
                        if waiter is None:
                            log.warning("media stream for unknown call id %r refused", call_id)
                            await ws.close(1008, "unknown loadcaller_call_id")
                            return None
                        waiter.on_start(ws, msg, t)
                        return waiter
        except (TimeoutError, ConnectionClosed):
            pass
        await ws.close(1008, "no start message")
        return None


_SERVERS: dict[tuple[int, str, int], StreamServer] = {}
_STARTING: dict[tuple[int, str, int], asyncio.Lock] = {}


async def stream_server(host: str, port: int) -> StreamServer:
    """This loop's server on ``host:port``, started on first use."""
    key = (id(asyncio.get_running_loop()), host, port)
    lock = _STARTING.setdefault(key, asyncio.Lock())
    async with lock:
        server = _SERVERS.get(key)
        if server is None:
            server = StreamServer()
            await server.start(host, port)
            _SERVERS[key] = server
    return server


async def close_servers() -> None:
    """Close this loop's media-stream servers (the engine closes)."""
    loop = id(asyncio.get_running_loop())
    for key in [k for k in _SERVERS if k[0] == loop]:
        server = _SERVERS.pop(key)
        _STARTING.pop(key, None)
        await server.close()
