"""REST control API: list, add, change and remove faults live; reset; metrics.

    GET    /faults            every fault with its state and counters
    GET    /faults/{name}     one fault
    POST   /faults            add a fault (same fields as a YAML fault entry)
    PATCH  /faults/{name}     change some fields of a fault (re-validated)
    DELETE /faults/{name}     remove a fault
    POST   /reset             remove every fault
    GET    /metrics           Prometheus exposition of the proxy's registry

It listens on 127.0.0.1 by default. Bound to any other address it refuses to
start without a token; with a token every request needs
`Authorization: Bearer <token>` and gets 401 otherwise.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from chaos.config import ControlConfig, check_fault_route, parse_fault
from chaos.errors import ConfigError, LocalError

if TYPE_CHECKING:
    from chaos.proxy import ChaosProxy

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback(host: str) -> bool:
    """Is `host` a loopback address (or localhost)?"""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def _config_error(e: ConfigError) -> web.Response:
    issues = [{"field": i.field, "message": i.message} for i in e.issues]
    return _error(400, str(e), issues=issues)


class ControlApi:
    """The control API of one ChaosProxy."""

    def __init__(self, proxy: ChaosProxy, config: ControlConfig) -> None:
        host = config.listen[0]
        if not is_loopback(host) and not config.token:
            raise LocalError(f"the control API bound to {host} needs a token (--token)")
        self.proxy = proxy
        self.config = config
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._seq = 0

    def app(self) -> web.Application:
        """The aiohttp application (also handy for in-process tests)."""
        app = web.Application(middlewares=[self._auth])
        app.add_routes([
            web.get("/faults", self.list_faults),
            web.get("/faults/{name}", self.get_fault),
            web.post("/faults", self.add_fault),
            web.patch("/faults/{name}", self.patch_fault),
            web.delete("/faults/{name}", self.delete_fault),
            web.post("/reset", self.reset),
            web.get("/metrics", self.metrics),
        ])
        return app

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        token = self.config.token
        if token:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                resp = _error(401, "missing or wrong bearer token")
                resp.headers["WWW-Authenticate"] = 'Bearer realm="chaos-proxy"'
                return resp
        return await handler(request)

    async def start(self) -> tuple[str, int]:
        """Serve; returns the bound address."""
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        host, port = self.config.listen
        self._site = web.TCPSite(self._runner, host, port)
        await self._site.start()
        server = self._site._server
        assert server is not None
        sock = server.sockets[0]  # type: ignore[attr-defined]
        bound = sock.getsockname()[:2]
        return bound[0], bound[1]

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _now(self) -> float:
        return self.proxy.clock()

    async def list_faults(self, request: web.Request) -> web.Response:
        """GET /faults."""
        now = self._now()
        return web.json_response({
            "faults": [f.status(now) for f in self.proxy.faults],
            "active": self.proxy.faults.active(now),
        })

    async def get_fault(self, request: web.Request) -> web.Response:
        """GET /faults/{name}."""
        fault = self.proxy.faults.get(request.match_info["name"])
        if fault is None:
            return _error(404, f"no fault named {request.match_info['name']!r}")
        return web.json_response(fault.status(self._now()))

    async def _body(self, request: web.Request) -> dict[str, Any] | web.Response:
        try:
            data = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "the body must be a JSON object")
        if not isinstance(data, dict):
            return _error(400, "the body must be a JSON object")
        return data

    async def add_fault(self, request: web.Request) -> web.Response:
        """POST /faults: add a fault; 409 when the name is taken."""
        data = await self._body(request)
        if isinstance(data, web.Response):
            return data
        if "name" not in data:
            self._seq += 1
            data["name"] = f"{data.get('type', 'fault')}-live-{self._seq}"
        if self.proxy.faults.get(str(data["name"])) is not None:
            return _error(409, f"a fault named {data['name']!r} exists; PATCH or DELETE it")
        try:
            spec = parse_fault(data, source="POST /faults")
            check_fault_route(spec, self.proxy.config, "POST /faults")
        except ConfigError as e:
            return _config_error(e)
        wrapped = self.proxy.faults.add(spec)
        return web.json_response(wrapped.status(self._now()), status=201)

    async def patch_fault(self, request: web.Request) -> web.Response:
        """PATCH /faults/{name}: merge fields, re-validate, keep the timeline origin."""
        name = request.match_info["name"]
        current = self.proxy.faults.get(name)
        if current is None:
            return _error(404, f"no fault named {name!r}")
        data = await self._body(request)
        if isinstance(data, web.Response):
            return data
        merged = {**current.spec.to_dict(), **data, "name": name}
        try:
            spec = parse_fault(merged, source=f"PATCH /faults/{name}")
            check_fault_route(spec, self.proxy.config, f"PATCH /faults/{name}")
        except ConfigError as e:
            return _config_error(e)
        wrapped = self.proxy.faults.add(spec, origin=current.origin)
        return web.json_response(wrapped.status(self._now()))

    async def delete_fault(self, request: web.Request) -> web.Response:
        """DELETE /faults/{name}."""
        name = request.match_info["name"]
        if not self.proxy.faults.remove(name):
            return _error(404, f"no fault named {name!r}")
        return web.Response(status=204)

    async def reset(self, request: web.Request) -> web.Response:
        """POST /reset: remove every fault."""
        removed = len(self.proxy.faults)
        self.proxy.faults.clear()
        return web.json_response({"removed": removed})

    async def metrics(self, request: web.Request) -> web.Response:
        """GET /metrics."""
        body = generate_latest(self.proxy.registry)
        resp = web.Response(body=body)
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return resp
