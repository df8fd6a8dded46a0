"""DTMF reaches the reference agent over each transport (Twilio ``dtmf``, RFC 4733)."""

from __future__ import annotations

import pytest

from .conftest import read_jsonl, run_cli, start


@pytest.mark.parametrize("transport", ["twilio", "sip"])
async def test_dtmf_digits_reach_the_agent_in_order(tmp_path, services, transport):
    truth = tmp_path / "truth.jsonl"
    agent = await start("agent", "--transport", transport, "--port", "0",
                        "--ground-truth", str(truth))
    services.append(agent)
    profile = tmp_path / "p.yaml"
    profile.write_text(f"""name: dtmf
target: {{url: "{agent.url}"}}
load: {{users: 2, spawn_rate: 10, duration: 2s, stop_timeout: 20s}}
scenarios:
  - name: keys
    steps: [wait_for_agent, {{dtmf: "12#"}}, {{pause: 600ms}}, {{dtmf: "9"}}, {{pause: 600ms}},
            hangup]
""")
    out = tmp_path / "out"
    code, _, err = await run_cli("run", str(profile), "--results-dir", str(out),
                                 "--progress-every", "0", "--metrics-port", "-1")
    assert code == 0, err
    await agent.stop()  # flushes its log
    calls = read_jsonl(out / "calls.jsonl")
    assert calls and {c["outcome"] for c in calls} == {"completed"}
    keys: dict[str, list[str]] = {}
    for line in read_jsonl(truth):
        if "dtmf" in line:
            keys.setdefault(line["call_sid"], []).append(line["dtmf"])
    assert {c["remote_id"] for c in calls} <= set(keys)
    for call in calls:
        assert keys[call["remote_id"]] == ["1", "2", "#", "9"], keys
    if transport == "sip":  # RFC 4733 events: each digit's tone lasted its 100 ms
        durations = [ln["duration_ms"] for ln in read_jsonl(truth) if "dtmf" in ln]
        assert all(90 <= d <= 130 for d in durations), durations
