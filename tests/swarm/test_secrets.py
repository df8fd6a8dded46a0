"""A target URL's credentials appear nowhere: console, results, Locust's reports."""

from __future__ import annotations

import os
import subprocess
import sys

from .conftest import Agent, read_jsonl, start_run, write_profile

# distinctive values: "pw" or "abc" alone could turn up in a random hex id
PASSWORD = "pw7Qz"
TOKEN = "abc9Xk"


def test_target_credentials_never_leave_the_process(tmp_path, agent: Agent):
    host_port = agent.url.split("//", 1)[1].split("/", 1)[0]
    target = f"ws://user:{PASSWORD}@{host_port}/media?token={TOKEN}&x=1"
    profile = write_profile(tmp_path / "p.yaml", url=agent.url, users=2, duration="4s")
    locust = tmp_path / "locust"
    run = start_run(profile, tmp_path / "r", "--target", target, "--saturation-lag-ms", "1000",
                    "--csv", str(locust / "run"), "--html", str(locust / "report.html"))
    code, out, err = run.wait(120)
    assert code == 0, err
    assert len(read_jsonl(run.out_dir / "calls.jsonl")) >= 2  # the calls did go through
    assert run.summary()["run"]["target"] == (
        f"ws://user:***@{host_port}/media?token=***&x=1")  # redacted, still recognisable
    assert "token=***" in err
    written = {p.name: p.read_text(errors="replace")
               for d in (run.out_dir, locust) for p in d.iterdir()}
    assert {"summary.json", "calls.jsonl", "turns.jsonl", "report.html", "run_stats.csv"} <= set(
        written)
    for where, text in {"stdout": out, "stderr": err, **written}.items():
        assert PASSWORD not in text, where
        assert TOKEN not in text, where


def test_an_invalid_target_is_reported_without_its_password(tmp_path, agent: Agent):
    profile = write_profile(tmp_path / "p.yaml", url=agent.url)
    proc = subprocess.run(
        [sys.executable, "-m", "loadcaller", "run", str(profile), "--results-dir",
         str(tmp_path / "r"), "--target", f"sip:alice:{PASSWORD}@127.0.0.1;transport=carrier"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == 2, proc.stderr
    assert "transport" in proc.stderr and "alice:***@127.0.0.1" in proc.stderr
    assert PASSWORD not in proc.stderr + proc.stdout
