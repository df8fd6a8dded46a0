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

On a loopback address a web page is the threat: a page the tester has open can
POST `text/plain` to 127.0.0.1 without a CORS preflight, and with DNS rebinding
it can read and write the API under its own host name. So there (token or not)
every request gets 403 unless its Host names a loopback address or the listen
address (127.0.0.1, localhost, [::1]; any port, so an SSH tunnel on another
port works: a rebinding page never has a loopback name), an `Origin` header, if
any, names one too, and a request with a body says `Content-Type:
application/json`, which a page cannot send cross-origin without a preflight
this API never answers. A body-less `POST /reset` (curl) needs no Content-Type.
Bound elsewhere the token is the guard: a page cannot add the header, and the
names a remote client uses for the machine cannot be known here.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from chaos.bound import bound_address
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


_LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_HOST = re.compile(r"^(?:\[(?P<v6>[0-9a-fA-F:.]+)\]|(?P<name>[^:\[\]@/]+))(?::\d{1,5})?$")
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def host_allowed(host: str, listen_host: str) -> bool:
    """Does a Host header (or an Origin's host) name a loopback name or `listen_host`?"""
    m = _HOST.match(host)
    if m is None:
        return False
    name = (m.group("v6") or m.group("name")).lower()
    return name in _LOCAL_NAMES or name == listen_host.lower().strip("[]")


def _origin_host(origin: str) -> str:
    scheme, sep, rest = origin.partition("://")
    return rest if sep and scheme.lower() in ("http", "https") else ""


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
        app = web.Application(middlewares=[self._same_origin, self._auth])
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
    async def _same_origin(self, request: web.Request, handler: Handler
                           ) -> web.StreamResponse:
        """On loopback: 403 for foreign Host or Origin, and for bodies not sent as JSON."""
        listen = self.config.listen[0]
        if not is_loopback(listen):
            return await handler(request)
        if not host_allowed(request.headers.get("Host", ""), listen):
            return _error(403, "the Host header must name this machine's loopback address "
                               "(127.0.0.1, localhost or [::1]) or the listen address")
        origin = request.headers.get("Origin")
        if origin is not None and not host_allowed(_origin_host(origin), listen):
            return _error(403, f"requests from origin {origin[:100]!r} are not accepted")
        if request.method in _WRITES and request.body_exists:
            ctype = request.headers.get("Content-Type", "")
            if ctype.split(";", 1)[0].strip().lower() != "application/json":
                return _error(403, "a request body must be sent as "
                                   "Content-Type: application/json")
        return await handler(request)

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        token = self.config.token
        if token:
            given = request.headers.get("Authorization", "")
            # aiohttp keeps undecodable header bytes as surrogates: compare the bytes sent
            sent = given.encode("utf-8", "surrogateescape")
            if not hmac.compare_digest(sent, f"Bearer {token}".encode()):
                resp = _error(401, "missing or wrong bearer token")
                resp.headers["WWW-Authenticate"] = 'Bearer realm="chaos-proxy"'
                return resp
        return await handler(request)

    async def start(self) -> tuple[str, int]:
        """Serve; returns the bound address."""
        from chaos.http import IDLE_TIMEOUT

        self._runner = web.AppRunner(self.app(), access_log=None,
                                     keepalive_timeout=IDLE_TIMEOUT)
        await self._runner.setup()
        host, port = self.config.listen
        self._site = web.TCPSite(self._runner, host, port)
        await self._site.start()
        server = self._site._server
        assert server is not None
        try:
            return bound_address(server.sockets, host, port)  # type: ignore[attr-defined]
        except OSError:
            await self.stop()
            raise

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
        except RecursionError:  # json.loads recurses per nesting level
            return _error(400, "the body is nested too deep")
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
        # the body may arrive slowly: merge into the fault as it is now, so a DELETE
        # or PATCH that finished meanwhile is neither undone nor overwritten
        current = self.proxy.faults.get(name)
        if current is None:
            return _error(404, f"no fault named {name!r}")
        base = current.spec.to_dict()
        if "window" in data:  # a new timeline replaces the old one, not adds to it
            base = {k: v for k, v in base.items() if k not in ("at", "for")}
        elif "at" in data or "for" in data:
            base.pop("window", None)
        merged = {**base, **data, "name": name}
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
