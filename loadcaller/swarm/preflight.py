"""What a run writes to and listens on, checked before anything starts.

An unusable ``--results-dir``, ``--csv`` prefix, ``--html`` or ``--junit``
path, or a ``--metrics-host``, ``--master-bind-host`` or ``--web-host`` that
this machine does not have, used to fail deep in the run: a traceback and
exit 1, and with ``--processes`` only once the forked workers had been killed
after ``_reap``'s 15 s. Each is tried here, in the parent, before any worker is
forked or any agent started (the demo's): one line and exit 2
(:class:`~loadcaller.errors.LocalError`).

A taken ``--metrics-port`` is no error (the run serves /metrics on a free port
and says so): only its host is tried, on port 0. The master's and the web UI's
ports are tried as given.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from loadcaller.errors import LocalError

__all__ = ["check_listen", "check_swarm_options", "check_writable"]


def check_listen(what: str, host: str, port: int) -> None:
    """:class:`LocalError` unless a TCP server could listen on ``host:port`` now."""
    bind_host = "0.0.0.0" if host in ("*", "") else host  # zmq's "*": every interface
    try:
        infos = socket.getaddrinfo(bind_host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError, OverflowError) as exc:
        raise LocalError(f"{what} {host}: not an address of this machine "
                         f"({_why(exc)})") from None
    family, kind, proto, _, addr = infos[0]
    try:
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(addr)
    except OSError as exc:
        where = f"{host}:{port}" if port else host
        raise LocalError(f"{what} {where}: cannot listen there ({_why(exc)})") from None


def check_writable(what: str, path: Path) -> None:
    """:class:`LocalError` unless ``path`` can be written (its directory is created)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists()
        with path.open("a", encoding="utf-8"):
            pass
        if not existed:
            path.unlink()
    except OSError as exc:
        raise LocalError(f"{what} {path}: cannot write there ({_why(exc)})") from None


def check_swarm_options(opts: Any) -> None:
    """Every path and listening address of :class:`~loadcaller.swarm.options.SwarmOptions`
    this process will use (the results directory is claimed, and tried, on its own)."""
    if opts.csv_prefix:
        check_writable("--csv", Path(f"{opts.csv_prefix}_stats.csv"))
    if opts.html_path is not None:
        check_writable("--html", opts.html_path)
    if opts.junit_path is not None:
        check_writable("--junit", opts.junit_path)
    if opts.metrics_port is not None:
        check_listen("--metrics-host", opts.metrics_host, 0)
    if opts.role == "master":
        check_listen("--master-bind-host", opts.master_bind_host, opts.master_port)
    if opts.web:
        check_listen("--web-host", opts.web_host, opts.web_port)


def _why(exc: BaseException) -> str:
    return str(getattr(exc, "strerror", None) or exc)
