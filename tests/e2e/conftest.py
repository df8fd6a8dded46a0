"""End-to-end helpers: real processes on 127.0.0.1, driven as a user would."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio

ROOT = Path(__file__).resolve().parents[2]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Proc:
    """A `python -m loadcaller ...` service that printed READY <url>."""

    def __init__(self, proc: asyncio.subprocess.Process, url: str) -> None:
        self.proc = proc
        self.url = url

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def start(*args: str) -> Proc:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "loadcaller", *args,
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    async with asyncio.timeout(60):
        while True:
            line = (await proc.stdout.readline()).decode()
            assert line, f"loadcaller {args[0]} exited before READY"
            if line.startswith("READY "):
                return Proc(proc, line.split()[1])


@pytest_asyncio.fixture
async def services() -> AsyncIterator[list[Proc]]:
    """Services started by a test; all stopped at the end."""
    started: list[Proc] = []
    yield started
    for p in started:
        await p.stop()


async def run_with_agent(tmp_path: Path, services: list[Proc], profile: str,
                         *agent_args: str) -> tuple[Path, Path]:
    """Start the reference agent (``agent_args``, logging its ground truth), run
    ``profile`` (``{url}`` filled in with the agent's) against it and check it exits 0;
    (results directory, ground-truth file)."""
    truth = tmp_path / "agent.jsonl"
    agent = await start("agent", "--port", "0", *agent_args, "--ground-truth", str(truth))
    services.append(agent)
    path = tmp_path / "p.yaml"
    path.write_text(profile.format(url=agent.url))
    out = tmp_path / "results"
    code, _, err = await run_cli("run", str(path), "--results-dir", str(out),
                                 "--progress-every", "0")
    assert code == 0, err
    return out, truth


async def run_cli(*args: str, timeout: float = 240, env: dict[str, str] | None = None,
                  signal_after: tuple[Any, int] | None = None) -> tuple[int, str, str]:
    """Run `loadcaller ARGS` as a subprocess; optionally signal it when a condition holds.

    ``run`` and ``demo`` get ``--saturation-lag-ms 1000`` unless the test gives its own:
    this shared 2-core machine's load is not what these tests test, and a few late
    ticks in a short run must not turn their exit 0 or 1 into a 3 (the swarm tests do
    the same; the saturation verdict itself is tested with explicit thresholds).
    """
    if args and args[0] in ("run", "demo") and "--saturation-lag-ms" not in args:
        args = (*args, "--saturation-lag-ms", "1000")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "loadcaller", *args,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    if signal_after is not None:
        condition, sig = signal_after
        async with asyncio.timeout(60):
            while not condition():
                await asyncio.sleep(0.1)
        proc.send_signal(sig)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def write_profile(path: Path, *, url: str, users: int = 2, duration: str = "5s",
                  turn_timeout: str = "3s", turns: int = 2, extra: str = "") -> Path:
    steps = ["      - wait_for_agent"]
    phrases = ["hello_order", "order_number", "delivery_when", "thanks_bye"]
    for i in range(turns):
        steps += [f"      - say: {{phrase: {phrases[i % len(phrases)]}}}", "      - wait_for_agent"]
    path.write_text(
        f"""name: e2e
target: {{url: "{url}"}}  # the transport follows the scheme
load: {{users: {users}, spawn_rate: 50, duration: {duration}, stop_timeout: 30s}}
call: {{turn_timeout: {turn_timeout}, give_up_after_no_response: 2}}
{extra}
scenarios:
  - name: s
    steps:
{chr(10).join(steps)}
      - hangup
"""
    )
    return path
