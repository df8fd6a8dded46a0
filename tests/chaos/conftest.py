"""Shared fixtures: a real upstream on 127.0.0.1:0 and a proxy factory."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from chaos.config import parse_config
from chaos.proxy import ChaosProxy

DOC: dict[str, Any] = {
    "id": 7,
    "status": "active",
    "score": 4.5,
    "customer": {"name": "Ada", "tier": "gold", "tags": ["a", "b"]},
    "items": [{"sku": "x1", "qty": 2}, {"sku": "x2", "qty": 1}],
}

SSE_EVENTS = [
    {"choices": [{"delta": {"content": "Hel"}}]},
    {"choices": [{"delta": {"content": "lo"}}]},
    {"choices": [{"delta": {"content": "!"}}]},
]


def sse_body() -> list[bytes]:
    """The events the upstream streams, [DONE] last."""
    return [f"data: {json.dumps(e)}\n\n".encode() for e in SSE_EVENTS] + [b"data: [DONE]\n\n"]


def upstream_app() -> web.Application:
    """A small upstream: JSON, text, SSE, a large body and an echo."""

    async def doc(request: web.Request) -> web.Response:
        return web.json_response(DOC)

    async def text(request: web.Request) -> web.Response:
        return web.Response(text="plain words, not JSON")

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=bytes(range(256)) * 40)

    async def sse(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        try:
            for event in sse_body():
                await resp.write(event)
                await asyncio.sleep(0.005)
            await resp.write_eof()
        except ConnectionError:
            pass  # the proxy cut the stream on purpose
        return resp

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response({"method": request.method, "path": request.path_qs,
                                  "body": body.decode("utf-8", "replace"),
                                  "x_test": request.headers.get("X-Test")})

    async def broken(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": "1000"})
        await resp.prepare(request)
        await resp.write(b"x" * 10)
        assert request.transport is not None
        request.transport.close()
        return resp

    app = web.Application()
    app.add_routes([web.get("/doc", doc), web.get("/text", text), web.get("/big", big),
                    web.get("/sse", sse), web.get("/broken", broken),
                    web.route("*", "/echo", echo),
                    web.route("*", "/echo/{tail:.*}", echo)])
    return app


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    """Base URL of a running upstream."""
    runner = web.AppRunner(upstream_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


MakeProxy = Callable[..., Awaitable[ChaosProxy]]


@pytest.fixture
async def make_proxy() -> AsyncIterator[MakeProxy]:
    """Start a ChaosProxy from keyword parts; all are stopped after the test."""
    started: list[ChaosProxy] = []

    async def make(upstream: str, faults: list[dict[str, Any]] | None = None, *,
                   kind: str = "http", seed: int | None = 1, clock: Any = None,
                   control: dict[str, Any] | None = None) -> ChaosProxy:
        data: dict[str, Any] = {
            "routes": [{"name": "r", "kind": kind, "listen": "127.0.0.1:0",
                        "upstream": upstream}],
            "faults": faults or [],
        }
        if control is not None:
            data["control"] = control
        kwargs: dict[str, Any] = {"seed": seed}
        if clock is not None:
            kwargs["clock"] = clock
        proxy = ChaosProxy(parse_config(data, "<test>"), **kwargs)
        await proxy.start()
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        await proxy.stop()


def url(proxy: ChaosProxy, path: str, route: str = "r", scheme: str = "http") -> str:
    """URL of `path` through the proxy's route."""
    host, port = proxy.listeners[route]
    return f"{scheme}://{host}:{port}{path}"
