"""Start helper processes (the mock backend, the reference agent) and stop them.

A service prints ``READY <url>`` on stdout once it listens; we wait for that
line, so nothing is started by hand and ports are chosen by the OS.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from dataclasses import dataclass

from loadcaller.errors import LocalError


@dataclass
class Service:
    name: str
    proc: asyncio.subprocess.Process
    url: str
    drainer: asyncio.Future[None] | None = None

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 5.0)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def start_service(name: str, args: list[str], timeout_s: float = 30.0) -> Service:
    """Run ``python -m loadcaller ARGS`` and wait for its READY line."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "loadcaller", *args,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=None,
    )
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                line = (await proc.stdout.readline()).decode(errors="replace")
                if not line:
                    code = await proc.wait()
                    raise LocalError(f"{name} exited with code {code} before it was ready")
                if line.startswith("READY "):
                    url = line.split(None, 1)[1].strip()
                    break
    except TimeoutError:
        proc.kill()
        raise LocalError(f"{name} did not start within {timeout_s:g}s") from None
    # keep draining stdout so the child never blocks on a full pipe
    service = Service(name, proc, url)
    service.drainer = asyncio.ensure_future(_drain(proc.stdout))
    return service


async def _drain(stream: asyncio.StreamReader) -> None:
    with contextlib.suppress(Exception):
        while await stream.read(65536):
            pass
