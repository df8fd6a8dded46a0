"""Local UDP ports for calls: one RTP (and SIP) port per call from a configured range.

A range is ``"16384-32767"`` in a profile. Ports are handed out round-robin from
a per-process cursor and bound on the spot: a port that another process (or a
call of ours still closing) holds is skipped, so several ``--processes`` can
share one range. When every port of the range is taken the call fails to set up
with a reason that names the range, instead of an OSError from deep inside.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from pydantic import BeforeValidator

from loadcaller.errors import SetupFailed

P = TypeVar("P", bound=asyncio.DatagramProtocol)


def _parse_range(value: Any) -> Any:
    if isinstance(value, str):
        lo, sep, hi = value.partition("-")
        try:
            first, last = int(lo), int(hi if sep else lo)
        except ValueError:
            raise ValueError(f"{value!r} is not a port range like 16384-32767") from None
        value = (first, last)
    if (isinstance(value, (tuple, list)) and len(value) == 2
            and all(isinstance(v, int) for v in value)):
        first, last = value
        if not 1024 <= first <= last <= 65535:
            raise ValueError(f"port range {first}-{last} must lie within 1024-65535")
        return (first, last)
    raise ValueError("a port range is FIRST-LAST, e.g. 16384-32767")


PortRange = Annotated[tuple[int, int], BeforeValidator(_parse_range)]


def _bind_errno(host: str, port: int) -> int | None:
    """Why ``host:port`` cannot be bound (uvloop's bind errors carry no errno)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                       socket.SOCK_DGRAM) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc.errno
    return None


class PortPool:
    """Binds datagram endpoints on ports of one range (see the module docstring)."""

    def __init__(self, first: int, last: int, *, step: int = 1) -> None:
        self.first, self.last, self.step = first, last, step
        self._next = first

    @property
    def size(self) -> int:
        return (self.last - self.first) // self.step + 1

    async def bind(self, host: str, factory: Callable[[], P],
                   what: str = "RTP") -> tuple[asyncio.DatagramTransport, P]:
        """A datagram endpoint on the next free port of the range."""
        loop = asyncio.get_running_loop()
        for _ in range(self.size):
            port = self._next
            self._next += self.step
            if self._next > self.last:
                self._next = self.first
            try:
                return await loop.create_datagram_endpoint(factory, local_addr=(host, port))
            except OSError as exc:
                code = exc.errno if exc.errno is not None else _bind_errno(host, port)
                if code is not None and code not in (errno.EADDRINUSE, errno.EACCES):
                    raise SetupFailed(f"local: cannot bind {what} port {host}:{port}: "
                                      f"{exc.strerror}") from None
        raise SetupFailed(f"local: {what} port range {self.first}-{self.last} exhausted "
                          f"({self.size} ports all in use)")
