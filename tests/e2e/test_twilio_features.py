"""Twilio features end to end: DTMF, customParameters and signed upgrades."""

from __future__ import annotations

import json

from websockets.asyncio.server import ServerConnection, serve

from .conftest import read_jsonl, run_cli, start, write_profile


async def test_dtmf_and_custom_parameters_reach_the_agent(tmp_path):
    seen: dict[str, list] = {"digits": [], "params": []}

    async def agent(ws: ServerConnection) -> None:
        async for raw in ws:
            msg = json.loads(raw)
            if msg["event"] == "start":
                seen["params"].append(msg["start"]["customParameters"])
            elif msg["event"] == "dtmf":
                seen["digits"].append(msg["dtmf"]["digit"])

    server = await serve(agent, "127.0.0.1", 0)
    port = next(iter(server.sockets)).getsockname()[1]
    profile = tmp_path / "p.yaml"
    profile.write_text(f"""name: dtmf
target: {{url: "ws://127.0.0.1:{port}/media", custom_parameters: {{tenant: acme}}}}
load: {{users: 1, spawn_rate: 10, duration: 1s}}
scenarios:
  - name: ivr
    steps: [{{pause: 200ms}}, {{dtmf: "12#"}}, {{pause: 300ms}}, hangup]
""")
    try:
        code, _, err = await run_cli("run", str(profile), "--results-dir", str(tmp_path / "r"),
                                     "--progress-every", "0")
    finally:
        server.close()
    assert code == 0, err
    # a call the run's end cancelled while it was still being set up sent no "start"
    calls = [c for c in read_jsonl(tmp_path / "r" / "calls.jsonl") if c["setup_ms"] is not None]
    assert len(seen["params"]) == len(calls) >= 1
    done = [c for c in calls if c["outcome"] == "completed"]
    assert seen["digits"][:3 * len(done)] == list("12#") * len(done)
    assert seen["params"][0]["tenant"] == "acme"
    assert seen["params"][0]["loadcaller_call_id"] == calls[0]["call_id"]


async def test_signed_upgrade_is_accepted_and_a_wrong_token_is_refused(tmp_path, services):
    agent = await start("agent", "--port", "0", "--think", "100ms", "--auth-token", "s3cret")
    services.append(agent)
    for token, outcome in (("s3cret", "completed"), ("wrong", "failed_setup")):
        profile = write_profile(tmp_path / f"{token}.yaml", url=agent.url, users=1,
                                duration="1s", turns=1,
                                extra="seed: 1\n")
        text = profile.read_text().replace(
            f'url: "{agent.url}"', f'url: "{agent.url}", auth_token: {token}')
        profile.write_text(text)
        out = tmp_path / token
        code, _, err = await run_cli("run", str(profile), "--results-dir", str(out),
                                     "--progress-every", "0")
        assert code == (0 if outcome == "completed" else 1), err  # 1: no call connected
        calls = [c for c in read_jsonl(out / "calls.jsonl") if c["outcome"] != "cancelled"]
        assert calls and {c["outcome"] for c in calls} == {outcome}, calls
        if outcome == "failed_setup":
            assert "HTTP 403" in calls[0]["reason"]
