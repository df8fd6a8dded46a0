"""WebSocket proxy (websockets.asyncio) applying the faults of one route.

The upstream is dialled during the client's opening handshake, so a refused
upstream gives the client a real 502 and the upstream's subprotocol choice is
passed back. Handshake faults (delay, reject, pong starvation) are decided
once per connection; message faults are decided per message and direction
(`upstream`: client to upstream, `downstream`: back). Close and abort actions
always hit the client connection, which is the side under test. A close from
either peer is passed to the other with its code.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
from collections.abc import Callable

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
)
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from chaos.actions import (
    Close,
    Cut,
    Defer,
    Delay,
    Pause,
    Reject,
    Respond,
    Starve,
    WsItem,
    WsMessage,
)
from chaos.config import RouteConfig
from chaos.faults import WsFault
from chaos.faultset import FaultSet
from chaos.http import reset_transport
from chaos.metrics import ChaosMetrics
from chaos.wrapper import MatchInfo

# headers that belong to one hop of the handshake, not to the application
_HANDSHAKE_HEADERS = frozenset({
    "host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version",
    "sec-websocket-extensions", "sec-websocket-protocol", "sec-websocket-accept",
    "content-length", "transfer-encoding", "keep-alive",
})
# close codes that may not be sent in a close frame
_RESERVED = {1005: 1000, 1006: 1011, 1015: 1011}


def fragments(data: str | bytes, count: int) -> list[str] | list[bytes]:
    """Split a message into `count` non-empty pieces (fewer for short messages)."""
    count = max(1, min(count, len(data)))
    size = -(-len(data) // count)
    return [data[i:i + size] for i in range(0, len(data), size)]  # type: ignore[return-value]


class WsProxy:
    """One WebSocket listener forwarding to `route.upstream`."""

    def __init__(self, route: RouteConfig, faults: FaultSet, metrics: ChaosMetrics,
                 clock: Callable[[], float]) -> None:
        self.route = route
        self.name = route.name
        self.upstream = route.upstream.rstrip("/")
        self.faults = faults
        self.metrics = metrics
        self.clock = clock
        self._server: Server | None = None
        self._upstreams: dict[ServerConnection, ClientConnection] = {}

    async def start(self) -> tuple[str, int]:
        """Bind and serve; returns the bound address."""
        host, port = self.route.listen
        self._server = await serve(
            self._handle, host, port, process_request=self._process_request,
            select_subprotocol=self._select_subprotocol, compression=None,
            ping_interval=None, open_timeout=None, close_timeout=1, max_size=None,
            server_header=None)
        sock = next(iter(self._server.sockets))
        bound = sock.getsockname()[:2]
        return bound[0], bound[1]

    async def stop(self) -> None:
        """Stop listening and close every proxied connection."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 1)
            self._server = None
        for upstream in list(self._upstreams.values()):
            await upstream.close()

    def _info(self, request: Request, message: str | None = None,
              direction: str = "upstream") -> MatchInfo:
        return MatchInfo(host=request.headers.get("Host", ""), path=request.path,
                         method="GET", headers=request.headers,
                         message=message, direction=direction)  # type: ignore[arg-type]

    async def _process_request(self, conn: ServerConnection,
                               request: Request) -> Response | None:
        now = self.clock()
        info = self._info(request)
        for wf in self.faults.for_route(self.name, "ws"):
            fault = wf.fault
            if not isinstance(fault, WsFault) or fault.scope != "handshake":
                continue
            chosen = wf.decide(info, now)
            if chosen is None:
                continue
            assert isinstance(chosen, WsFault)
            action = chosen.on_handshake(wf.context(now, self.name))
            if action is None:
                continue
            wf.record_injected(self.name)
            if isinstance(action, Delay):
                await asyncio.sleep(action.seconds)
            elif isinstance(action, Reject | Respond):
                self.metrics.requests.labels(self.name, "fault").inc()
                return conn.respond(action.status, action.body.decode("utf-8", "replace"))
            elif isinstance(action, Starve):
                self._starve(conn, action.seconds)
        headers = [(k, v) for k, v in request.headers.raw_items()
                   if k.lower() not in _HANDSHAKE_HEADERS]
        offered = [Subprotocol(p.strip()) for value in
                   request.headers.get_all("Sec-WebSocket-Protocol")
                   for p in value.split(",") if p.strip()]
        try:
            upstream = await connect(
                self.upstream + request.path, additional_headers=headers,
                subprotocols=offered or None, compression=None, proxy=None,
                ping_interval=None, max_size=None, open_timeout=10, user_agent_header=None)
        except InvalidStatus as e:
            # the upstream refused the handshake: the client gets the same answer
            self.metrics.requests.labels(self.name, "upstream_refused").inc()
            body = (e.response.body or b"").decode("utf-8", "replace")
            return conn.respond(e.response.status_code, body)
        except (TimeoutError, OSError, InvalidHandshake, InvalidURI) as e:
            self.metrics.requests.labels(self.name, "upstream_error").inc()
            return conn.respond(http.HTTPStatus.BAD_GATEWAY,
                                f"chaos-proxy: upstream {self.upstream} unreachable: "
                                f"{e.__class__.__name__}: {e}\n")
        self._upstreams[conn] = upstream
        return None

    def _select_subprotocol(self, conn: ServerConnection,
                            offered: object) -> Subprotocol | None:
        upstream = self._upstreams.get(conn)
        return upstream.subprotocol if upstream is not None else None

    def _starve(self, conn: ServerConnection, seconds: float | None) -> None:
        transport = conn.transport
        transport.pause_reading()
        if seconds is not None:
            asyncio.get_running_loop().call_later(seconds, transport.resume_reading)

    async def _handle(self, client: ServerConnection) -> None:
        upstream = self._upstreams.get(client)
        if upstream is None:
            return
        self.metrics.requests.labels(self.name, "forwarded").inc()
        try:
            tasks = [asyncio.create_task(self._pump(client, upstream, client, "upstream")),
                     asyncio.create_task(self._pump(upstream, client, client, "downstream"))]
            _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await task
        finally:
            self._upstreams.pop(client, None)
            await upstream.close()

    async def _pump(self, src: ServerConnection | ClientConnection,
                    dst: ServerConnection | ClientConnection, client: ServerConnection,
                    direction: str) -> None:
        """Forward messages one way, through the message faults."""
        deferred: list[WsMessage] = []
        request = client.request
        assert request is not None
        try:
            async for data in src:
                message = WsMessage(data)
                items: list[WsItem] = [message]
                now = self.clock()
                candidates = self.faults.for_route(self.name, "ws")
                if candidates:
                    info = self._info(request, message.kind, direction)
                    for wf in candidates:
                        if getattr(wf.fault, "scope", "") != "message":
                            continue
                        fault = wf.decide(info, now)
                        if fault is None:
                            continue
                        assert isinstance(fault, WsFault)
                        ctx = wf.context(now, self.name)
                        items = [out for item in items for out in (
                            fault.on_message(item, ctx) if isinstance(item, WsMessage)
                            else [item])]
                        wf.record_injected(self.name)
                if not await self._emit(items, dst, client, deferred):
                    return
        except ConnectionClosed:
            pass
        # src closed: pass its close code on
        code = src.close_code if src.close_code is not None else 1000
        await dst.close(_RESERVED.get(code, code), src.close_reason or "")

    async def _emit(self, items: list[WsItem], dst: ServerConnection | ClientConnection,
                    client: ServerConnection, deferred: list[WsMessage]) -> bool:
        """Carry out message actions; False once the client connection was ended."""
        for item in items:
            if isinstance(item, WsMessage):
                if item.fragments > 1:
                    await dst.send(fragments(item.data, item.fragments))
                else:
                    await dst.send(item.data)
                for held in deferred:
                    await dst.send(held.data)
                deferred.clear()
            elif isinstance(item, Defer):
                deferred.append(item.message)
            elif isinstance(item, Pause):
                await asyncio.sleep(item.seconds)
            elif isinstance(item, Close):
                await client.close(item.code, item.reason)
                return False
            elif isinstance(item, Cut):
                if item.rst:
                    reset_transport(client.transport)
                else:
                    client.transport.close()
                return False
        return True
