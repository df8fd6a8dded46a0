"""The UDP relay with packet faults, seen through plain UDP sockets."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator

import pytest

from tests.timing import assert_delay


@pytest.fixture
async def udp_upstream() -> AsyncIterator[str]:
    """A UDP echo on a plain socket (asyncio's DatagramTransport.sendto silently
    drops an empty datagram, and the relay must be seen passing those on)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.bind(("127.0.0.1", 0))

    def echo() -> None:
        for _ in range(64):
            try:
                data, addr = sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            with contextlib.suppress(OSError):
                sock.sendto(data, addr)

    loop.add_reader(sock.fileno(), echo)
    host, port = sock.getsockname()[:2]
    yield f"{host}:{port}"
    loop.remove_reader(sock.fileno())
    sock.close()


def relayed(proxy, direction: str) -> float:
    """Datagrams the relay has taken in from one side (chaos_packets_total)."""
    value = proxy.registry.get_sample_value("chaos_packets_total",
                                            {"route": "r", "direction": direction})
    return value or 0.0


async def wait_until(condition, timeout: float = 3.0) -> None:
    """Poll `condition` until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.001)


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
        """What arrives until `quiet` seconds pass without a datagram: only for
        showing that nothing comes back, where there is no event to wait for."""
        got = []
        while True:
            try:
                got.append(await self.recv(quiet))
            except TimeoutError:
                return got

    async def recv_until(self, last: bytes, limit: int = 1000) -> list[bytes]:
        """Datagrams up to and including `last` (a sentinel sent after the others:
        the relay keeps order, so everything before it has arrived by then)."""
        got: list[bytes] = []
        for _ in range(limit):
            got.append(await self.recv())
            if got[-1] == last:
                return got
        raise AssertionError(f"no {last!r} among {limit} datagrams")

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
    proxy, c = await relay([{"type": "udp_loss", "loss": 1.0, "direction": "upstream",
                             "max_count": 5}])
    for i in range(5):
        await c.send(bytes([i]))
    await c.send(b"end")  # past max_count: relayed, after the five lost ones
    assert await c.recv() == b"end"
    assert proxy.injected_counts() == {"udp_loss-0": 5}


async def test_gilbert_elliott_over_the_relay(relay):
    proxy, c = await relay([{"type": "udp_gilbert_elliott", "mean_loss": 0.3,
                             "mean_burst": 3, "direction": "upstream", "max_count": 300}])
    receiving = asyncio.create_task(c.recv_until(b"end"))
    for i in range(300):
        await c.send(i.to_bytes(2, "big"))
        if i % 32 == 31:  # let the relay catch up, so no socket buffer overflows
            await wait_until(lambda n=i + 1: relayed(proxy, "upstream") == n)
    await c.send(b"end")  # past max_count: always relayed
    got = (await receiving)[:-1]
    # every packet is accounted for: relayed, or dropped by the model
    assert len(got) + proxy.injected_counts()["udp_gilbert_elliott-0"] == 300
    assert 0.5 < len(got) / 300 < 0.9
    assert got == sorted(set(got))


async def test_delay(relay):
    _, c = await relay([{"type": "udp_delay", "delay": "400ms", "direction": "downstream"}])
    started = time.monotonic()
    await c.send(b"x")
    assert await c.recv() == b"x"
    assert_delay(time.monotonic() - started, 0.4)


async def test_duplicate_reorder_corrupt(relay):
    _, c = await relay([{"type": "udp_duplicate", "chance": 1.0, "direction": "downstream",
                         "max_count": 1}])
    await c.send(b"x")
    await c.send(b"end")  # past max_count: one copy
    assert await c.recv_until(b"end") == [b"x", b"x", b"end"]
    _, c = await relay([{"type": "udp_reorder", "chance": 1.0, "gap": "80ms",
                             "every_nth": 2, "direction": "upstream"}])
    for p in (b"1", b"2", b"3"):
        await c.send(p)
    assert [await c.recv() for _ in range(3)] == [b"1", b"3", b"2"]
    _, c = await relay([{"type": "udp_corrupt", "chance": 1.0, "skip_bytes": 0}])
    await c.send(b"\x00" * 20)
    out = await c.recv()
    assert out != b"\x00" * 20 and len(out) == 20


async def test_outage_then_recovery(relay):
    _, c = await relay([{"type": "udp_outage", "duration": "400ms",
                             "direction": "upstream"}])
    started = time.monotonic()
    await c.send(b"lost")  # the first packet starts the outage
    # probe every 20 ms until one comes back: the outage is over (bounded: 3 s)
    got = None
    for i in range(150):
        await c.send(b"probe %d" % i)
        with contextlib.suppress(TimeoutError):
            got = await c.recv(0.02)
            break
    back = time.monotonic() - started
    assert got is not None and got.startswith(b"probe "), got  # "lost" stayed lost
    assert_delay(back, 0.4)


async def test_preset_volte_adds_delay_both_ways(relay):
    _, c = await relay([{"type": "udp_preset", "preset": "volte", "seed": 3}])
    started = time.monotonic()
    await c.send(b"rtp")
    assert await c.recv() == b"rtp"
    assert time.monotonic() - started >= 0.05


async def test_odd_datagrams_never_crash_the_relay(relay):
    proxy, c = await relay([{"type": "udp_corrupt", "chance": 1.0}])
    # shorter than the 12 bytes corrupt spares (an RTP header): relayed as they are
    for data in (b"", b"\x80"):
        await c.send(data)
        assert await c.recv() == data
    big = b"\xff" * 60000
    await c.send(big)
    out = await c.recv()
    assert len(out) == len(big) and out != big
    # the same relay, same session, still relays
    await c.send(b"ok")
    assert await c.recv() == b"ok"
    for direction in ("upstream", "downstream"):
        assert proxy.registry.get_sample_value(
            "chaos_packets_total", {"route": "r", "direction": direction}) == 4


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
