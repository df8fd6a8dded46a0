"""Whatever the request target says, a relayed request goes to its route's upstream.

Raw requests over a plain socket (a client library would normalise them) to an
HTTP and a WebSocket route, while a second local server plays the host an
attacker would pick: it must receive nothing, and the client gets a 4xx. Targets
that start with `/` stay on the upstream, which is what answers them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from websockets.asyncio.server import ServerConnection, serve

from tests.chaos.conftest import MakeProxy

_WS_HEADERS = ("Upgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")


@dataclass
class Attacker:
    """A local server the attacker wants the proxy to fetch from."""

    address: str
    connections: list[bytes] = field(default_factory=list)


@pytest.fixture
async def attacker() -> AsyncIterator[Attacker]:
    found = Attacker("")

    async def serve_secret(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        found.connections.append(b"")  # a bare connection counts too
        found.connections[-1] = await reader.read(4096)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nSECRET")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve_secret, "127.0.0.1", 0)
    found.address = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    yield found
    server.close()


@dataclass
class Upstream:
    """The route's own upstream: records the targets it was asked for."""

    url: str
    targets: list[str] = field(default_factory=list)


@pytest.fixture
async def http_upstream() -> AsyncIterator[Upstream]:
    up = Upstream("")

    async def record(request: web.Request) -> web.Response:
        up.targets.append(request.raw_path)
        return web.Response(status=404, text="upstream: no such page\n")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    up.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield up
    await runner.cleanup()


@pytest.fixture
async def ws_upstream() -> AsyncIterator[Upstream]:
    up = Upstream("")

    def record(conn: ServerConnection, request):  # type: ignore[no-untyped-def]
        up.targets.append(request.path)
        if request.path.startswith("/moved"):
            # a redirect elsewhere must not be followed by the proxy
            response = conn.respond(302, "moved\n")
            response.headers["Location"] = f"ws://{request.path.removeprefix('/moved/')}"
            return response
        return None

    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    async with serve(echo, "127.0.0.1", 0, process_request=record) as server:
        up.url = f"ws://127.0.0.1:{next(iter(server.sockets)).getsockname()[1]}"
        yield up


async def _exchange(address: tuple[str, int], head: str) -> bytes:
    """Send one raw request head; everything the proxy answers until it closes (or 2 s)."""
    reader, writer = await asyncio.open_connection(*address)
    writer.write(head.encode("latin-1"))
    data = b""
    try:
        async with asyncio.timeout(2):
            while chunk := await reader.read(4096):
                data += chunk
                if b"\r\n\r\n" in data and b"Connection: close" not in data:
                    break
    except TimeoutError:
        pass
    finally:
        writer.close()
    return data


