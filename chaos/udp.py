"""UDP relay (asyncio datagrams) applying packet faults in both directions.

Each client address gets a session with its own socket toward the upstream,
like a NAT, so replies find their way back. Every packet is offered to the
route's UDP faults (the wrapper decides per packet and direction); each fault
runs its packet model from chaos/packet.py, one stateful instance per session
and direction, and the relay sends what comes out at the times it asks for.
Sessions idle for IDLE_TIMEOUT seconds are closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from chaos.config import RouteConfig
from chaos.faults.packet_faults import UdpFault
from chaos.faultset import FaultSet
from chaos.metrics import ChaosMetrics
from chaos.packet import Impairment
from chaos.units import parse_hostport
from chaos.wrapper import MatchInfo

IDLE_TIMEOUT = 60.0
_MAX_PENDING = 1024  # datagrams held while a new session's socket opens
_UP = MatchInfo(direction="upstream")
_DOWN = MatchInfo(direction="downstream")


@dataclass
class _Session:
    client: tuple[str, int]
    transport: asyncio.DatagramTransport | None = None
    pending: list[bytes] = field(default_factory=list)
    models: dict[tuple[int, str], Impairment] = field(default_factory=dict)
    last_seen: float = 0.0
    opener: asyncio.Future[None] | None = None


class _ListenSide(asyncio.DatagramProtocol):
    def __init__(self, relay: UdpRelay) -> None:
        self.relay = relay

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.relay.from_client(data, addr)

    def error_received(self, exc: Exception) -> None:
        self.relay.errors.inc()


class _UpstreamSide(asyncio.DatagramProtocol):
    def __init__(self, relay: UdpRelay, session: _Session) -> None:
        self.relay, self.session = relay, session

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.relay.from_upstream(data, self.session)

    def error_received(self, exc: Exception) -> None:
        # e.g. ICMP port unreachable: the upstream is down; keep relaying
        self.relay.errors.inc()


class UdpRelay:
    """One UDP listener relaying to `route.upstream` and back."""

    def __init__(self, route: RouteConfig, faults: FaultSet, metrics: ChaosMetrics,
                 clock: Callable[[], float]) -> None:
        self.route = route
        self.name = route.name
        self.faults = faults
        self.metrics = metrics
        self.clock = clock
        self.upstream = parse_hostport(route.upstream)
        self.sessions: dict[tuple[str, int], _Session] = {}
        self._transport: asyncio.DatagramTransport | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._up = metrics.requests.labels(route.name, "packet_upstream")
        self._down = metrics.requests.labels(route.name, "packet_downstream")
        self.errors = metrics.requests.labels(route.name, "packet_error")

    async def start(self) -> tuple[str, int]:
        """Bind and relay; returns the bound address."""
        self._loop = asyncio.get_running_loop()
        infos = await self._loop.getaddrinfo(*self.upstream, type=socket.SOCK_DGRAM)
        addr = infos[0][4]
        self.upstream = (str(addr[0]), int(addr[1]))
        transport, _ = await self._loop.create_datagram_endpoint(
            lambda: _ListenSide(self), local_addr=self.route.listen)
        self._transport = transport
        self._sweeper = asyncio.create_task(self._sweep())
        host, port = transport.get_extra_info("sockname")[:2]
        return host, port

    async def stop(self) -> None:
        """Close the listener and every session."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for session in self.sessions.values():
            if session.transport is not None:
                session.transport.close()
        self.sessions.clear()
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(min(5.0, IDLE_TIMEOUT))
            assert self._loop is not None
            limit = self._loop.time() - IDLE_TIMEOUT
            for addr, session in list(self.sessions.items()):
                if session.last_seen < limit:
                    if session.transport is not None:
                        session.transport.close()
                    del self.sessions[addr]

    def from_client(self, data: bytes, addr: tuple[str, int]) -> None:
        """A datagram from a client: open its session if new, then relay upstream."""
        self._up.inc()
        session = self.sessions.get(addr)
        if session is None:
            session = self.sessions[addr] = _Session(client=addr)
            session.opener = asyncio.ensure_future(self._open(session))
        assert self._loop is not None
        session.last_seen = self._loop.time()
        self._relay(data, session, "upstream")

    def from_upstream(self, data: bytes, session: _Session) -> None:
        """A datagram from the upstream for one session: relay it to its client."""
        self._down.inc()
        self._relay(data, session, "downstream")

    async def _open(self, session: _Session) -> None:
        assert self._loop is not None
        try:
            transport, _ = await self._loop.create_datagram_endpoint(
                lambda: _UpstreamSide(self, session), remote_addr=self.upstream)
        except OSError:
            self.errors.inc()
            self.sessions.pop(session.client, None)
            return
        session.transport = transport
        for data in session.pending:
            transport.sendto(data)
        session.pending.clear()

    def _relay(self, data: bytes, session: _Session, direction: str) -> None:
        assert self._loop is not None
        now = self._loop.time()
        items = [(now, data)]
        candidates = self.faults.for_route(self.name, "udp")
        if candidates:
            info = _UP if direction == "upstream" else _DOWN
            t = self.clock()
            for wf in candidates:
                if not items or wf.decide(info, t) is None:
                    continue
                key = (id(wf), direction)
                model = session.models.get(key)
                if model is None:
                    assert isinstance(wf.fault, UdpFault)
                    model = session.models[key] = wf.fault.build(wf.rng)
                before = items
                items = [out for at, d in items for out in model.process(d, at)]
                if items != before:
                    wf.record_injected(self.name)
        for at, out in items:
            if at <= now:
                self._send(out, session, direction)
            else:
                self._loop.call_at(at, self._send, out, session, direction)

    def _send(self, data: bytes, session: _Session, direction: str) -> None:
        if direction == "downstream":
            if self._transport is not None:
                self._transport.sendto(data, session.client)
        elif session.transport is not None:
            session.transport.sendto(data)
        elif len(session.pending) < _MAX_PENDING:
            session.pending.append(data)
