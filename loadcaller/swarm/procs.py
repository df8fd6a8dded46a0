"""Helper processes (mock backend, reference agent) started from a gevent process.

``python -m loadcaller ARGS`` is started and we wait (bounded, without blocking
the gevent hub) for its ``READY <url>`` line on stdout; ``loadcaller demo`` starts
its backend and agent this way.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import gevent

from loadcaller.errors import LocalError


@dataclass
class ProcService:
    name: str
    proc: subprocess.Popen[bytes]
    url: str

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout_s``."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_process_service(name: str, args: list[str], timeout_s: float = 30.0) -> ProcService:
    """Run ``python -m loadcaller ARGS`` and wait for its READY line."""
    proc = subprocess.Popen([sys.executable, "-m", "loadcaller", *args],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    stdout = proc.stdout
    url = None
    try:
        with gevent.Timeout(timeout_s):
            while url is None:
                line = stdout.readline().decode(errors="replace")
                if not line:
                    raise LocalError(f"{name} exited with code {proc.wait()} before it was ready")
                if line.startswith("READY "):
                    url = line.split(None, 1)[1].strip()
    except gevent.Timeout:
        proc.kill()
        raise LocalError(f"{name} did not start within {timeout_s:g}s") from None
    gevent.spawn(_drain, stdout)  # the child must never block on a full pipe
    return ProcService(name, proc, url)


def _drain(stream: object) -> None:
    try:
        while stream.read(65536):  # type: ignore[attr-defined]
            pass
    except (OSError, ValueError):
        pass
