"""WebSocket faults seen by a real websockets client through the proxy."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus

from chaos.ws import fragments
from tests.chaos.conftest import url
from tests.timing import assert_delay


async def _upstream_handler(ws: ServerConnection) -> None:
    path = ws.request.path if ws.request else "/"
    if path.startswith("/close"):
        await ws.close(4000, "upstream says bye")
        return
    try:
        async for message in ws:
            await ws.send(message)
    except ConnectionClosed:
        pass


@pytest.fixture
async def ws_upstream() -> AsyncIterator[str]:
    def pick(conn: ServerConnection, offered: list[str]) -> str | None:
        return "tts.v1" if "tts.v1" in offered else None

    def deny(conn: ServerConnection, request):
        return conn.respond(403, "no entry\n") if request.path == "/deny" else None

    async with serve(_upstream_handler, "127.0.0.1", 0, select_subprotocol=pick,
                     process_request=deny, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}"


def client(proxy, path: str = "/echo", **kwargs):
    return connect(url(proxy, path, scheme="ws"), proxy=None, open_timeout=3, **kwargs)


async def recv(ws, timeout: float = 1.0):
    return await asyncio.wait_for(ws.recv(), timeout)


async def test_messages_and_subprotocol_pass_through(ws_upstream, make_proxy):
    proxy = await make_proxy(ws_upstream, kind="ws")
    async with client(proxy, subprotocols=["tts.v1"]) as ws:
        assert ws.subprotocol == "tts.v1"
        await ws.send("hello")
        assert await recv(ws) == "hello"
        await ws.send(b"\x00\x01")
        assert await recv(ws) == b"\x00\x01"


async def test_upstream_close_code_is_passed_on(ws_upstream, make_proxy):
    proxy = await make_proxy(ws_upstream, kind="ws")
    async with client(proxy, "/close") as ws:
        with pytest.raises(ConnectionClosed):
            await recv(ws)
    assert ws.close_code == 4000 and ws.close_reason == "upstream says bye"


async def test_close_code_arrives_as_configured(ws_upstream, make_proxy):
    proxy = await make_proxy(ws_upstream, [{"type": "ws_close", "code": 1013,
                                            "reason": "try again later", "after_n": 1,
                                            "direction": "upstream"}], kind="ws")
    async with client(proxy) as ws:
        await ws.send("first")
        assert await recv(ws) == "first"
        await ws.send("second")
        with pytest.raises(ConnectionClosed):
            await recv(ws)
    assert ws.close_code == 1013 and ws.close_reason == "try again later"


async def test_drop_only_matching_message_type(ws_upstream, make_proxy):
    proxy = await make_proxy(ws_upstream, [{"type": "ws_drop", "direction": "upstream",
                                            "match": {"message": "binary"}}], kind="ws")
    async with client(proxy) as ws:
        await ws.send(b"audio")
        await ws.send("text")
        assert await recv(ws) == "text"
        with pytest.raises(TimeoutError):
            await recv(ws, 0.2)


async def test_duplicate_and_reorder(ws_upstream, make_proxy):
    proxy = await make_proxy(ws_upstream, [{"type": "ws_duplicate", "direction": "upstream"}],
                             kind="ws")
    async with client(proxy) as ws:
        await ws.send("a")
        assert [await recv(ws), await recv(ws)] == ["a", "a"]
    proxy = await make_proxy(ws_upstream, [{"type": "ws_reorder", "direction": "downstream",
                                            "every_nth": 2, "after_n": 0}], kind="ws")
    async with client(proxy) as ws:
        for m in ("1", "2", "3", "4"):
            await ws.send(m)
        # messages 2 and 4 are held behind their successors; 4 has none, so it is lost
        assert [await recv(ws), await recv(ws), await recv(ws)] == ["1", "3", "2"]


async def test_delay(ws_upstream, make_proxy):
    proxy = await make_proxy(ws_upstream, [{"type": "ws_delay", "delay": "400ms",
                                            "direction": "downstream"}], kind="ws")
    async with client(proxy) as ws:
        started = time.monotonic()
        await ws.send("x")
        assert await recv(ws) == "x"
        assert_delay(time.monotonic() - started, 0.4)


async def test_fragment_arrives_in_pieces(ws_upstream, make_proxy):
    proxy = await make_proxy(ws_upstream, [{"type": "ws_fragment", "fragments": 3,
                                            "direction": "downstream"}], kind="ws")
    async with client(proxy) as ws:
        await ws.send("abcdefghi")
        pieces = [p async for p in ws.recv_streaming()]
        # websockets ends a fragmented message with an empty final frame
        assert pieces == ["abc", "def", "ghi", ""]
    assert fragments(b"ab", 5) == [b"a", b"b"]


async def test_abort_gives_1006(ws_upstream, make_proxy):
    proxy = await make_proxy(ws_upstream, [{"type": "ws_abort"}], kind="ws")
    async with client(proxy) as ws:
        await ws.send("x")
        with pytest.raises(ConnectionClosedError):
            await recv(ws)
    assert ws.close_code == 1006


async def test_handshake_reject_and_delay(ws_upstream, make_proxy):
    proxy = await make_proxy(ws_upstream, [{"type": "ws_handshake_reject", "status": 429}],
                             kind="ws")
    with pytest.raises(InvalidStatus) as info:
        async with client(proxy):
            pass
    assert info.value.response.status_code == 429
    proxy = await make_proxy(ws_upstream, [{"type": "ws_handshake_delay", "delay": 0.4}],
                             kind="ws")
    started = time.monotonic()
    async with client(proxy) as ws:
        assert_delay(time.monotonic() - started, 0.4)
        await ws.send("ok")
        assert await recv(ws) == "ok"


async def test_pong_starvation_trips_client_keepalive(ws_upstream, make_proxy):
    proxy = await make_proxy(ws_upstream, [{"type": "ws_pong_starvation"}], kind="ws")
    async with client(proxy, ping_interval=0.1, ping_timeout=0.2, close_timeout=0.3) as ws:
        with pytest.raises(ConnectionClosed) as info:
            await recv(ws, 2.0)
    assert info.value.sent is not None and info.value.sent.code == 1011
    assert "keepalive" in info.value.sent.reason


async def test_upstream_down_gives_502(make_proxy):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proxy = await make_proxy(f"ws://127.0.0.1:{port}", kind="ws")
    with pytest.raises(InvalidStatus) as info:
        async with client(proxy):
            pass
    assert info.value.response.status_code == 502
    assert b"unreachable" in info.value.response.body


async def test_upstream_refusal_is_passed_on(ws_upstream, make_proxy):
    proxy = await make_proxy(ws_upstream, kind="ws")
    with pytest.raises(InvalidStatus) as info:
        async with client(proxy, "/deny"):
            pass
    assert info.value.response.status_code == 403
    # the status is passed on, the upstream's body is not (it could be anything)
    assert b"no entry" not in info.value.response.body
    assert b"refused the handshake with 403" in info.value.response.body


async def _until_closed(reader: asyncio.StreamReader, timeout: float = 2.0) -> bytes:
    """All the proxy sends until it closes the connection; TimeoutError if it does not."""
    data = b""
    async with asyncio.timeout(timeout):
        while chunk := await reader.read(4096):
            data += chunk
    return data


async def test_malformed_frames_do_not_crash_the_proxy(ws_upstream, make_proxy):
    proxy = await make_proxy(ws_upstream, kind="ws")
    host, port = proxy.listeners["r"]
    handshake = (b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 b"Sec-WebSocket-Version: 13\r\n\r\n")
    # after a good handshake, a broken frame gets a close frame with 1002 (protocol
    # error, RFC 6455 7.4.1) and the connection is closed, within the deadline
    for junk in (b"\xff" * 64,  # reserved bits and opcode
                 b"\x81\x7f" + b"\xff" * 8,  # unmasked, 2**64 - 1 bytes long
                 b"\x8f\x80\x00\x00\x00\x00",  # reserved opcode 15
                 b"\x81\x05hello"):  # unmasked: a client must mask
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(handshake)
        response = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
        assert response.startswith(b"HTTP/1.1 101 "), response
        writer.write(junk)
        await writer.drain()
        closing = await _until_closed(reader)
        # one unmasked close frame: 0x88 (FIN, close), length, code, reason
        assert closing[:1] == b"\x88" and closing[1] == len(closing) - 2, (junk, closing)
        assert int.from_bytes(closing[2:4], "big") == 1002, (junk, closing)
        writer.close()
    # not a WebSocket handshake: no upgrade, and the connection is closed
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    assert await _until_closed(reader) == b""  # not HTTP: nothing to answer
    writer.close()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET / HTTP/1.1\r\n\r\n")
    answer = await _until_closed(reader)
    assert answer.startswith(b"HTTP/1.1 426 Upgrade Required\r\n"), answer
    writer.close()
    async with client(proxy) as ws:
        await ws.send("still alive")
        assert await recv(ws) == "still alive"


async def test_failed_handshake_leaves_no_upstream_connection_open(make_proxy):
    # junk in the same packet as the handshake: the proxy has dialled the upstream in
    # process_request, then the client connection fails before the handler runs; the
    # upstream connection must be closed with it, not held until stop()
    open_upstream: set[ServerConnection] = set()

    async def hold(ws: ServerConnection) -> None:
        open_upstream.add(ws)
        try:
            await ws.wait_closed()
        finally:
            open_upstream.discard(ws)

    async with serve(hold, "127.0.0.1", 0, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        proxy = await make_proxy(f"ws://127.0.0.1:{port}", kind="ws")
        host, proxy_port = proxy.listeners["r"]
        handshake = (b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     b"Sec-WebSocket-Version: 13\r\n\r\n")
        writers = []
        for junk in (b"\xff" * 64, b"GET / HTTP/1.1\r\n\r\n", b"\x81\x05hello"):
            reader, writer = await asyncio.open_connection(host, proxy_port)
            writer.write(handshake + junk)
            await writer.drain()
            writers.append(writer)
            await _until_closed(reader, 3)
        async with asyncio.timeout(3):
            while open_upstream:
                await asyncio.sleep(0.02)
        assert not open_upstream
        for writer in writers:
            writer.close()
        # a good client still gets through, and its upstream connection is held meanwhile
        async with client(proxy) as ws:
            await ws.send("x")
            await asyncio.sleep(0.1)
            assert len(open_upstream) == 1
        async with asyncio.timeout(3):
            while open_upstream:
                await asyncio.sleep(0.02)


@pytest.mark.parametrize("sent", [b"", b"GET /echo HTTP/1.1\r\nHost: x\r\n"])
async def test_a_client_that_never_finishes_its_request_is_dropped(
        ws_upstream, make_proxy, monkeypatch, sent):
    # was: held forever (no opening-handshake timeout), one file descriptor each
    monkeypatch.setattr("chaos.ws.REQUEST_TIMEOUT", 0.3)
    proxy = await make_proxy(ws_upstream, [{"type": "ws_handshake_delay", "delay": 0.6}],
                             kind="ws")
    host, port = proxy.listeners["r"]
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(sent)
    await writer.drain()
    try:
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the proxy
    finally:
        writer.close()
    # a handshake that outlasts the request timeout (its delay fault) is not cut,
    # nor is a session that lasts longer
    async with client(proxy) as ws:
        await asyncio.sleep(0.4)
        await ws.send("still here")
        assert await recv(ws) == "still here"


async def test_a_message_over_the_size_limit_closes_with_1009(ws_upstream, make_proxy,
                                                              monkeypatch):
    # was: no limit: the proxy held any message whole, 1 GB from one client took 1 GB
    monkeypatch.setattr("chaos.ws.MAX_MESSAGE", 64 * 1024)
    proxy = await make_proxy(ws_upstream, kind="ws")
    async with client(proxy, max_size=None) as ws:
        await ws.send(b"x" * (64 * 1024))
        assert len(await recv(ws)) == 64 * 1024
        await ws.send(b"x" * (64 * 1024 + 1))
        with pytest.raises(ConnectionClosedError) as caught:
            await recv(ws, 5)
        assert caught.value.rcvd is not None and caught.value.rcvd.code == 1009
    async with client(proxy) as ws:  # others carry on
        await ws.send("hi")
        assert await recv(ws) == "hi"


async def test_a_dropped_message_is_not_seen_by_the_faults_after_the_drop(ws_upstream,
                                                                         make_proxy):
    # was: a later fault still decided on a dropped message: ws_duplicate's max_count
    # was spent on "a", which never arrived, and "c" came once
    proxy = await make_proxy(ws_upstream, [
        {"type": "ws_drop", "name": "d", "direction": "upstream", "max_count": 2},
        {"type": "ws_duplicate", "name": "u", "direction": "upstream", "max_count": 1},
    ], kind="ws")
    async with client(proxy) as ws:
        for m in ("a", "b", "c", "d"):
            await ws.send(m)
        assert [await recv(ws) for _ in range(3)] == ["c", "c", "d"]
        with pytest.raises(TimeoutError):
            await recv(ws, 0.2)
    assert proxy.injected_counts() == {"d": 2, "u": 1}


async def test_an_upstream_sending_garbage_closes_the_client_with_1011(make_proxy):
    # was: the proxy sent the upstream its 1002 and waited for it to close the TCP
    # connection, forever: the client heard nothing, and both sockets stayed open
    import base64
    import hashlib

    upstream_closed = asyncio.get_running_loop().create_future()

    async def bad_upstream(reader, writer):
        request = await reader.readuntil(b"\r\n\r\n")
        key = next(line.split(b":", 1)[1].strip() for line in request.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:"))
        accept = base64.b64encode(hashlib.sha1(
            key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        await asyncio.sleep(0.2)
        writer.write(b"\xff" * 16)  # reserved bits and opcode; then never a close
        with contextlib.suppress(ConnectionError):
            while await reader.read(1024):
                pass
        upstream_closed.set_result(True)
        writer.close()

    server = await asyncio.start_server(bad_upstream, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        proxy = await make_proxy(f"ws://127.0.0.1:{port}", kind="ws")
        async with client(proxy) as ws:
            with pytest.raises(ConnectionClosedError) as caught:
                await recv(ws, 10)
        assert caught.value.rcvd is not None and caught.value.rcvd.code == 1011
        assert await asyncio.wait_for(upstream_closed, 10)
    finally:
        server.close()
