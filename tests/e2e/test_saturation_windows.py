"""A run whose generator falls behind for a moment only: the verdict is per window.

The caller process is stopped (SIGSTOP) for 400 ms a few seconds into a run
against the reference agent, then continued: its media clock wakes 400 ms late,
skips the ticks it missed, and that window saturates, as on a machine that
took the caller's CPU away. The rest of the run is fine. The live line says
GENERATOR SATURATED while it happens and not at the end; summary.json lists
the stretch; turns measured across it are tagged and left out of
``latency_ms_unsaturated``; the exit code is 3. The window (6 s) is longer
than a call's turn cycle here (about 5.5 s: phrase, 100 ms think, reply), so
the stopped window holds a turn of every call wherever the stop falls.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from .conftest import read_jsonl, start, write_profile

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

STOP_S = 0.4


async def test_a_stretch_of_saturation_is_listed_tagged_and_exits_3(tmp_path, services):
    agent = await start("agent", "--port", "0", "--think", "100ms")
    services.append(agent)
    profile = write_profile(tmp_path / "p.yaml", url=agent.url, users=3, duration="10s",
                            turns=4)
    out = tmp_path / "r"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "loadcaller", "run", str(profile), "--results-dir", str(out),
        "--metrics-port", "-1", "--progress-every", "0.5", "--saturation-window", "6s",
        # only the stop may saturate this run, not the shared machine's load
        "--saturation-lag-ms", "1000",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        env={**os.environ})
    assert proc.stderr is not None and proc.stdout is not None
    lines: list[str] = []

    async def read_stderr() -> None:
        assert proc.stderr is not None
        while line := await proc.stderr.readline():
            lines.append(line.decode())

    reader = asyncio.ensure_future(read_stderr())
    stdout = asyncio.ensure_future(proc.stdout.read())
    try:
        async with asyncio.timeout(60):  # the load has begun: a few progress lines
            while sum(" turns " in ln for ln in lines) < 12:
                await asyncio.sleep(0.1)
        stopped_at = time.monotonic()
        proc.send_signal(signal.SIGSTOP)
        await asyncio.sleep(STOP_S)
        proc.send_signal(signal.SIGCONT)
        code = await asyncio.wait_for(proc.wait(), 120)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
            await proc.wait()
    await reader
    printed = (await stdout).decode()
    err = "".join(lines)
    assert code == 3, err[-3000:]
    progress = [ln for ln in lines if " turns " in ln and "clock lag" in ln]
    assert any("GENERATOR SATURATED" in ln for ln in progress), err[-3000:]
    assert "GENERATOR SATURATED" not in progress[0] and "GENERATOR SATURATED" not in progress[-1]

    summary = json.loads((out / "summary.json").read_text())
    gen = summary["generator"]
    assert gen["saturated"] is True and gen["skipped_ticks"] >= 10
    windows = gen["saturated_windows"]
    assert windows and all(w["processes"] == ["local"] for w in windows), windows
    hit = [w for w in windows if w["from"] <= stopped_at + STOP_S and stopped_at < w["to"]]
    assert hit, (stopped_at, windows)
    assert 6.0 <= hit[0]["to"] - hit[0]["from"] <= 12.0  # one or two 6 s windows
    assert gen["saturation_window_s"] == 6.0
    assert 0 < gen["cpu_ratio_mean"] <= gen["cpu_ratio_peak"]

    turns = read_jsonl(out / "turns.jsonl")
    tagged = [t for t in turns if t.get("generator_saturated")]
    assert tagged, "no turn was measured across the stop"
    for t in tagged:  # each overlaps a saturated stretch
        t1 = t["t_reply_onset"] or t["t_speech_end"]
        assert any(w["from"] - 0.01 <= t1 and t["t_speech_end"] < w["to"] + 0.01
                   for w in windows), t
    untagged_lat = [t["latency_ms"] for t in turns
                    if not t.get("generator_saturated") and t["latency_ms"] is not None]
    assert summary["turns"]["generator_saturated"] == len(tagged)
    assert summary["turns"]["latency_ms_unsaturated"]["count"] == len(untagged_lat)
    assert "saturated stretches" in printed and "unsaturated turns" in printed
    assert "THE GENERATOR WAS SATURATED" in printed
