"""A results directory that already holds files is refused unless --overwrite says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .conftest import Agent, read_jsonl, start_run, write_profile


def _previous_run(out: Path) -> None:
    out.mkdir(parents=True)
    (out / "calls.jsonl").write_text('{"call_id": "old"}\n')
    (out / "summary.json").write_text('{"old": true}\n')
    (out / "notes.txt").write_text("mine\n")


def test_run_refuses_a_non_empty_results_dir(tmp_path, agent: Agent):
    out = tmp_path / "r"
    _previous_run(out)
    profile = write_profile(tmp_path / "p.yaml", url=agent.url, users=1, duration="3s")
    code, _, err = start_run(profile, out).wait(60)
    assert code == 2, err
    assert f"results directory {out} is not empty" in err and "--overwrite" in err
    assert "Traceback" not in err
    assert (out / "calls.jsonl").read_text() == '{"call_id": "old"}\n'  # untouched
    assert json.loads((out / "summary.json").read_text()) == {"old": True}


def test_run_with_overwrite_replaces_the_previous_results_only(tmp_path, agent: Agent):
    out = tmp_path / "r"
    _previous_run(out)
    profile = write_profile(tmp_path / "p.yaml", url=agent.url, users=1, duration="3s")
    run = start_run(profile, out, "--overwrite", "--saturation-lag-ms", "1000")
    code, _, err = run.wait(90)
    assert code == 0, err
    calls = read_jsonl(out / "calls.jsonl")
    assert calls and all(c["call_id"] != "old" for c in calls)
    assert run.summary()["calls"]["finished"] == len(calls)
    assert (out / "notes.txt").read_text() == "mine\n"  # not ours: left alone


def test_demo_refuses_a_non_empty_results_dir_before_starting_anything(tmp_path):
    out = tmp_path / "d"
    _previous_run(out)
    proc = subprocess.run([sys.executable, "-m", "loadcaller", "demo", "--results-dir", str(out),
                           "--metrics-port", "-1"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == 2, proc.stderr
    assert "is not empty" in proc.stderr and "--overwrite" in proc.stderr
    assert "mock backend" not in proc.stderr  # nothing was started
    assert sorted(p.name for p in out.iterdir()) == ["calls.jsonl", "notes.txt", "summary.json"]


def test_demo_with_overwrite_keeps_nothing_of_the_previous_ground_truth(tmp_path):
    out = tmp_path / "d"
    _previous_run(out)
    old_truth = '{"call_id": "old", "turn": 0}\n'
    (out / "agent_turns.jsonl").write_text(old_truth)  # the agent appends to this file
    proc = subprocess.run([sys.executable, "-m", "loadcaller", "demo", "--results-dir", str(out),
                           "--overwrite", "--duration", "3s", "--users", "2", "--no-chaos",
                           "--metrics-port", "-1", "--saturation-lag-ms", "1000"],
                          capture_output=True, text=True, timeout=150,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == 0, proc.stderr
    truth = (out / "agent_turns.jsonl").read_text()
    assert truth and old_truth not in truth
    assert all(c["call_id"] != "old" for c in read_jsonl(out / "calls.jsonl"))
    assert (out / "notes.txt").read_text() == "mine\n"


MINE = ("# my profile: the comments are mine\nname: mine\n"
        "target: {url: 'ws://127.0.0.1:9/x', auth_token: '${LC_TEST_TOKEN}'}\n"
        "load: {users: 1, duration: 0}\n"
        "scenarios: [{name: a, steps: [wait_for_agent, hangup]}]\n")


def test_overwrite_never_replaces_the_profile_being_run(tmp_path):
    (tmp_path / "profile.yaml").write_text(MINE)
    proc = subprocess.run([sys.executable, "-m", "loadcaller", "run", "profile.yaml",
                           "--results-dir", ".", "--overwrite", "--metrics-port", "-1"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, env={**os.environ, "LC_TEST_TOKEN": "t0k"})
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "the run writes profile.yaml there, which is profile.yaml" in proc.stderr
    assert (tmp_path / "profile.yaml").read_text() == MINE


def test_overwrite_never_replaces_an_input_through_a_link(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "p.yaml").write_text(MINE + "data: {csv: calls.jsonl}\n")
    (src / "calls.jsonl").write_text("name\nbob\n")  # a CSV, oddly named
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "LC_TEST_TOKEN": "t0k"}
    for linked, name in ((src / "p.yaml", "profile.yaml"), (src / "calls.jsonl", "calls.jsonl")):
        for old in out.iterdir():
            old.unlink()
        (out / name).symlink_to(linked)
        proc = subprocess.run([sys.executable, "-m", "loadcaller", "run", str(src / "p.yaml"),
                               "--results-dir", str(out), "--overwrite", "--metrics-port", "-1"],
                              capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL, env=env)
        assert proc.returncode == 2, proc.stderr
        assert f"the run writes {name} there, which is {linked}" in proc.stderr
    assert (src / "calls.jsonl").read_text() == "name\nbob\n"
    assert (src / "p.yaml").read_text().startswith("# my profile")
