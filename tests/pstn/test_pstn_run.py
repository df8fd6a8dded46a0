"""`loadcaller run` placing PSTN calls through the stand-in Twilio to the reference agent.

What a user depends on: calls answered and completed, turns answered with latencies
a little above the agent's think time, Twilio's REST API used as Twilio expects
(one create per call, To/From, Basic auth; every call completed over REST at
hangup), the guard rails held (max_concurrent, calls_per_second, max_minutes),
and the auth token nowhere in the output or the results.
"""

from __future__ import annotations

import base64
import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.pstn.twilio_standin import StandIn
from tests.swarm.conftest import Agent, free_port, read_jsonl, start_run

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SID = "AC" + "2" * 32
TOKEN = "pstn-e2e-token-c0ffee4242"
AGENT_NO, FROM_NO = "+15005550111", "+15005550006"
TRUSTING = ("--saturation-lag-ms", "1000")  # this machine's load is not under test here


@pytest.fixture
def standin(agent: Agent) -> Iterator[StandIn]:
    s = StandIn(account_sid=SID, auth_token=TOKEN, numbers={AGENT_NO: agent.url}).start()
    yield s
    s.stop()


TURN = ("      - wait_for_agent\n      - say: {phrase: hello_order}\n"
        "      - wait_for_agent\n      - hangup")


def write_pstn_profile(path: Path, standin: StandIn, *, users: int, duration: str,
                       extra: str = "", steps: str = TURN) -> Path:
    port = free_port()
    path.write_text(f"""name: pstn-test
target:
  transport: pstn
  to: "{AGENT_NO}"
  from: "{FROM_NO}"
  account_sid: {SID}
  auth_token: ${{PSTN_TEST_TOKEN}}
  public_url: ws://127.0.0.1:{port}/media
  listen: 127.0.0.1:{port}
  allow: ["+1500555*"]
  setup_timeout: 10s
  api_base: {standin.base_url}
{extra}
load: {{users: {users}, spawn_rate: 20, duration: {duration}, stop_timeout: 20s}}
call: {{turn_timeout: 5s}}
scenarios:
  - name: quick
    steps:
{steps}
""")
    return path


def run(tmp_path: Path, profile: Path) -> tuple[int, str, list[dict[str, Any]], Path]:
    os.environ["PSTN_TEST_TOKEN"] = TOKEN  # the child reads it through ${PSTN_TEST_TOKEN}
    try:
        r = start_run(profile, tmp_path / "out", *TRUSTING)
        code, out, err = r.wait(120)
    finally:
        del os.environ["PSTN_TEST_TOKEN"]
    return code, out + err, read_jsonl(tmp_path / "out" / "calls.jsonl"), tmp_path / "out"


def test_pstn_calls_reach_the_agent_through_twilio(tmp_path: Path, standin: StandIn) -> None:
    profile = write_pstn_profile(tmp_path / "p.yaml", standin, users=3, duration="7s",
                                 extra="  max_concurrent: 2")
    code, output, calls, out_dir = run(tmp_path, profile)
    assert code in (0, 3), output  # 3: a busy machine (shared CI cores) judged itself saturated
    completed = [c for c in calls if c["outcome"] == "completed"]
    assert len(completed) >= 3, calls
    assert {c["outcome"] for c in calls} <= {"completed", "cancelled"}, calls

    turns = read_jsonl(out_dir / "turns.jsonl")
    answered = [t for t in turns if t["outcome"] == "answered" and t.get("latency_ms")]
    assert len(answered) >= 3, turns
    for t in answered:  # the agent's end of turn (500 ms hangover) and think (200 ms),
        # plus the bridge's real-time pacing both ways: not less, and not seconds more
        assert 700 < t["latency_ms"] < 2500, t

    creates = [r for r in standin.requests if r.method == "POST" and r.path.endswith("/Calls.json")]
    auth = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    assert len(creates) == len(standin.calls) == len(calls)
    assert all(r.path == f"/2010-04-01/Accounts/{SID}/Calls.json" for r in creates)
    assert all(r.form["To"] == AGENT_NO and r.form["From"] == FROM_NO for r in creates)
    assert all(r.authorization == auth for r in standin.requests)
    assert {c["remote_id"] for c in completed} <= set(standin.calls)
    for c in completed:  # hung up over REST, and the call is over at Twilio
        sid = c["remote_id"]
        ends = [r for r in standin.requests if r.path.endswith(f"/Calls/{sid}.json")]
        assert [r.form.get("Status") for r in ends] == ["completed"]
        assert standin.calls[sid].status == "completed"
        assert standin.calls[sid].media_to_agent > 50  # our speech reached the agent

    assert standin.max_live == 2  # max_concurrent: 2 held with 3 users
    created = sorted(standin.calls.values(), key=lambda c: c.created_s)
    gaps = [b.created_s - a.created_s for a, b in itertools.pairwise(created)]
    # calls_per_second 1 (the default): the users start 50 ms apart, their calls do not
    # (a second's spacing, less what the first request spent opening its connection)
    assert min(gaps) > 0.6

    assert TOKEN not in output
    assert "Traceback" not in output and "Unclosed" not in output, output
    for f in out_dir.rglob("*"):
        if f.is_file():
            assert TOKEN.encode() not in f.read_bytes(), f


def test_max_minutes_stops_placing_calls(tmp_path: Path, standin: StandIn) -> None:
    profile = write_pstn_profile(  # calls of about 1 s; 1.8 s of them may be placed
        tmp_path / "p.yaml", standin, users=1, duration="6s", extra="  max_minutes: 0.03",
        steps="      - pause: 700ms\n      - hangup")
    _, _, calls, _ = run(tmp_path, profile)
    placed = [c for c in calls if c["remote_id"]]
    refused = [c for c in calls if "max_minutes" in c["reason"]]
    assert placed and refused, calls
    assert all(c["outcome"] == "error" and c["reason"].startswith("local:") for c in refused)
    assert len(standin.calls) == len(placed)  # a refused call is never dialled
    assert all(c.status == "completed" for c in standin.calls.values())
    assert len(placed) <= 3  # the run's minutes: none placed past them
