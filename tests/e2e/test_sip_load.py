"""Load over SIP: many concurrent calls against SIPp's built-in ``uas -rtp_echo``.

SIPp counts its own calls (``-trace_stat``): the run passes only when both
sides agree that every call went through, none failed.
"""

from __future__ import annotations

import json

import pytest

from .conftest import read_jsonl
from .sipp_peer import ONE_TURN, Sipp, run_loadcaller, sip_profile

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(120)]

CALLS = 50


def max_overlap(calls: list[dict]) -> int:
    """The most calls in progress at one instant, from their start and end times."""
    edges = sorted([(c["t_start"], 1) for c in calls] + [(c["t_end"], -1) for c in calls])
    now = top = 0
    for _, step in edges:
        now += step
        top = max(top, now)
    return top


async def test_fifty_concurrent_calls_against_sipp_echo_none_failed_on_either_side(
        tmp_path):
    async with Sipp(tmp_path / "sipp", "uas", calls=CALLS, rtp_echo=True) as sipp:
        # one call per caller: all start within 0.25 s and last about 3 s
        profile = sip_profile(tmp_path / "p.yaml", url=sipp.url, users=CALLS,
                              steps=ONE_TURN)
        code, out, err = await run_loadcaller(profile, tmp_path / "r")
        sipp_rc = await sipp.wait(20)  # -m 50: it exits after the 50th call (+4 s linger)
    # our side
    assert code == 0, err[-3000:] + out
    calls = read_jsonl(tmp_path / "r" / "calls.jsonl")
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["calls"]["started"] == CALLS
    assert summary["calls"]["failed"] == 0, summary["calls"]
    assert summary["calls"]["outcomes"] == {"completed": CALLS}, summary["calls"]
    assert max_overlap(calls) == CALLS
    assert summary["turns"]["answered"] == summary["turns"]["count"] == CALLS
    assert summary["generator"]["saturated"] is False
    for call in calls:
        media = call["media"]
        assert media["packets_received"] > 0 and media["lost"] == 0, call
        assert media["bye"] == "local_bye", call
    assert len({c["remote_id"] for c in calls}) == CALLS  # 50 Call-IDs
    # SIPp's side: its final statistics
    assert sipp_rc == 0, sipp.report()
    final = sipp.stats()
    assert final["SuccessfulCall(C)"] == str(CALLS), sipp.report()
    assert final["FailedCall(C)"] == "0", sipp.report()
    assert final["IncomingCall(C)"] == str(CALLS)
    assert max(int(row["CurrentCall"]) for row in sipp.stats_rows()) >= CALLS
    assert not sipp.errors().strip(), sipp.errors()[-3000:]
