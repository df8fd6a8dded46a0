"""Records are never dropped by the step that fails: a snapshot timeout, a full disk."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

from .conftest import Agent, Run, free_port, write_profile

PROBE = Path(__file__).with_name("ship_probe.py")
FILE_LIMIT = 12_000  # bytes per file: summary.json (~5 kB) fits, calls.jsonl will not


def test_records_survive_a_snapshot_timeout_and_a_failed_send(tmp_path):
    out = tmp_path / "probe.json"
    proc = subprocess.run([sys.executable, str(PROBE), str(out)], capture_output=True,
                          text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(out.read_text())
    # a worker's report: shipped without its snapshot, not thrown away with it
    assert found["worker_raised"] is None
    assert found["worker_shipped"] + found["worker_left"] == ["w-1"]
    # a local run's ship
    assert found["coordinator_raised"] is None
    assert found["coordinator_written"] + found["coordinator_left"] == ["c-1"]
    # Locust failed to send the report: the record is back in the outbox
    assert found["send_left"] == ["s-1"]


def _limit_file_size() -> None:  # in the child, before exec
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))


def _complete_lines(path: Path) -> list[dict[str, object]]:
    out = []
    for line in path.read_text().splitlines(keepends=True):
        if line.endswith("\n"):
            out.append(json.loads(line))
    return out


def test_a_full_disk_still_writes_the_summary_and_says_what_was_lost(tmp_path, agent: Agent):
    profile = write_profile(tmp_path / "p.yaml", url=agent.url, users=24, duration="15s")
    out_dir = tmp_path / "r"
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadcaller", "run", str(profile), "--results-dir", str(out_dir),
         "--metrics-port", str(port), "--progress-every", "0", "--saturation-lag-ms", "1000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"},
        preexec_fn=_limit_file_size)
    code, _, err = Run(proc, out_dir, port).wait(120)
    assert code == 5, err  # the results are incomplete: the exit code says so
    assert "Traceback" not in err
    summary = json.loads((out_dir / "summary.json").read_text())
    swarm = summary["swarm"]
    finished = summary["calls"]["finished"]
    written = _complete_lines(out_dir / "calls.jsonl")
    assert (out_dir / "calls.jsonl").stat().st_size <= FILE_LIMIT
    for name in ("calls.jsonl", "turns.jsonl"):  # whole lines only: no torn JSON at the end
        text = (out_dir / name).read_text()
        assert text == "" or text.endswith("\n"), text[-80:]
    # each written call has its turns, and no turn is of a call that is not there
    turns = _complete_lines(out_dir / "turns.jsonl")
    assert {t["call_id"] for t in turns} == {c["call_id"] for c in written if c["turns"]}
    assert len(written) < finished  # the disk filled up during the run
    assert swarm["records_not_written"] == finished - len(written) > 0
    assert "File too large" in swarm["write_error"]
    assert (f"{swarm['records_not_written']} call records could not be written to "
            "calls.jsonl/turns.jsonl") in err
    # every call is counted all the same
    assert summary["calls"]["started"] == finished
    assert swarm["processes"]["local"]["records_received"] == finished
