"""What `loadcaller run` says when calls could not be placed, and how it exits.

A run in which no call connected, or more than ``--max-failed-ratio`` of calls
failed, exits 1 with one line saying why; a signal (130/143) and the
generator's saturation (3) take precedence over it. Whatever placing a call
raises is that call's record, never a traceback out of a Locust user. Running
out of file descriptors is our limit (``error: local: ...``), not the agent's.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

from .conftest import read_jsonl, run_cli, write_profile
from .test_bad_agents import _serve, silent

# runs not about saturation: a busy machine (2 shared cores) must not turn their 1 into a 3
CALM = ("--saturation-lag-ms", "1000")


def _last_line(err: str) -> str:
    return err.strip().splitlines()[-1]


async def test_a_url_that_raises_in_every_call_is_one_record_each_and_exits_1(tmp_path):
    # passes validation; the IDNA encoding of the host raises UnicodeError (not an
    # OSError) in every connect: once 1,907 tracebacks in 2 s at 99% CPU, and exit 0
    profile = write_profile(tmp_path / "p.yaml", url="ws://a..b/media", users=2, duration="3s")
    out = tmp_path / "r"
    code, _, err = await run_cli("run", str(profile), "--results-dir", str(out),
                                 "--progress-every", "0", "--metrics-port", "-1", *CALM,
                                 timeout=60)
    assert code == 1, err
    assert "Traceback" not in err, err[-3000:]
    calls = read_jsonl(out / "calls.jsonl")
    assert 2 <= len(calls) <= 12, len(calls)  # each user backs off a second between tries
    assert {c["outcome"] for c in calls} == {"error"}, calls
    assert all(c["reason"].startswith("local: UnicodeError during setup: ") for c in calls)
    assert _last_line(err).startswith(
        f"loadcaller: no call connected: {len(calls)} error: local: UnicodeError during setup")


async def test_a_port_out_of_range_is_bad_input_not_a_run(tmp_path):
    profile = write_profile(tmp_path / "p.yaml", url="ws://127.0.0.1:8080/media")
    code, _, err = await run_cli("run", str(profile), "--target", "ws://127.0.0.1:99999/media",
                                 "--results-dir", str(tmp_path / "r"), timeout=60)
    assert code == 2, err
    assert "Port out of range" in err and "Traceback" not in err


async def test_failed_calls_exit_1_unless_allowed_and_saturation_outranks_them(tmp_path):
    server, url = await _serve(silent, None)  # every call ends no_response
    try:
        profile = write_profile(tmp_path / "p.yaml", url=url, users=2, duration="2s",
                                turn_timeout="1s")
        runs = {
            "allowed": ["--max-failed-ratio", "1", *CALM],
            # a lag threshold of 0 makes every tick late: saturated (3) outranks failed (1)
            "saturated": ["--saturation-lag-ms", "0"],
        }
        results = [  # one after the other: two at once could saturate this machine for real
            await run_cli("run", str(profile), "--results-dir", str(tmp_path / name),
                          "--progress-every", "0", "--metrics-port", "-1", *extra, timeout=90)
            for name, extra in runs.items()]
    finally:
        server.close()
    (code, _, err), (sat_code, _, sat_err) = results
    assert code == 0, err
    assert json.loads((tmp_path / "allowed" / "summary.json").read_text())["failure"] is None
    assert sat_code == 3, sat_err
    assert "of 2 calls failed (100% > --max-failed-ratio 0.5)" in _last_line(sat_err)


async def test_help_lists_every_exit_code():
    code, out, _ = await run_cli("run", "--help", timeout=60)
    assert code == 0
    for line in ("  1    the calls failed the run", "--max-failed-ratio", "  3    the generator",
                 "  5    the results are incomplete", "130/143 first, then 5, then 3"):
        assert line in out, line


def _limit_open_files(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


async def test_running_out_of_file_descriptors_is_our_error_and_says_what_to_change(tmp_path):
    server, url = await _serve(silent, None)
    try:
        profile = write_profile(tmp_path / "p.yaml", url=url, users=40, duration="3s",
                                turn_timeout="1s")
        out = tmp_path / "r"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "loadcaller", "run", str(profile), "--results-dir", str(out),
            "--progress-every", "0", "--metrics-port", "-1", *CALM,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
            env=dict(os.environ), cwd=Path(__file__).resolve().parents[2],
            preexec_fn=lambda: _limit_open_files(32))  # about 15 are the process's own
        _, raw_err = await asyncio.wait_for(proc.communicate(), 90)
    finally:
        server.close()
    err = raw_err.decode()
    assert "Traceback" not in err, err[-3000:]
    assert "warning: the open-file limit is 32" in err and "ulimit -n" in err
    calls = read_jsonl(out / "calls.jsonl")
    local = [c for c in calls if c["outcome"] == "error"]
    assert local, calls
    for call in local:
        assert call["reason"].startswith("local: too many open files in this process (EMFILE, "
                                         "limit 32) connecting to 127.0.0.1:"), call
        assert "raise ulimit -n" in call["reason"]
    assert not [c for c in calls if "Too many open files" in c["reason"]
                and c["outcome"] != "error"]
    assert any(c["outcome"] == "no_response" for c in calls)  # the calls that fit went on
    assert proc.returncode == 1, err
    assert "calls failed" in _last_line(err) and "EMFILE" in _last_line(err)
