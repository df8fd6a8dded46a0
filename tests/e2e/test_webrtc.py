"""WebRTC end to end, as a user runs it: `loadcaller run ... --target webrtc+http://...`.

Against two peers:

- the reference agent (`loadcaller agent --transport webrtc`), reached at once
  over Pipecat's JSON signalling in PCMU (profiles/smoke.yaml, unchanged but for
  --target) and over WHIP in Opus (a profile whose ``target:`` section says
  ``codec: opus``): every call completes, every turn is answered with the latency
  the agent's end of turn (500 ms of silence) and think time (300 ms) make, and
  every turn matches the agent's ground truth by the id it answered with (pc_id,
  WHIP resource), each call was greeted, and the codec negotiated is the
  profile's;
- a real Pipecat SmallWebRTC bot (tests/e2e/pipecat_webrtc_bot.py: Pipecat's
  request handler, ``SmallWebRTCTransport``, Silero VAD), in PCMU and in Opus at
  once: calls complete, turns are answered with latencies from Silero's stop
  (0.2 s) up, and causally placed against the bot's own log: the caller stops,
  *then* Silero reports the stop, *then* the reply is heard.

The measurement's accuracy against the agent's ground truth (median, p95,
bias) is tests/e2e/test_accuracy.py's, at 20 calls and one run at a time.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.peers import require_module

from .conftest import ROOT, read_jsonl, run_cli, start

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(180)]

BOT = Path(__file__).with_name("pipecat_webrtc_bot.py")
PIPECAT = "pipecat-ai[websocket,silero,webrtc]>=1.14,<2"

OPUS_WHIP_PROFILE = """\
name: webrtc-opus
target:
  transport: webrtc
  url: whip+http://127.0.0.1:9/whip     # replaced by --target
  codec: opus
load: {{users: {users}, spawn_rate: 10, duration: {duration}, stop_timeout: 25s}}
call: {{turn_timeout: 8s, max_call_duration: 60s, give_up_after_no_response: 1}}
scenarios:
  - name: two_turns
    steps:
      - wait_for_agent                  # the greeting
      - say: {{phrase: order_number}}     # "The order number is four five seven two."
      - wait_for_agent
      - say: {{phrase: change_address}}   # "Can I change the delivery address?"
      - wait_for_agent
      - hangup
