"""The HTTP proxy with no fault, and its failure modes (upstream down, bad requests)."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import aiohttp
import httpx
import pytest
from aiohttp import web

from tests.chaos.conftest import DOC, sse_body, url


async def test_passes_requests_through_unchanged(upstream, make_proxy):
    proxy = await make_proxy(upstream)
    async with aiohttp.ClientSession() as s:
        async with s.get(url(proxy, "/doc")) as r:
            assert r.status == 200
            assert await r.json() == DOC
        async with s.post(url(proxy, "/echo/a?b=1"), data=b"hello",
                          headers={"X-Test": "yes"}) as r:
            assert await r.json() == {"method": "POST", "path": "/echo/a?b=1",
                                      "body": "hello", "x_test": "yes"}
        async with s.get(url(proxy, "/big")) as r:
            assert await r.read() == bytes(range(256)) * 40


async def test_sse_streams_through_as_it_arrives(upstream, make_proxy):
    proxy = await make_proxy(upstream)
    async with httpx.AsyncClient() as client, client.stream("GET", url(proxy, "/sse")) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        body = b"".join([chunk async for chunk in r.aiter_bytes()])
    assert body == b"".join(sse_body())


async def test_upstream_down_gives_502_with_clear_body(make_proxy):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proxy = await make_proxy(f"http://127.0.0.1:{port}")
    async with httpx.AsyncClient() as client:
        r = await client.get(url(proxy, "/doc"))
    assert r.status_code == 502
    assert "upstream" in r.text and "unreachable" in r.text and str(port) in r.text


async def test_malformed_requests_do_not_crash_the_proxy(upstream, make_proxy):
    proxy = await make_proxy(upstream)
    host, port = proxy.listeners["r"]
    for junk in (b"\x00\xff\xfe garbage\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                 b"GET /doc HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
                 b"GET /doc HTTP/1.1\r\nHost: x\r\n" + b"X: " + b"a" * 70000 + b"\r\n\r\n",
                 b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(junk)
        await writer.drain()
        writer.write_eof()
        with contextlib.suppress(ConnectionError, TimeoutError):
            await asyncio.wait_for(reader.read(), 2)
        writer.close()
    async with httpx.AsyncClient() as client:
        r = await client.get(url(proxy, "/doc"))
    assert r.json() == DOC


async def test_upstream_breaking_off_mid_body(upstream, make_proxy):
    proxy = await make_proxy(upstream)
    # a small body is buffered: nothing was sent yet, so the client gets a clear 502
    async with httpx.AsyncClient() as client:
        r = await client.get(url(proxy, "/broken"))
    assert r.status_code == 502 and "broke off mid-body" in r.text
    # a streamed body is already on its way: the client's response breaks the same way
    proxy = await make_proxy(upstream, [{"type": "bandwidth", "bytes_per_second": 1e6}])
    async with aiohttp.ClientSession() as s, s.get(url(proxy, "/broken")) as r:
        with pytest.raises(aiohttp.ClientPayloadError):
            await r.read()
    async with httpx.AsyncClient() as client:  # the proxy is still fine
        assert (await client.get(url(proxy, "/doc"))).json() == DOC


async def test_large_streamed_request_body_and_head(upstream, make_proxy):
    proxy = await make_proxy(upstream)
    body = b"z" * (600 * 1024)  # above the buffering threshold: streamed upstream

    async def chunks():
        for i in range(0, len(body), 65536):
            yield body[i:i + 65536]

    async with httpx.AsyncClient() as client:
        r = await client.post(url(proxy, "/echo"), content=chunks())
        assert len(r.json()["body"]) == len(body)
        r = await client.head(url(proxy, "/doc"))
        assert r.status_code == 200 and r.content == b""


async def test_listeners_report_real_ports_and_counts(upstream, make_proxy):
    proxy = await make_proxy(upstream, [{"type": "latency", "delay": 0, "name": "l"}],
                             control={"listen": "127.0.0.1:0"})
    assert set(proxy.listeners) == {"r", "control"}
    assert all(port > 0 for _, port in proxy.listeners.values())
    async with httpx.AsyncClient() as client:
        for _ in range(3):
            await client.get(url(proxy, "/doc"))
    assert proxy.injected_counts() == {"l": 3}
    assert proxy.active_faults() == ["l"]


def _outcomes(proxy, *more: str) -> dict[str, float]:
    out = {}
    for outcome in ("forwarded", "fault", "upstream_error", *more):
        value = proxy.registry.get_sample_value(
            "chaos_requests_total", {"route": "r", "outcome": outcome})
        out[outcome] = value or 0.0
    return out


async def test_outcome_counted_once_when_the_upstream_breaks_off(upstream, make_proxy):
    # was: counted `forwarded` as soon as the headers came, then `upstream_error`
    # too: two outcomes for the one 502 the client saw
    proxy = await make_proxy(upstream)
    async with httpx.AsyncClient() as client:
        assert (await client.get(url(proxy, "/broken"))).status_code == 502
        assert (await client.get(url(proxy, "/doc"))).status_code == 200
    assert _outcomes(proxy) == {"forwarded": 1, "fault": 0, "upstream_error": 1}


@pytest.mark.parametrize(("head", "streamed"), [
    (b"Content-Length: 10\r\n\r\nabc", False),  # small: buffered
    (b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", True),  # no length: streamed
])
async def test_route_timeout_running_out_mid_body(head, streamed):
    # was: buffered, an unlabelled 504 and an "Error handling request" traceback;
    # streamed, a traceback and a FIN; neither counted as an upstream error
    from chaos.config import parse_config
    from chaos.proxy import ChaosProxy

    async def stall(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\n" + head)
        await writer.drain()
        with contextlib.suppress(ConnectionError):
            await reader.read()  # until the proxy gives up on us
        writer.close()

    server = await asyncio.start_server(stall, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = parse_config({"routes": [{"name": "r", "kind": "http", "listen": "127.0.0.1:0",
                                       "upstream": f"http://127.0.0.1:{port}",
                                       "timeout": "300ms"}]})
    try:
        async with ChaosProxy(config) as proxy:
            timeout = aiohttp.ClientTimeout(total=10)
            async with aiohttp.ClientSession(timeout=timeout) as s, s.get(url(proxy, "/slow")) as r:
                if streamed:
                    assert r.status == 200
                    with pytest.raises(aiohttp.ClientPayloadError):
                        await r.read()
                else:
                    assert r.status == 504
                    assert r.headers["X-Chaos-Proxy"] == "upstream-error"
                    assert "timed out mid-body" in await r.text()
            assert _outcomes(proxy) == {"forwarded": 0, "fault": 0, "upstream_error": 1}
    finally:
        server.close()


@pytest.mark.parametrize("sent", [b"", b"GET /doc HTTP/1.1\r\nHost: x\r\n",  # slowloris
                                  b"GET /doc HTTP/1.1\r\nHost: x\r\n\r\n"])  # then idle
async def test_idle_and_trickling_clients_are_dropped(upstream, make_proxy, monkeypatch,
                                                      sent):
    # was: aiohttp's default, an hour: a few thousand idle sockets took every fd
    monkeypatch.setattr("chaos.http.IDLE_TIMEOUT", 0.3)
    proxy = await make_proxy(upstream, [{"type": "hang", "duration": 0.6, "match":
                                         {"path": "/sse"}}], control={"listen": "127.0.0.1:0"})
    for route in ("r", "control"):
        host, port = proxy.listeners[route]
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(sent)
        await writer.drain()
        try:
            data = await asyncio.wait_for(reader.read(), 10)  # until the proxy closes
        finally:
            writer.close()
        assert data.count(b"HTTP/1.1 ") == (1 if sent.endswith(b"\r\n\r\n") else 0)
    # a request being served is not cut, however long it takes (here a hang)
    async with httpx.AsyncClient() as client:
        r = await client.get(url(proxy, "/sse"))
        assert r.status_code == 200 and r.content == b"".join(sse_body())


async def test_route_timeout_does_not_cut_a_stream_that_keeps_flowing():
    # was: a total timeout: an LLM stream longer than it was reset mid-answer
    from chaos.config import parse_config
    from chaos.proxy import ChaosProxy

    events = [f"data: {i}\n\n".encode() for i in range(8)]

    async def stream(request):
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for event in events:
            await resp.write(event)
            await asyncio.sleep(0.1)  # 0.8 s in all, never 0.5 s silent
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/sse", stream)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    config = parse_config({"routes": [{"name": "r", "kind": "http", "listen": "127.0.0.1:0",
                                       "upstream": f"http://127.0.0.1:{port}",
                                       "timeout": "500ms"}]})
    try:
        async with ChaosProxy(config) as proxy, httpx.AsyncClient(timeout=10) as client:
            r = await client.get(url(proxy, "/sse"))
            assert r.status_code == 200 and r.content == b"".join(events)
            assert _outcomes(proxy) == {"forwarded": 1, "fault": 0, "upstream_error": 0}
    finally:
        await runner.cleanup()


async def test_a_client_hanging_up_mid_stream_is_routine(make_proxy, caplog):
    # was: an "Error handling request" traceback at ERROR for each one (every barge-in
    # that cancels an LLM stream), and no outcome counted
    upstream_saw = asyncio.get_running_loop().create_future()

    async def stream(request):
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        try:
            for i in range(200):
                await resp.write(b"data: %d\n\n" % i)
                await asyncio.sleep(0.02)
        except ConnectionError as e:
            upstream_saw.set_result(e)
        return resp

    app = web.Application()
    app.router.add_get("/sse", stream)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        proxy = await make_proxy(f"http://127.0.0.1:{runner.addresses[0][1]}")
        host, port = proxy.listeners["r"]
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /sse HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"data: 0" in await reader.readuntil(b"data: 0")
        writer.transport.abort()
        await asyncio.wait_for(upstream_saw, 10)  # the proxy let go of the upstream too
        for _ in range(100):
            if _outcomes(proxy, "client_closed")["client_closed"]:
                break
            await asyncio.sleep(0.02)
        assert _outcomes(proxy, "client_closed") == {
            "forwarded": 0, "fault": 0, "upstream_error": 0, "client_closed": 1}
        assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text
    finally:
        await runner.cleanup()


async def test_a_client_gone_before_its_body_is_read_is_routine(upstream, make_proxy, caplog):
    # was: "Error handling request" (ConnectionResetError reading the body) and no
    # outcome, for each POST whose client timed out during a latency fault
    proxy = await make_proxy(upstream, [{"type": "latency", "delay": 0.5}])
    host, port = proxy.listeners["r"]
    _reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
    await writer.drain()
    writer.transport.abort()
    for _ in range(200):
        if _outcomes(proxy, "client_closed")["client_closed"]:
            break
        await asyncio.sleep(0.02)
    assert _outcomes(proxy, "client_closed") == {
        "forwarded": 0, "fault": 0, "upstream_error": 0, "client_closed": 1}
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text
