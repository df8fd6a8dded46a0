"""The UDP relay with packet faults, seen through plain UDP sockets."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import pytest


class _Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)


@pytest.fixture
async def udp_upstream() -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(_Echo, local_addr=("127.0.0.1", 0))
    host, port = transport.get_extra_info("sockname")[:2]
    yield f"{host}:{port}"
    transport.close()


class Client:
    """A plain UDP socket driven through the event loop."""

    def __init__(self, addr: tuple[str, int]) -> None:
        self.addr = addr
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sock.bind(("127.0.0.1", 0))
        self.loop = asyncio.get_running_loop()

    async def send(self, data: bytes) -> None:
        await self.loop.sock_sendto(self.sock, data, self.addr)

    async def recv(self, timeout: float = 1.0) -> bytes:
        data, _ = await asyncio.wait_for(self.loop.sock_recvfrom(self.sock, 65536), timeout)
        return data

    async def recv_all(self, quiet: float = 0.25) -> list[bytes]:
        got = []
        while True:
            try:
                got.append(await self.recv(quiet))
            except TimeoutError:
                return got

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
async def relay(udp_upstream, make_proxy):
    clients: list[Client] = []

    async def make(faults=None, seed=1):
        proxy = await make_proxy(udp_upstream, faults, kind="udp", seed=seed)
        c = Client(proxy.listeners["r"])
        clients.append(c)
        return proxy, c

    yield make
    for c in clients:
        c.close()


async def test_relays_both_ways_per_client(relay):
    proxy, a = await relay()
    b = Client(a.addr)
    assert a.addr == proxy.listeners["r"]
    try:
        await a.send(b"from a")
        await b.send(b"from b")
        assert await a.recv() == b"from a"
        assert await b.recv() == b"from b"
        for direction in ("upstream", "downstream"):
            assert proxy.registry.get_sample_value(
                "chaos_packets_total", {"route": "r", "direction": direction}) == 2
    finally:
        b.close()


async def test_loss_drops_packets(relay):
    proxy, c = await relay([{"type": "udp_loss", "loss": 1.0, "direction": "upstream"}])
    for i in range(5):
        await c.send(bytes([i]))
    assert await c.recv_all() == []
    assert proxy.injected_counts() == {"udp_loss-0": 5}


async def test_gilbert_elliott_over_the_relay(relay):
    _, c = await relay([{"type": "udp_gilbert_elliott", "mean_loss": 0.3, "mean_burst": 3,
                             "direction": "upstream"}])
    for i in range(300):
        await c.send(i.to_bytes(2, "big"))
    got = await c.recv_all()
    assert 0.5 < len(got) / 300 < 0.9
    assert got == sorted(got)


async def test_delay(relay):
    _, c = await relay([{"type": "udp_delay", "delay": "200ms", "direction": "downstream"}])
    started = time.monotonic()
    await c.send(b"x")
    assert await c.recv() == b"x"
    assert time.monotonic() - started >= 0.19


async def test_duplicate_reorder_corrupt(relay):
    _, c = await relay([{"type": "udp_duplicate", "chance": 1.0, "direction": "downstream"}])
    await c.send(b"x")
    assert await c.recv_all() == [b"x", b"x"]
    _, c = await relay([{"type": "udp_reorder", "chance": 1.0, "gap": "80ms",
                             "every_nth": 2, "direction": "upstream"}])
    for p in (b"1", b"2", b"3"):
        await c.send(p)
    assert await c.recv_all() == [b"1", b"3", b"2"]
    _, c = await relay([{"type": "udp_corrupt", "chance": 1.0, "skip_bytes": 0}])
    await c.send(b"\x00" * 20)
    out = await c.recv()
    assert out != b"\x00" * 20 and len(out) == 20


async def test_outage_then_recovery(relay):
    _, c = await relay([{"type": "udp_outage", "duration": "300ms",
                             "direction": "upstream"}])
    await c.send(b"lost")
    assert await c.recv_all(0.1) == []
    await asyncio.sleep(0.3)
    await c.send(b"back")
    assert await c.recv() == b"back"


async def test_preset_volte_adds_delay_both_ways(relay):
    _, c = await relay([{"type": "udp_preset", "preset": "volte", "seed": 3}])
    started = time.monotonic()
    await c.send(b"rtp")
    assert await c.recv() == b"rtp"
    assert time.monotonic() - started >= 0.05


async def test_odd_datagrams_never_crash_the_relay(relay):
    _, c = await relay([{"type": "udp_corrupt", "chance": 1.0}])
    for data in (b"", b"\x80", b"\xff" * 60000):
        await c.send(data)
    await c.recv_all(0.1)
    _, d = await relay()
    await d.send(b"ok")
    assert await d.recv() == b"ok"


async def test_upstream_down_keeps_relay_alive(make_proxy):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proxy = await make_proxy(f"127.0.0.1:{port}", kind="udp")
    c = Client(proxy.listeners["r"])
    try:
        for _ in range(3):
            await c.send(b"anyone?")
        assert await c.recv_all(0.1) == []
        assert len(proxy.listeners) == 1
    finally:
        c.close()
