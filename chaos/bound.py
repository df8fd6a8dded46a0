"""The address a just-started TCP server listens on, or the error it hid.

uvloop (which the caller's processes run on) reports a ``listen()`` that fails
after a successful ``bind()`` by closing the server's socket and returning the
server anyway: ``server.sockets`` then holds None. That happens when two
processes start the same listener at the same instant (``--processes 2`` with a
chaos section: both bind with SO_REUSEADDR, the first to listen wins), and it
surfaced as "'NoneType' object has no attribute 'getsockname'" in every call of
the losing process. Here it becomes the EADDRINUSE that asyncio's own loop
raises, which the engine already handles (another process serves the proxy).
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable
from typing import Any


def bound_address(sockets: Iterable[Any] | None, host: str, port: int) -> tuple[str, int]:
    """(host, port) of the first listening socket; OSError EADDRINUSE when there is none."""
    for sock in sockets or ():
        if sock is not None:
            name = sock.getsockname()
            return str(name[0]), int(name[1])
    raise OSError(errno.EADDRINUSE, f"could not listen on {host}:{port}: address already in use "
                  "(the socket closed as it started listening)")


def listening_socket(host: str, port: int, backlog: int = 128) -> socket.socket:
    """A socket listening on (host, port), its failures raised here (EADDRINUSE included).

    For servers whose library reads the socket's name before the address could be
    checked (websockets logs it on start), so a dead uvloop server never reaches it.
    """
    family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                      flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