def _status(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1."), answer
    return int(answer.split(b" ", 2)[1])


# (test id, request line with {evil} for the attacker's host:port, where it must go)
# "refused": the proxy answers 4xx itself; "upstream": the route's upstream gets the
# target as sent (the authority ends at the first `/`) and answers
HTTP_FORMS = [
    ("absolute-form", "GET http://{evil}/secret", "refused"),
    ("absolute-form-userinfo", "GET http://x@{evil}/secret", "refused"),
    ("at-host", "GET @{evil}/secret", "refused"),
    ("userinfo", "GET :x@{evil}/secret", "refused"),
    ("backslashes", "GET \\\\{evil}/secret", "refused"),
    ("slash-backslash", "GET /\\{evil}/secret", "refused"),
    ("encoded-slashes", "GET %2F%2F{evil}/secret", "refused"),
    ("encoded-at", "GET %40{evil}/secret", "refused"),
    ("query-at", "GET ?@{evil}/secret", "refused"),
    ("connect", "CONNECT {evil}", "refused"),
    ("asterisk", "OPTIONS *", "refused"),
    ("double-slash", "GET //{evil}/secret", "upstream"),
    ("slash-encoded-slashes", "GET /%2F%2F{evil}/secret", "upstream"),
    ("slash-encoded-at", "GET /%40{evil}/secret", "upstream"),
]


@pytest.mark.parametrize(("line", "goes"), [f[1:] for f in HTTP_FORMS],
                         ids=[f[0] for f in HTTP_FORMS])
async def test_http_target_cannot_choose_the_host(line: str, goes: str, attacker: Attacker,
                                                  http_upstream: Upstream,
                                                  make_proxy: MakeProxy) -> None:
    proxy = await make_proxy(http_upstream.url)
    request_line = line.format(evil=attacker.address)
    answer = await _exchange(proxy.listeners["r"],
                             f"{request_line} HTTP/1.1\r\nHost: {attacker.address}\r\n"
                             "Content-Length: 0\r\nConnection: close\r\n\r\n")
    await asyncio.sleep(0.05)
    assert attacker.connections == []
    assert b"SECRET" not in answer
    assert 400 <= _status(answer) < 500, answer
    target = request_line.split(" ", 1)[1]
    assert http_upstream.targets == ([target] if goes == "upstream" else [])


WS_FORMS = [
    ("at-host", "GET @{evil}/secret", "refused"),
    ("userinfo", "GET :x@{evil}/secret", "refused"),
    ("absolute-form", "GET http://{evil}/secret", "refused"),
    ("absolute-form-ws", "GET ws://{evil}/secret", "refused"),
    ("backslashes", "GET \\\\{evil}/secret", "refused"),
    ("slash-backslash", "GET /\\{evil}/secret", "refused"),
    ("encoded-slashes", "GET %2F%2F{evil}/secret", "refused"),
    ("encoded-at", "GET %40{evil}/secret", "refused"),
    ("query-at", "GET ?@{evil}/secret", "refused"),
    ("fragment-at", "GET #@{evil}/secret", "refused"),
    ("double-slash", "GET //{evil}/secret", "upstream"),
    ("slash-encoded-slashes", "GET /%2F%2F{evil}/secret", "upstream"),
]


@pytest.mark.parametrize(("line", "goes"), [f[1:] for f in WS_FORMS],
                         ids=[f[0] for f in WS_FORMS])
async def test_ws_target_cannot_choose_the_host(line: str, goes: str, attacker: Attacker,
                                                ws_upstream: Upstream,
                                                make_proxy: MakeProxy) -> None:
    proxy = await make_proxy(ws_upstream.url, kind="ws")
    request_line = line.format(evil=attacker.address)
    answer = await _exchange(proxy.listeners["r"],
                             f"{request_line} HTTP/1.1\r\nHost: {attacker.address}\r\n"
                             f"{_WS_HEADERS}\r\n")
    await asyncio.sleep(0.05)
    assert attacker.connections == []
    assert b"SECRET" not in answer
    target = request_line.split(" ", 1)[1]
    if goes == "upstream":
        assert _status(answer) == 101 and ws_upstream.targets == [target]
    else:
        assert 400 <= _status(answer) < 500, answer
        assert ws_upstream.targets == []


async def test_ws_upstream_redirect_elsewhere_is_not_followed(
        attacker: Attacker, ws_upstream: Upstream, make_proxy: MakeProxy) -> None:
    proxy = await make_proxy(ws_upstream.url, kind="ws")
    answer = await _exchange(proxy.listeners["r"],
                             f"GET /moved/{attacker.address}/secret HTTP/1.1\r\n"
                             f"Host: x\r\n{_WS_HEADERS}\r\n")
    await asyncio.sleep(0.05)
    assert attacker.connections == []
    assert _status(answer) == 502 and b"redirect" in answer


async def test_ws_refused_handshake_status_passes_but_not_the_upstream_body(
        attacker: Attacker, make_proxy: MakeProxy) -> None:
    # the "upstream" answers the handshake with 200 and a body: the client learns the
    # status, never the body
    proxy = await make_proxy(f"ws://{attacker.address}", kind="ws")
    answer = await _exchange(proxy.listeners["r"],
                             f"GET /x HTTP/1.1\r\nHost: x\r\n{_WS_HEADERS}\r\n")
    assert len(attacker.connections) == 1
    assert b"SECRET" not in answer
    assert _status(answer) == 502 and b"refused the handshake with 200" in answer
