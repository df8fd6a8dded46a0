"""Command-line options through the real entry point: bad values exit 2 with one line.

Nothing here places a call: every refusal comes before the callers start (and
before any worker process is forked), and the one run is a dry run (duration 0).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
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


# (extra arguments of `run`, what the one line says); the results dir is tmp/r unless given
REFUSED = [
    (["--results-dir", "/proc/1/x"], "results directory /proc/1/x: cannot write there"),
    (["--results-dir", "/sys/x"], "results directory /sys/x: cannot write there"),
    (["--results-dir", "out/" + "a" * 300], "cannot write there (File name too long)"),
    (["--csv", "/proc/x/x"], "--csv /proc/x/x_stats.csv: cannot write there"),
    (["--html", "/proc/x/r.html"], "--html /proc/x/r.html: cannot write there"),
    (["--junit", "/proc/x/j.xml"], "--junit /proc/x/j.xml: cannot write there"),
    (["--metrics-port", "70000"], "argument --metrics-port: a port is 0 to 65535"),
    (["--metrics-port", "-2"], "argument --metrics-port: a port is 0 to 65535"),
    (["--web-port", "65536"], "argument --web-port: a port is 0 to 65535"),
    (["--worker", "--master-port", "70000"], "argument --master-port: a port is 0 to 65535"),
    (["--metrics-host", "192.0.2.1"], "--metrics-host 192.0.2.1: cannot listen there"),
    (["--metrics-host", "no.such.host.invalid"],
     "--metrics-host no.such.host.invalid: not an address of this machine"),
    (["--master", "--master-bind-host", "192.0.2.1", "--master-port", "0"],
     "--master-bind-host 192.0.2.1: cannot listen there"),
    (["--saturation-lag-ms", "nan"], "argument --saturation-lag-ms: must be a finite number"),
    (["--saturation-lag-ms", "-1"], "argument --saturation-lag-ms: must be a finite number"),
    (["--saturation-lag-ms", "inf"], "argument --saturation-lag-ms: must be a finite number"),
    (["--progress-every", "-1"], "argument --progress-every: must be a finite number"),
    (["--progress-every", "nan"], "argument --progress-every: must be a finite number"),
    (["--metrics-linger", "-1"], "argument --metrics-linger: must be a finite number"),
    (["--metrics-linger", "inf"], "argument --metrics-linger: must be a finite number"),
    (["--expect-workers-timeout", "nan"], "argument --expect-workers-timeout: must be a"),
]


def test_unusable_paths_hosts_ports_and_numbers_exit_2_in_one_line(tmp_path: Path) -> None:
    def one(i: int) -> subprocess.CompletedProcess[str]:
        extra = REFUSED[i][0]
        where = [] if "--results-dir" in extra else ["--results-dir", str(tmp_path / f"r{i}")]
        case = tmp_path / f"case{i}"
        case.mkdir()
        # --processes 2: a refusal must come before the workers are forked, not 15 s later
        procs = [] if "--master" in extra or "--worker" in extra else ["--processes", "2"]
        return _run(case, *extra, *where, *procs, timeout=30)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(one, range(len(REFUSED))))
    for (extra, message), proc in zip(REFUSED, results, strict=True):
        assert proc.returncode == 2, (extra, proc.stderr)
        assert "Traceback" not in proc.stderr, (extra, proc.stderr)
        last = proc.stderr.strip().splitlines()[-1]
        assert message in last, (extra, proc.stderr)
        # refused before any worker was forked: nobody waited for workers to connect
        assert "waiting for workers" not in proc.stderr, (extra, proc.stderr)


def test_more_processes_than_cpus_is_honoured_with_a_warning(tmp_path: Path) -> None:
    many = (os.cpu_count() or 1) + 1
    proc = _run(tmp_path, "--processes", str(many), "--duration", "0", "--results-dir",
                str(tmp_path / "r"), "--metrics-port", "-1", "--progress-every", "0")
    assert proc.returncode == 0, proc.stderr
    assert (f"loadcaller: warning: --processes {many} is more than this machine's "
            f"{os.cpu_count()} CPUs") in proc.stderr


def _agent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "loadcaller", *args], capture_output=True,
                          text=True, timeout=30, stdin=subprocess.DEVNULL)


def test_agent_and_backend_refuse_what_they_cannot_listen_on_or_write(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        cases = [
            (["agent", "--port", "99999"], "argument --port: a port is 0 to 65535"),
            (["backend", "--port", "-1"], "argument --port: a port is 0 to 65535"),
            (["agent", "--port", port], f"cannot listen on 127.0.0.1:{port}"),
            (["backend", "--port", port], f"cannot listen on 127.0.0.1:{port}"),
            (["agent", "--port", "0", "--ground-truth", "/proc/x/gt.jsonl"],
             "--ground-truth /proc/x/gt.jsonl: cannot write there"),
            (["agent", "--port", "0", "--host", "192.0.2.1"], "cannot listen on 192.0.2.1:0"),
            (["agent", "--port", "0", "--host", "192.0.2.1", "--transport", "sip"],
             "cannot listen on 192.0.2.1:0"),
            (["agent", "--backend-timeout", "nan"], "argument --backend-timeout: must be a"),
        ]
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(lambda c: _agent(*c[0]), cases))
    for (args, message), proc in zip(cases, results, strict=True):
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and "READY" not in proc.stdout, (args, proc.stderr)
        assert message in proc.stderr.strip().splitlines()[-1], (args, proc.stderr)
