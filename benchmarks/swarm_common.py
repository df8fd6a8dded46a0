"""Shared helpers of the swarm benchmarks: an agent process, a profile, a run.

Not a benchmark itself. Everything runs on 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

PROFILE = """name: bench
target: {{url: "{url}"}}
load: {{users: {users}, spawn_rate: {spawn_rate}, duration: {duration}, stop_timeout: 0s{extra}}}
call: {{turn_timeout: 5s}}
scenarios:
  - name: talk
    steps:
      - wait_for_agent
      - say: {{phrase: hello_order}}
      - wait_for_agent
      - say: {{phrase: order_number}}
      - wait_for_agent
      - say: {{phrase: thanks_bye}}
      - wait_for_agent
      - hangup
"""


class AgentProcess:
    """``loadcaller agent`` in its own process (think 300 ms)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "loadcaller", "agent", "--port", "0",
                                      "--think", "300ms"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        if not line.startswith("READY "):
            raise RuntimeError(f"agent did not start: {line!r}")
        self.url = line.split()[1]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def write_profile(directory: Path, url: str, *, users: int, duration: str,
                  spawn_rate: float = 50, extra: str = "") -> Path:
    path = directory / "bench.yaml"
    path.write_text(PROFILE.format(url=url, users=users, duration=duration,
                                   spawn_rate=spawn_rate, extra=f", {extra}" if extra else ""))
    return path


def run_cli(profile: Path, out: Path, *args: str, timeout_s: float = 600) -> dict[str, Any]:
    """``loadcaller run`` to the end; the summary."""
    proc = subprocess.run([sys.executable, "-m", "loadcaller", "run", str(profile),
                           "--results-dir", str(out), "--progress-every", "0",
                           "--saturation-lag-ms", "1000", *args],
                          capture_output=True, text=True, timeout=timeout_s)
    if not (out / "summary.json").exists():
        raise RuntimeError(f"no summary (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return json.loads((out / "summary.json").read_text())


def scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def tempdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="loadcaller-bench-"))
