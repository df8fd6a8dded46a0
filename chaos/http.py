"""HTTP reverse proxy (aiohttp) that applies the faults of one route.

Per request: the wrapper of every fault on the route decides (chaos/wrapper.py);
request-phase actions run first (delay, answer, hang, reset); then the request
goes upstream, and the response comes back either streamed through the
faults' stream transforms as bytes arrive (SSE included) or, for faults that
need the whole body (schema drift, garbage, empty body), read, rewritten and
sent with a corrected Content-Length. Faults are sans-I/O; this file only
carries out their actions.

The upstream URL is the route's upstream followed by the client's target as
sent (chaos/target.py refuses targets that could name another host), and each
client request makes exactly one upstream attempt: aiohttp (3.9 and later)
silently sends GET, HEAD, OPTIONS, TRACE, PUT and DELETE a second time when the
first attempt's connection is reset or closed, and a proxy that doubles a PUT
on reset doubles a side effect in the CRM under test. aiohttp has no public
switch for it (aio-libs/aiohttp#10790); `_retry_connection` is the flag its own
test client clears (from 3.11), so it is cleared here too, and
tests/chaos/test_upstream_attempts.py fails if a release stops honouring it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Callable

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from chaos.actions import (
    Cut,
    Delay,
    FaultContext,
    Hang,
    Pause,
    Reset,
    Respond,
    StreamItem,
    StreamTransform,
)
from chaos.bound import bound_address
from chaos.config import RouteConfig
from chaos.faults import Fault, HttpFault
from chaos.faultset import FaultSet
from chaos.metrics import ChaosMetrics
from chaos.target import BadTarget, check_pinned, origin_form
from chaos.wrapper import MatchInfo, WrappedFault

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
    "trailer", "trailers", "transfer-encoding", "upgrade", "host", "content-length",
})
_SMALL_BODY = 256 * 1024
_POLL = 0.05
#: close a client connection that has sent no complete request for this long (idle
#: keep-alive, or headers trickled in slowloris-style); aiohttp's own default is an
#: hour, so a few thousand idle sockets held every file descriptor of the process.
#: A request being served (a hang, a long stream) is never cut by it.
IDLE_TIMEOUT = 75.0


def pipe(transforms: list[StreamTransform], items: list[StreamItem], start: int = 0
         ) -> list[StreamItem]:
    """Run stream items through transforms[start:]; pauses and cuts pass through."""
    for t in transforms[start:]:
        out: list[StreamItem] = []
        for item in items:
            out += t.feed(item) if isinstance(item, bytes) else [item]
        items = out
    return items


def pipe_end(transforms: list[StreamTransform]) -> list[StreamItem]:
    """Flush every transform, feeding each one's tail through the ones after it."""
    items: list[StreamItem] = []
    for t in transforms:
        items = [*pipe([t], items), *t.end()]
    return items


def reset_transport(transport: asyncio.BaseTransport | None) -> None:
    """Abort with SO_LINGER 0 so the peer gets a TCP RST, not a FIN."""
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()  # type: ignore[attr-defined]


