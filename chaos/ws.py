"""WebSocket proxy (websockets.asyncio) applying the faults of one route.

The upstream is dialled during the client's opening handshake, so a refused
upstream gives the client a real 502 and the upstream's subprotocol choice is
passed back. Handshake faults (delay, reject, pong starvation) are decided
once per connection; message faults are decided per message and direction
(`upstream`: client to upstream, `downstream`: back). Close and abort actions
always hit the client connection, which is the side under test. A close from
either peer is passed to the other with its code.

The upstream URL is the route's upstream plus the client's target, which must
be origin-form (chaos/target.py), and the TCP connection goes to the route's
host and port whatever the URL says; a redirect to another origin is not
followed (502). When the upstream refuses the handshake, the client gets its
4xx/5xx status (and Retry-After) with a body of the proxy's own: the upstream's
body is not relayed. The upstream connection dialled during the handshake
belongs to the client connection from then on: it is closed when the client
connection ends, also when the client's handshake fails after it was dialled
(junk right after the request), when the handler never runs.
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
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

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
from chaos.bound import bound_address, listening_socket
from chaos.config import RouteConfig
from chaos.faults import WsFault
from chaos.faultset import FaultSet
from chaos.http import reset_transport
from chaos.metrics import ChaosMetrics
from chaos.target import BadTarget, check_pinned, origin_form
from chaos.wrapper import MatchInfo

# headers that belong to one hop of the handshake, not to the application
_HANDSHAKE_HEADERS = frozenset({
    "host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version",
    "sec-websocket-extensions", "sec-websocket-protocol", "sec-websocket-accept",
    "content-length", "transfer-encoding", "keep-alive",
})
# close codes that may not be sent in a close frame
_RESERVED = {1005: 1000, 1006: 1011, 1015: 1011}
#: a client must send its opening handshake request within this long; the opening
#: handshake as a whole has no timeout (a ws_handshake_delay may last minutes), and
#: before this a connection that sent nothing, or half a request, was held forever
REQUEST_TIMEOUT = 30.0
#: the largest message relayed either way (closed with 1009 beyond): a message is
#: held whole in memory, and unbounded one client's 1 GB message took 1 GB per copy
MAX_MESSAGE = 16 * 2**20


def _enforce_close_deadline(conn: ServerConnection | ClientConnection) -> None:
    """Abort `conn` at its close deadline if the peer has not closed by then.

    websockets (17.x) sets the deadline when a frame it receives makes it close
    (garbage, a bad opcode: it sends 1002) but enforces it only when something
    is sent afterwards; the reading side waits for the peer to close the TCP
    connection, forever if it never does. Through the proxy that was a client
    left in silence, its upstream gone bad, and both sockets held.
    """
    deadline = conn.close_deadline
    if deadline is not None and not getattr(conn, "_deadline_armed", False):
        conn._deadline_armed = True  # type: ignore[union-attr]
        conn.loop.call_at(deadline, _abort_unless_closed, conn)


def _abort_unless_closed(conn: ServerConnection | ClientConnection) -> None:
    if conn.state is not State.CLOSED:
        conn.transport.abort()


class _Connection(ServerConnection):
    """A server connection that drops its client when no request comes in time,
    and keeps its close deadline."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.loop.call_later(REQUEST_TIMEOUT, self._request_deadline)

    def _request_deadline(self) -> None:
        if self.request is None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        _enforce_close_deadline(self)


