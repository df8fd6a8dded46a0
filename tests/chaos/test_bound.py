"""A listener whose socket uvloop closed as it started is EADDRINUSE, not an AttributeError."""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Any

import pytest
import uvloop

from chaos.bound import bound_address
from chaos.config import parse_config
from chaos.proxy import ChaosProxy


def test_the_first_live_socket_gives_the_address_and_none_is_address_in_use():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        assert bound_address([None, s], "127.0.0.1", 0) == ("127.0.0.1", port)
    for sockets in ([None], [], None):
        with pytest.raises(OSError) as info:
            bound_address(sockets, "127.0.0.1", 8081)
        assert info.value.errno == errno.EADDRINUSE
        assert "127.0.0.1:8081" in str(info.value)


def _taken_port() -> tuple[socket.socket, socket.socket]:
    """Two sockets bound to one port (SO_REUSEADDR), the first listening: the second's
    listen() fails with EADDRINUSE, as the slower of two processes starting one route."""
    first = socket.socket()
    first.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    first.bind(("127.0.0.1", 0))
    second = socket.socket()
    second.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    second.bind(first.getsockname())
    first.listen()
    return first, second


def test_a_proxy_whose_listen_failed_raises_address_in_use():
    # Two processes of one run (--processes 2) start the same chaos route at once: both
    # bind, one listens first, and uvloop hands the other a server whose socket it has
    # closed. The engine takes EADDRINUSE to mean "another process serves the proxy".
    first, second = _taken_port()

    async def start() -> None:
        loop = asyncio.get_running_loop()
        real = loop.create_server

        async def create_server(factory: Any, host: Any = None, port: Any = None,
                                **kwargs: Any) -> Any:
            return await real(factory, sock=second, **kwargs)

        loop.create_server = create_server  # type: ignore[method-assign]
        await ChaosProxy(_config("http", "127.0.0.1:0")).start()

    with first, pytest.raises(OSError) as info, asyncio.Runner(
            loop_factory=uvloop.new_event_loop) as runner:
        runner.run(start())
    assert info.value.errno == errno.EADDRINUSE


def test_a_websocket_route_on_a_port_in_use_raises_address_in_use():
    # websockets reads the socket's name as it starts (a dead uvloop server crashed it),
    # so this route listens on a socket it made itself: the failure is raised there.
    first, second = _taken_port()
    second.close()
    host, port = first.getsockname()

    with first, pytest.raises(OSError) as info, asyncio.Runner(
            loop_factory=uvloop.new_event_loop) as runner:
        runner.run(ChaosProxy(_config("ws", f"{host}:{port}")).start())
    assert info.value.errno == errno.EADDRINUSE


def _config(kind: str, listen: str) -> Any:
    return parse_config({"routes": [{"name": "r", "kind": kind, "listen": listen,
                                     "upstream": f"{kind}://127.0.0.1:9"}]}, "t")