"""


def _check_calls(out: Path, *, codec: str, signalling: str, turns_per_call: int
                 ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    calls, turns = read_jsonl(out / "calls.jsonl"), read_jsonl(out / "turns.jsonl")
    assert calls, "no call placed"
    assert {c["outcome"] for c in calls} == {"completed"}, [c.get("reason") for c in calls]
    assert {c["transport"] for c in calls} == {"webrtc"}
    assert {c["media"]["codec"] for c in calls} == {codec}
    assert {c["media"]["signalling"] for c in calls} == {signalling}
    assert all(c["media"]["packets_received"] > 0 and c["media"]["lost"] == 0 for c in calls)
    assert len({c["remote_id"] for c in calls}) == len(calls)  # one session id per call
    assert len(turns) == turns_per_call * len(calls)
    assert all(t["outcome"] == "answered" for t in turns), [t["outcome"] for t in turns]
    return calls, turns


async def test_reference_agent_over_pipecat_json_pcmu_and_whip_opus(tmp_path, services) -> None:
    truth = tmp_path / "agent_turns.jsonl"
    agent = await start("agent", "--transport", "webrtc", "--port", "0", "--think", "300ms",
                        "--ground-truth", str(truth))
    services.append(agent)
    assert agent.url.startswith("webrtc+http://127.0.0.1:") and agent.url.endswith("/api/offer")
    whip_url = agent.url.replace("webrtc+http://", "whip+http://").replace("/api/offer", "/whip")
    opus_profile = tmp_path / "opus.yaml"
    opus_profile.write_text(OPUS_WHIP_PROFILE.format(users=3, duration="15s"))
    pcmu_out, opus_out = tmp_path / "pcmu", tmp_path / "opus"
    (pcmu_code, _, pcmu_err), (opus_code, _, opus_err) = await asyncio.gather(
        run_cli("run", str(ROOT / "profiles/smoke.yaml"), "--target", agent.url,
                "--users", "3", "--duration", "15s", "--results-dir", str(pcmu_out),
                "--progress-every", "0", "--metrics-port", "-1"),
        run_cli("run", str(opus_profile), "--target", whip_url, "--results-dir", str(opus_out),
                "--progress-every", "0", "--metrics-port", "-1"))
    assert pcmu_code == 0, pcmu_err[-3000:]
    assert opus_code == 0, opus_err[-3000:]

    pcmu_calls, pcmu_turns = _check_calls(pcmu_out, codec="PCMU", signalling="pipecat",
                                          turns_per_call=3)
    opus_calls, opus_turns = _check_calls(opus_out, codec="opus", signalling="whip",
                                          turns_per_call=2)
    agent_turns = {(r["call_sid"], r["turn"]): r for r in read_jsonl(truth)
                   if isinstance(r.get("turn"), int) and r.get("latency_ms") is not None}
    greeted = {r["call_sid"] for r in read_jsonl(truth) if r.get("turn") == "greeting"}
    for turns in (pcmu_turns, opus_turns):
        for t in turns:
            # the agent's end of turn (500 ms of silence) and think time (300 ms) are inside
            assert 780 <= t["latency_ms"] <= 2500, t
            gt = agent_turns.get((t["remote_id"], t["turn"]))
            assert gt is not None, f"turn not in the agent's log under its id: {t}"
            assert abs(t["latency_ms"] - gt["latency_ms"]) < 50, (t, gt)
    assert {c["remote_id"] for c in pcmu_calls + opus_calls} <= greeted


def _start_bot(tmp: Path) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    bot = subprocess.Popen(
        [sys.executable, str(BOT), "0", "--log", str(tmp / "bot_calls.jsonl"),
         "--max-pause-ms", "120"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=(tmp / "bot.err").open("w"),
        stdin=subprocess.DEVNULL, text=True)
    assert bot.stdout is not None
    for _ in range(50):  # bounded: a few lines at most before READY (the wait is in readline)
        line = bot.stdout.readline()
        if not line:
            break
        if line.startswith("READY "):
            return bot, line.split()[1]
    bot.kill()
    bot.wait(timeout=5)
    err = (tmp / "bot.err").read_text(encoding="utf-8", errors="replace")[-3000:]
    pytest.fail(f"the Pipecat SmallWebRTC bot did not start; stderr tail:\n{err}")


VAD_STOP_S = 0.2  # the bot's Silero stop_secs (Pipecat's default)
SILERO_WINDOW_S = 0.032  # 512 samples at 16 kHz
# Silero's stop less a window, less the quiet tail of a phrase that the caller's energy
# VAD counts as speech and Silero does not (as in tests/e2e/test_pipecat.py)
MIN_LATENCY_MS = (VAD_STOP_S - SILERO_WINDOW_S) * 1000 - 60
MAX_LATENCY_MS = 2000.0  # generous: the bot pushes its reply the instant Silero stops
SLACK_S = 0.002  # both sides round to the microsecond


async def test_pipecat_smallwebrtc_bot_in_pcmu_and_opus(tmp_path) -> None:
    for module in ("pipecat", "fastapi", "uvicorn", "onnxruntime", "aiortc", "cv2"):
        require_module(module, PIPECAT)
    bot, url = await asyncio.to_thread(_start_bot, tmp_path)
    try:
        runs = []
        for codec in ("PCMU", "opus"):
            profile = tmp_path / f"{codec}.yaml"
            profile.write_text(OPUS_WHIP_PROFILE.format(users=2, duration="20s")
                               .replace("codec: opus", f"codec: {codec}"))
            runs.append(run_cli("run", str(profile), "--target", f"webrtc+{url}",
                                "--results-dir", str(tmp_path / codec), "--progress-every", "0",
                                "--metrics-port", "-1"))
        results = await asyncio.gather(*runs)
    finally:
        bot.terminate()
        try:
            await asyncio.to_thread(bot.wait, 15)
        except subprocess.TimeoutExpired:
            bot.kill()
    for code, _, err in results:
        assert code == 0, err[-3000:]
    bot_calls = {r["pc_id"]: r for r in read_jsonl(tmp_path / "bot_calls.jsonl")}
    for codec in ("PCMU", "opus"):
        calls, turns = _check_calls(tmp_path / codec, codec=codec, signalling="pipecat",
                                    turns_per_call=2)
        for c in calls:
            rec = bot_calls.get(c["remote_id"])
            assert rec is not None, f"the bot logged no call {c['remote_id']}"
            assert rec["codec"].lower() == f"audio/{codec.lower()}"
            assert rec["greeted"] is not None and c["greeting_ms"] is not None
        for t in turns:
            assert not t["overlap"], t
            assert MIN_LATENCY_MS <= t["latency_ms"] <= MAX_LATENCY_MS, t
            # causal: the caller stops, then Silero says so, then the reply is heard
            stops = [s for s in bot_calls[t["remote_id"]]["vad_stop"]
                     if t["t_speech_end"] - SLACK_S <= s <= t["t_reply_onset"] + SLACK_S]
            assert stops, (t, bot_calls[t["remote_id"]]["vad_stop"])


async def test_demo_over_webrtc_runs_the_whole_loop_and_checks_itself(tmp_path) -> None:
    out = tmp_path / "demo"
    code, stdout, err = await run_cli("demo", "--transport", "webrtc", "--users", "4",
                                      "--duration", "16s", "--results-dir", str(out),
                                      "--metrics-port", "-1", timeout=180)
    assert code == 0, err[-3000:]
    assert "webrtc+http://127.0.0.1:" in err  # the agent it started, as the demo says
    calls = read_jsonl(out / "calls.jsonl")
    assert len(calls) >= 4 and {c["transport"] for c in calls} == {"webrtc"}
    assert {c["outcome"] for c in calls} == {"completed"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["turns"]["answered"] == summary["turns"]["count"] >= 12
    gt = summary["ground_truth"]  # the self-check: the callers' numbers against the agent's
    assert gt["matched"] >= 0.95 * summary["turns"]["count"], gt
    assert gt["out_of_bounds"] == [] and "measurement check" in stdout, gt
    assert "FAILED" not in stdout
    # the backend sat behind the chaos proxy, as over the other transports
    assert "chaos phase" in stdout and len(summary["phases"]) >= 2