class _Upstream(ClientConnection):
    """The connection to the upstream, keeping its close deadline."""

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        _enforce_close_deadline(self)


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
        uri = parse_uri(self.upstream)
        self._pin = (uri.secure, uri.host, uri.port)
        self.faults = faults
        self.metrics = metrics
        self.clock = clock
        self._server: Server | None = None
        self._upstreams: dict[ServerConnection, ClientConnection] = {}
        self._reapers: set[asyncio.Task[None]] = set()

    async def start(self) -> tuple[str, int]:
        """Bind and serve; returns the bound address."""
        host, port = self.route.listen
        self._server = await serve(
            self._handle, sock=listening_socket(host, port), process_request=self._process_request,
            select_subprotocol=self._select_subprotocol, compression=None,
            ping_interval=None, open_timeout=None, close_timeout=1, max_size=MAX_MESSAGE,
            server_header=None, create_connection=_Connection)
        try:
            return bound_address(self._server.sockets, host, port)
        except OSError:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop listening and close every proxied connection."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 1)
            self._server = None
        for task in list(self._reapers):
            task.cancel()
        for upstream in list(self._upstreams.values()):
            await upstream.close()
        self._upstreams.clear()

    def _info(self, request: Request, message: str | None = None,
              direction: str = "upstream") -> MatchInfo:
        return MatchInfo(host=request.headers.get("Host", ""), path=request.path,
                         method="GET", headers=request.headers,
                         message=message, direction=direction)  # type: ignore[arg-type]

    async def _process_request(self, conn: ServerConnection,
                               request: Request) -> Response | None:
        try:
            url = self._upstream_url(request.path)
        except BadTarget as e:
            self.metrics.requests.labels(self.name, "bad_request").inc()
            return conn.respond(e.status, f"chaos-proxy: {e.reason}\n")
        refused = await self._handshake_faults(conn, request)
        if refused is not None:
            return refused
        headers = [(k, v) for k, v in request.headers.raw_items()
                   if k.lower() not in _HANDSHAKE_HEADERS]
        offered = [Subprotocol(p.strip()) for value in
                   request.headers.get_all("Sec-WebSocket-Protocol")
                   for p in value.split(",") if p.strip()]
        _, host, port = self._pin
        try:
            # an explicit host and port pin the TCP connection, and make websockets
            # refuse to follow a redirect to another origin (ValueError)
            upstream = await connect(
                url, host=host, port=port, additional_headers=headers,
                subprotocols=offered or None, compression=None, proxy=None,
                ping_interval=None, max_size=MAX_MESSAGE, open_timeout=10, close_timeout=1,
                user_agent_header=None, create_connection=_Upstream)
        except InvalidStatus as e:
            return self._refused(conn, e.response)
        except (TimeoutError, OSError, InvalidHandshake, InvalidURI, ValueError) as e:
            self.metrics.requests.labels(self.name, "upstream_error").inc()
            what = "unreachable" if isinstance(e, OSError | TimeoutError) else "failed"
            return conn.respond(http.HTTPStatus.BAD_GATEWAY,
                                f"chaos-proxy: upstream {self.upstream} {what}: "
                                f"{e.__class__.__name__}: {e}\n")
        self._upstreams[conn] = upstream
        reaper = asyncio.get_running_loop().create_task(self._close_with(conn, upstream))
        self._reapers.add(reaper)
        reaper.add_done_callback(self._reapers.discard)
        return None

    def _upstream_url(self, target: str) -> str:
        """The route's upstream plus an origin-form target; BadTarget otherwise."""
        url = self.upstream + origin_form("GET", target)
        try:
            uri = parse_uri(url)
        except InvalidURI as e:
            raise BadTarget(400, f"bad request target: {e}") from None
        check_pinned((uri.secure, uri.host, uri.port), self._pin, target)
        return url

    async def _handshake_faults(self, conn: ServerConnection,
                                request: Request) -> Response | None:
        """Carry out the handshake faults; a response when one refuses the client."""
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
        return None

    def _refused(self, conn: ServerConnection, answer: Response) -> Response:
        """The upstream did not switch protocols: its error status, not its body."""
        self.metrics.requests.labels(self.name, "upstream_refused").inc()
        status = answer.status_code
        if not 400 <= status <= 599:
            # a redirect elsewhere, a 200 page...: not something to hand the client
            return conn.respond(http.HTTPStatus.BAD_GATEWAY,
                                f"chaos-proxy: upstream {self.upstream} refused the "
                                f"handshake with {status} (redirects to another origin "
                                "are not followed)\n")
        response = conn.respond(status, f"chaos-proxy: upstream {self.upstream} refused "
                                        f"the handshake with {status}\n")
        if "Retry-After" in answer.headers:
            response.headers["Retry-After"] = answer.headers["Retry-After"]
        return response

    async def _close_with(self, client: ServerConnection, upstream: ClientConnection) -> None:
        """Close `upstream` once the client connection is gone (even if never opened)."""
        await client.wait_closed()
        if self._upstreams.get(client) is upstream:
            del self._upstreams[client]
            await upstream.close()

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
                        if not any(isinstance(item, WsMessage) for item in items):
                            break  # dropped: the faults after it never see the message
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
