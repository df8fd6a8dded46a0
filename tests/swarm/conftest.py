"""Swarm tests: `loadcaller run` as a user runs it, against the reference agent.

Every run is a subprocess (Locust and gevent must not patch the pytest
process). Ports are chosen free on 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def http_get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read().decode()


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text format -> {'name{labels}': value} (sample lines only)."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def metric_sum(samples: dict[str, float], name: str) -> float:
    return sum(v for k, v in samples.items() if k == name or k.startswith(name + "{"))


@dataclass
class Agent:
    proc: subprocess.Popen[bytes]
    url: str


@pytest.fixture(scope="session")
def agent() -> Iterator[Agent]:
    """The reference agent (think 200 ms), shared by the swarm tests."""
    proc = subprocess.Popen([sys.executable, "-m", "loadcaller", "agent", "--port", "0",
                             "--think", "200ms", "--greeting-delay", "100ms"],
                            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    assert line.startswith("READY "), f"agent did not start: {line!r}"
    yield Agent(proc, line.split()[1])
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def write_profile(path: Path, *, url: str, users: int = 4, duration: str = "6s",
                  stop_timeout: str = "20s", load_extra: str = "", turns: int = 1) -> Path:
    """A short profile: greeting, then ``turns`` caller turns, then hang up."""
    phrases = ["hello_order", "order_number", "thanks_bye"]
    steps = ["      - wait_for_agent"]
    for i in range(turns):
        steps += [f"      - say: {{phrase: {phrases[i % 3]}}}", "      - wait_for_agent"]
    extra = f", {load_extra}" if load_extra else ""
    path.write_text(f"""name: swarm-test
target: {{url: "{url}"}}
load: {{users: {users}, spawn_rate: 20, duration: {duration}, stop_timeout: {stop_timeout}{extra}}}
call: {{turn_timeout: 5s}}
scenarios:
  - name: quick
    steps:
{chr(10).join(steps)}
      - hangup
""")
    return path


@dataclass
class Run:
    proc: subprocess.Popen[str]
    out_dir: Path
    metrics_port: int
    final_text: str = ""  # the exposition scraped by finish(), as served
    waited: tuple[int, str, str] | None = None  # what wait() returned

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def wait(self, timeout: float = 120.0) -> tuple[int, str, str]:
        """The exit code, stdout and stderr once it exits (kept: a second call returns them)."""
        if self.waited is not None:
            return self.waited
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError(f"loadcaller did not finish in {timeout}s:\n{err}") from None
        self.waited = (self.proc.returncode, out, err)
        return self.waited

    def finish(self, timeout: float = 90.0) -> tuple[int, str, str, dict[str, float]]:
        """Wait for summary.json, scrape the lingering /metrics once, wait for the exit."""
        final: dict[str, float] = {}

        def summary_written() -> bool:
            if not (self.out_dir / "summary.json").exists():
                return False
            self.final_text = http_get(self.metrics_url)
            final.update(parse_metrics(self.final_text))
            return True

        wait_until(summary_written, timeout, "summary.json")
        code, out, err = self.wait()
        return code, out, err, final

    def summary(self) -> dict[str, Any]:
        return json.loads((self.out_dir / "summary.json").read_text())

    def signal(self, sig: int = signal.SIGINT) -> None:
        self.proc.send_signal(sig)


def start_run(profile: Path, out_dir: Path, *args: str, metrics_port: int | None = None) -> Run:
    """Start `loadcaller run PROFILE` with /metrics on ``metrics_port`` (default: a free one)."""
    port = metrics_port or free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadcaller", "run", str(profile), "--results-dir", str(out_dir),
         "--metrics-port", str(port), "--progress-every", "1", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return Run(proc, out_dir, port)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` (exceptions count as not yet) until true; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a TCP socket listening on ``port`` (from /proc/net/tcp{,6})."""
    found = set()
    for name, width in (("tcp", 8), ("tcp6", 32)):
        try:
            lines = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port and len(addr) == width:
                found.add(_ip(addr))
    return found


def _ip(hex_addr: str) -> str:
    raw = bytes.fromhex(hex_addr)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))  # each 32-bit word LE
    return socket.inet_ntop(socket.AF_INET6, words)


def children_of(pid: int) -> list[int]:
    """Live (not zombie) processes whose parent is ``pid``."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()  # after "pid (comm)": state ppid ...
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(entry.name))
    return out


def process_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (an exited process nobody reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"
