"""The HTTP proxy with no fault, and its failure modes (upstream down, bad requests)."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import aiohttp
import httpx

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