class HttpProxy:
    """One HTTP listener forwarding to `route.upstream`."""

    def __init__(self, route: RouteConfig, faults: FaultSet, metrics: ChaosMetrics,
                 clock: Callable[[], float]) -> None:
        self.route = route
        self.name = route.name
        self.upstream = route.upstream.rstrip("/")
        self._base = URL(self.upstream)
        self._pin = (self._base.scheme, self._base.host, self._base.port)
        self.faults = faults
        self.metrics = metrics
        self.clock = clock
        self._server: asyncio.Server | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ok = metrics.requests.labels(route.name, "forwarded")
        self._latency = metrics.upstream_latency.labels(route.name)

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port)."""
        assert self._server is not None
        return bound_address(self._server.sockets, *self.route.listen)

    async def start(self) -> tuple[str, int]:
        """Bind and serve; returns the bound address."""
        # the route's timeout is the upstream's silence (connecting, then between reads),
        # not the whole exchange: a total would cut a healthy LLM stream longer than it
        t = self.route.timeout
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=t, sock_read=t)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
            timeout=timeout, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar())
        if hasattr(self._session, "_retry_connection"):
            # one upstream attempt per client request (see the module docstring)
            self._session._retry_connection = False
        server = web.Server(self.handle, access_log=None, keepalive_timeout=IDLE_TIMEOUT)
        host, port = self.route.listen
        self._server = await asyncio.get_running_loop().create_server(server, host, port)
        try:
            return self.address
        except OSError:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop listening and close upstream connections."""
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Serve one request (aiohttp calls this for each, kept-alive or not).

        The route's faults see the request in order, each deciding as it comes: a
        fault that answers it (status, hang, reset) ends it there, and the faults
        after it never saw it (their counts, `max_count` included, are left alone).
        """
        try:
            url = self._upstream_url(request)
        except BadTarget as e:
            self.metrics.requests.labels(self.name, "bad_request").inc()
            resp = web.Response(status=e.status, text=f"chaos-proxy: {e.reason}\n",
                                headers={"X-Chaos-Proxy": "bad-request"})
            if e.status == 405:
                resp.headers["Allow"] = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
            resp.force_close()
            return resp
        now = self.clock()
        later: list[tuple[WrappedFault, Fault, FaultContext]] = []  # acting on the response
        candidates = self.faults.for_route(self.name, "http")
        info = MatchInfo(host=request.host, path=request.path, method=request.method,
                         headers=request.headers, direction="upstream") if candidates else None
        for wf in candidates:
            assert info is not None
            fault = wf.decide(info, now)
            if fault is None:
                continue
            ctx = wf.context(now, self.name)
            action = fault.on_request(ctx) if isinstance(fault, HttpFault) else None
            if action is None:
                later.append((wf, fault, ctx))
                continue
            wf.record_injected(self.name)
            if isinstance(action, Delay):
                await asyncio.sleep(action.seconds)
            elif isinstance(action, Respond):
                self.metrics.requests.labels(self.name, "fault").inc()
                return web.Response(status=action.status, headers=CIMultiDict(action.headers),
                                    body=action.body)
            elif isinstance(action, Hang):
                if await self._hang(request, action):
                    self.metrics.requests.labels(self.name, "fault").inc()
                    return web.Response(status=500)
            elif isinstance(action, Reset):
                self.metrics.requests.labels(self.name, "fault").inc()
                reset_transport(request.transport)
                return web.Response(status=500)
        return await self._forward(request, url, later)

    def _upstream_url(self, request: web.BaseRequest) -> URL:
        """The route's upstream plus the client's target, sent as the client wrote it."""
        target = origin_form(request.method, request.raw_path)
        path, _, query = target.partition("?")
        base = self._base
        url = URL.build(scheme=base.scheme, authority=base.raw_authority,
                        path=base.raw_path.rstrip("/") + path, query_string=query,
                        encoded=True)
        check_pinned((url.scheme, url.host, url.port), self._pin, target)
        return url

    async def _hang(self, request: web.BaseRequest, action: Hang) -> bool:
        """Hold the connection; True when it was closed (nothing more to send)."""
        transport = request.transport
        loop = asyncio.get_running_loop()
        deadline = None if action.seconds is None else loop.time() + action.seconds
        while deadline is None or loop.time() < deadline:
            if transport is None or transport.is_closing():
                return True
            wait = _POLL if deadline is None else min(_POLL, deadline - loop.time())
            await asyncio.sleep(max(0.0, wait))
        if action.then == "rst":
            reset_transport(transport)
            return True
        if action.then == "fin":
            if transport is not None:
                transport.close()
            return True
        return False

    def _bad_gateway(self, status: int, reason: str) -> web.Response:
        self.metrics.requests.labels(self.name, "upstream_error").inc()
        body = f"chaos-proxy: upstream {self.upstream} {reason}\n"
        return web.Response(status=status, text=body,
                            headers={"X-Chaos-Proxy": "upstream-error"})

    async def _forward(self, request: web.BaseRequest, url: URL,
                       chosen: list[tuple[WrappedFault, Fault, FaultContext]]
                       ) -> web.StreamResponse:
        assert self._session is not None
        headers = CIMultiDict((k, v) for k, v in request.headers.items()
                              if k.lower() not in HOP_BY_HOP)
        data: object = None
        if request.body_exists:
            length = request.content_length
            if length is not None and length <= _SMALL_BODY:
                try:
                    data = await request.read()
                except ConnectionResetError:
                    # the client hung up first (during a latency fault, say): nothing
                    # to forward, nobody to answer
                    self.metrics.requests.labels(self.name, "client_closed").inc()
                    return web.Response(status=400)
            else:
                data = request.content.iter_chunked(65536)
        started = asyncio.get_running_loop().time()
        try:
            up = await self._session.request(
                request.method, url, headers=headers, data=data, allow_redirects=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"))
        except TimeoutError:
            return self._bad_gateway(504, "timed out")
        except (aiohttp.ClientError, OSError) as e:
            return self._bad_gateway(502, f"unreachable: {e.__class__.__name__}: {e}")
        self._latency.observe(asyncio.get_running_loop().time() - started)
        try:
            return await self._respond(request, up, chosen)
        finally:
            up.release()

    async def _respond(self, request: web.BaseRequest, up: aiohttp.ClientResponse,
                       chosen: list[tuple[WrappedFault, Fault, FaultContext]]
                       ) -> web.StreamResponse:
        headers = CIMultiDict((k, v) for k, v in up.headers.items()
                              if k.lower() not in HOP_BY_HOP)
        transforms: list[StreamTransform] = []
        rewriters: list[tuple[WrappedFault, HttpFault, FaultContext]] = []
        keeps_length = True
        for wf, fault, ctx in chosen:
            assert isinstance(fault, HttpFault)
            st = fault.stream_transform(up.headers, ctx)
            if st is not None:
                transforms.append(st)
                keeps_length = keeps_length and fault.keeps_length
                wf.record_injected(self.name)
            elif fault.buffers_body:
                rewriters.append((wf, fault, ctx))
            elif type(fault).stream_transform is not HttpFault.stream_transform:
                wf.record_skipped(self.name)  # e.g. an SSE fault on a JSON response
            # else a request-phase fault that let the request pass (a rate_limit under
            # its limit): it did what it should, it was not skipped
        length = up.content_length
        if rewriters or (not transforms and length is not None and length <= _SMALL_BODY):
            try:
                body = await up.read()
            except TimeoutError:
                # the route's timeout ran out mid-body; nothing was sent to the client yet
                return self._bad_gateway(504, "timed out mid-body")
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as e:
                # nothing was sent to the client yet: say so, as a buffering proxy would
                return self._bad_gateway(502, f"broke off mid-body: {e.__class__.__name__}")
            self._ok.inc()
            ctype = up.headers.get("Content-Type", "")
            for wf, fault, ctx in rewriters:
                new = fault.rewrite_body(body, ctype, ctx)
                if new is None:
                    wf.record_skipped(self.name)
                else:
                    body = new
                    wf.record_injected(self.name)
            if not transforms:
                return web.Response(status=up.status, reason=up.reason, headers=headers,
                                    body=body)
            length = len(body)
            chunks = _one(body)
        else:
            chunks = up.content.iter_any()
        if keeps_length and length is not None:
            headers["Content-Length"] = str(length)
        resp = web.StreamResponse(status=up.status, reason=up.reason, headers=headers)
        try:
            await resp.prepare(request)
            outcome = await self._stream(request, resp, chunks, transforms)
        except ConnectionResetError:
            # the client hung up mid-response (a barge-in cancelling an LLM stream):
            # routine, not an "Error handling request" traceback; the upstream
            # connection is closed by the caller's release()
            outcome = "client_closed"
        self.metrics.requests.labels(self.name, outcome).inc()
        return resp

    async def _stream(self, request: web.BaseRequest, resp: web.StreamResponse,
                      chunks: AsyncIterator[bytes], transforms: list[StreamTransform]) -> str:
        """Relay the body through the transforms; the request's outcome."""
        upstream_chunks = aiter(chunks)
        while True:
            try:
                chunk = await anext(upstream_chunks)
            except StopAsyncIteration:
                break
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError):
                # the upstream broke off, or the route's timeout ran out mid-body: the
                # status is sent, so break the client's response the same way (an RST)
                reset_transport(request.transport)
                return "upstream_error"
            if await self._emit(request, resp, pipe(transforms, [chunk])):
                return "forwarded"  # cut by a fault, counted as that fault's injection
        if not await self._emit(request, resp, pipe_end(transforms)):
            await resp.write_eof()
        return "forwarded"

    async def _emit(self, request: web.BaseRequest, resp: web.StreamResponse,
                    items: list[StreamItem]) -> bool:
        """Carry out stream items; True once the connection was cut."""
        for item in items:
            if isinstance(item, bytes):
                if item:
                    await resp.write(item)
            elif isinstance(item, Pause):
                await asyncio.sleep(item.seconds)
            elif isinstance(item, Cut):
                if item.rst:
                    reset_transport(request.transport)
                elif request.transport is not None:
                    request.transport.close()
                return True
        return False


async def _one(body: bytes):  # type: ignore[no-untyped-def]
    yield body
