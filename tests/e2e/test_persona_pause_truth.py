"""A persona's mid-utterance pause against the reference agent, checked with its ground truth.

The pause (1.5 s) is longer than the agent's end-of-turn silence (500 ms), so the
agent takes it for the end of the caller's turn and replies into it, then stops
when the caller goes on, and answers again at the real end: two agent turns for
one caller utterance. The caller records the cut-in on its turn (``agent_cut_in``,
``cut_in_ms``), measures the turn's latency to the reply after its last word,
and the comparison with the agent's log stays paired turn for turn (by the
instant the caller stopped, not by turn number, which no longer agree).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from loadcaller.report.groundtruth import compare, out_of_bounds
from tests.peers import require_binary

from .conftest import read_jsonl, run_with_agent

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PROFILE = """name: pause-truth
seed: 3
target: {{url: "{url}"}}
load: {{users: 2, spawn_rate: 10, duration: 3s, stop_timeout: 40s}}
call: {{turn_timeout: 6s}}
personas:
  - name: hesitant
    pause: {{duration: 1.5s, probability: 1.0}}
scenarios:
  - name: s
    steps:
      - wait_for_agent
      - say: "Hello, I am calling about my order today."
      - wait_for_agent
      - say: "Can I change the delivery address please?"
      - wait_for_agent
      - hangup
"""


async def test_an_agent_cutting_into_a_pause_is_recorded_and_truth_stays_paired(
        tmp_path: Path, services: list) -> None:
    require_binary("espeak-ng", "espeak-ng")
    out, truth = await run_with_agent(tmp_path, services, PROFILE, "--think", "100ms")
    turns = read_jsonl(out / "turns.jsonl")
    calls = read_jsonl(out / "calls.jsonl")
    assert len(calls) >= 2 and {c["outcome"] for c in calls} == {"completed"}
    assert len(turns) == 2 * len(calls)
    assert all(t["outcome"] == "answered" and not t["overlap"] for t in turns), turns
    # every utterance was cut into: the agent cannot reply before its 500 ms of silence
    assert all(t.get("agent_cut_in") is True for t in turns), turns
    assert all(500 <= t["cut_in_ms"] < 1500 for t in turns), [t["cut_in_ms"] for t in turns]
    assert all(t["t_cut_in"] < t["t_speech_end"] for t in turns)

    replies = [r for r in read_jsonl(truth)
               if isinstance(r.get("turn"), int) and "t_last_speech_recv" in r
               and not r.get("bargein")]
    by_call = {c["remote_id"]: sum(r["call_sid"] == c["remote_id"] for r in replies)
               for c in calls}
    # the agent counted two turns per utterance: its turn numbers no longer match the caller's
    assert all(n == 4 for n in by_call.values()), by_call
    cmp = compare(out / "turns.jsonl", truth)
    assert cmp["matched"] == len(turns), cmp
    assert out_of_bounds(cmp) == [], cmp
