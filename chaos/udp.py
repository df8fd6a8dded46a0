"""UDP relay (asyncio) applying packet faults in both directions.

Each client address gets a session with its own socket toward the upstream,
like a NAT, so replies find their way back. Every packet is offered to the
route's UDP faults (the wrapper decides per packet and direction); each fault
runs its packet model from chaos/packet.py, one stateful instance per session
and direction, and the relay sends what comes out at the times it asks for.
Sessions idle for IDLE_TIMEOUT seconds are closed.

For throughput the relay uses non-blocking sockets with `loop.add_reader` and
drains up to _BATCH datagrams per wake-up rather than taking one protocol
callback per datagram; with no fault on the route a datagram costs one
recvfrom and one send.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from chaos.config import RouteConfig
from chaos.errors import UpstreamError
from chaos.faults.packet_faults import UdpFault
from chaos.faultset import FaultSet
from chaos.metrics import ChaosMetrics
from chaos.packet import Impairment
from chaos.units import parse_hostport
from chaos.wrapper import MatchInfo

IDLE_TIMEOUT = 60.0
_BATCH = 64
_MAX_DATAGRAM = 65536
_UP = MatchInfo(direction="upstream")
_DOWN = MatchInfo(direction="downstream")


@dataclass
class _Session:
    client: tuple[str, int]
    sock: socket.socket
    models: dict[tuple[int, str], Impairment] = field(default_factory=dict)
    packets: int = 0
    packets_at_check: int = -1
    checked_at: float = 0.0


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
        self._sock: socket.socket | None = None
        self._family = socket.AF_INET
        self._sweeper: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.errors = metrics.requests.labels(route.name, "packet_error")
        # plain ints, read by the chaos_packets_total collector at scrape time
        self.up_packets = 0
        self.down_packets = 0

    async def start(self) -> tuple[str, int]:
        """Bind and relay; returns the bound address."""
        loop = self._loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(*self.upstream, type=socket.SOCK_DGRAM)
        except OSError as e:
            raise UpstreamError(f"route {self.name}: cannot resolve upstream "
                                f"{self.upstream[0]}: {e}") from e
        self._family, addr = infos[0][0], infos[0][4]
        self.upstream = (str(addr[0]), int(addr[1]))
        host, port = self.route.listen
        local = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        sock = socket.socket(local[0][0], socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind(local[0][4])
        except OSError:
            sock.close()
            raise
        self._sock = sock
        loop.add_reader(sock.fileno(), self._drain_clients)
        self._sweeper = asyncio.create_task(self._sweep())
        self.metrics.add_packet_source(self.counts)
        bound = sock.getsockname()
        return str(bound[0]), int(bound[1])

    async def stop(self) -> None:
        """Close the listener and every session."""
        self.metrics.remove_packet_source(self.counts)
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        for session in list(self.sessions.values()):
            self._close(session)
        self.sessions.clear()
        if self._sock is not None and self._loop is not None:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None

    def counts(self) -> list[tuple[str, str, int]]:
        """(route, direction, datagrams) for chaos_packets_total."""
        return [(self.name, "upstream", self.up_packets),
                (self.name, "downstream", self.down_packets)]

    async def _sweep(self) -> None:
        assert self._loop is not None
        while True:
            await asyncio.sleep(IDLE_TIMEOUT / 4)
            now = self._loop.time()
            for addr, session in list(self.sessions.items()):
                if session.packets != session.packets_at_check:
                    session.packets_at_check = session.packets  # traffic: look again later
                    session.checked_at = now
                elif now - session.checked_at >= IDLE_TIMEOUT:
                    self._close(session)
                    del self.sessions[addr]

    def _open(self, addr: tuple[str, int]) -> _Session | None:
        sock = socket.socket(self._family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.connect(self.upstream)  # a UDP connect sends nothing: it sets the peer
        except OSError:
            sock.close()
            self.errors.inc()
            return None
        session = self.sessions[addr] = _Session(client=addr, sock=sock)
        assert self._loop is not None
        self._loop.add_reader(sock.fileno(), self._drain_upstream, session)
        return session

    def _close(self, session: _Session) -> None:
        if self._loop is not None:
            self._loop.remove_reader(session.sock.fileno())
        session.sock.close()

    def _drain_clients(self) -> None:
        sock = self._sock
        if sock is None:
            return
        for _ in range(_BATCH):
            try:
                data, addr = sock.recvfrom(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.errors.inc()
                return
            self.from_client(data, addr)

    def _drain_upstream(self, session: _Session) -> None:
        for _ in range(_BATCH):
            try:
                data = session.sock.recv(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # e.g. ICMP port unreachable: the upstream is down; keep relaying
                self.errors.inc()
                return
            self.from_upstream(data, session)

    def from_client(self, data: bytes, addr: tuple[str, int]) -> None:
        """A datagram from a client: open its session if new, then relay upstream."""
        self.up_packets += 1
        session = self.sessions.get(addr)
        if session is None:
            session = self._open(addr)
            if session is None:
                return
        session.packets += 1
        if self.faults.for_route(self.name, "udp"):
            self._relay(data, session, "upstream")
        else:
            self._send(data, session, "upstream")  # fast path: no fault on this route

    def from_upstream(self, data: bytes, session: _Session) -> None:
        """A datagram from the upstream for one session: relay it to its client."""
        self.down_packets += 1
        session.packets += 1
        if self.faults.for_route(self.name, "udp"):
            self._relay(data, session, "downstream")
        else:
            self._send(data, session, "downstream")

    def _relay(self, data: bytes, session: _Session, direction: str) -> None:
        assert self._loop is not None
        now = self._loop.time()
        items = [(now, data)]
        info = _UP if direction == "upstream" else _DOWN
        t = self.clock()
        for wf in self.faults.for_route(self.name, "udp"):
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
        try:
            if direction == "downstream":
                if self._sock is not None:
                    self._sock.sendto(data, session.client)
            else:
                session.sock.send(data)
        except OSError:
            # a full socket buffer (the datagram is lost, as on a real link), a
            # closed session, or an ICMP error left by an earlier datagram
            self.errors.inc()
