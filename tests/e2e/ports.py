"""Free ports on 127.0.0.1 for the end-to-end tests' peers (SIPp, baresip, the agent)."""

from __future__ import annotations

import socket


def port_free(port: int, kind: int = socket.SOCK_DGRAM) -> bool:
    """Whether ``port`` can be bound on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(*, tcp_too: bool = False) -> int:
    """A UDP port free on 127.0.0.1 now (with ``tcp_too``: free for TCP as well)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if not tcp_too or port_free(port, socket.SOCK_STREAM):
            return port
    raise RuntimeError("no free port on 127.0.0.1")


def free_tcp_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_span(size: int, step: int = 1) -> int:
    """An even UDP port from which ``size`` ports (every ``step``-th) are all free now."""
    for _ in range(200):
        base = free_port() & ~1
        if base + size <= 65535 and all(port_free(p) for p in range(base, base + size, step)):
            return base
    raise RuntimeError(f"no {size} free UDP ports in a row on 127.0.0.1")
