"""Command-line options through the real entry point: bad values exit 2 with one line.

Nothing here places a call: every refusal comes before the callers start (and
before any worker process is forked), and the one run is a dry run (duration 0).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROFILE = ("target: {url: 'ws://127.0.0.1:9/x'}\nload: {users: 1, duration: 5s}\n"
           "scenarios: [{name: a, steps: [wait_for_agent, hangup]}]\n")


def _run(tmp_path: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "p.yaml"
    profile.write_text(PROFILE)
    return subprocess.run([sys.executable, "-m", "loadcaller", "run", str(profile), *args],
                          cwd=tmp_path, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def test_duration_0_is_a_documented_dry_run(tmp_path: Path) -> None:
    helped = subprocess.run([sys.executable, "-m", "loadcaller", "run", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert "0: a dry run" in " ".join(helped.stdout.split())
    proc = _run(tmp_path, "--duration", "0", "--results-dir", str(tmp_path / "r"),
                "--metrics-port", "-1", "--progress-every", "0")
    assert proc.returncode == 0, proc.stderr
    assert "dry run (duration 0: no call)" in proc.stderr
    assert (tmp_path / "r" / "calls.jsonl").read_text() == ""
