"""PSTN call set-up against the stand-in Twilio, in process: Twilio's refusals, a call
never answered, a mis-signed or unknown media stream, and the guard rails at load."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from loadcaller.errors import LocalSetupError, SetupFailed
from loadcaller.media.outcomes import CallOutcome
from loadcaller.timebase import now_ns
from loadcaller.transports.base import close_shared
from loadcaller.transports.pstn import PstnTarget
from loadcaller.twilio.signature import compute_signature
from loadcaller.twilio.streamserver import StreamWaiter, stream_server
from tests.pstn.twilio_standin import StandIn

SID = "AC" + "1" * 32
TOKEN = "standin-token-7f3a9c"
AGENT_NO, SILENT_NO, UNVERIFIED_NO = "+15005550101", "+15005550102", "+15005550103"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def target(standin: StandIn, **over: Any) -> PstnTarget:
    port = free_port()
    fields: dict[str, Any] = {
        "transport": "pstn", "to": AGENT_NO, "from": "+15005550006", "account_sid": SID,
        "auth_token": TOKEN, "public_url": f"ws://127.0.0.1:{port}/media",
        "listen": f"127.0.0.1:{port}", "allow": ["+1500555*"], "setup_timeout": 2.0,
        "api_base": standin.base_url, **over}
    return PstnTarget.model_validate(fields)


@pytest.fixture
def standin() -> Iterator[StandIn]:
    s = StandIn(account_sid=SID, auth_token=TOKEN, numbers={},
                never_answer=frozenset({SILENT_NO}),
                unverified=frozenset({UNVERIFIED_NO})).start()
    yield s
    s.stop()


async def setup_failure(t: PstnTarget) -> str:
    transport = t.new_transport(call_id="c1")
    try:
        with pytest.raises((SetupFailed, LocalSetupError)) as caught:
            await transport.connect()
        return str(caught.value)
    finally:
        await transport.hangup()
        await close_shared()


async def test_twilio_refusing_the_credentials_is_failed_setup_with_its_message(
        standin: StandIn) -> None:
    reason = await setup_failure(target(standin, auth_token="wrong-token"))
    assert reason == "Twilio refused the call: Authenticate (Twilio error 20003, HTTP 401)"
    assert "wrong-token" not in reason


async def test_an_unverified_number_is_failed_setup_with_twilio_s_code(
        standin: StandIn) -> None:
    reason = await setup_failure(target(standin, to=UNVERIFIED_NO))
    assert "is unverified" in reason and "Twilio error 21219, HTTP 400" in reason


async def test_a_call_never_answered_says_its_status_and_is_cancelled(
        standin: StandIn) -> None:
    reason = await setup_failure(target(standin, to=SILENT_NO, setup_timeout=1.0))
    assert "no media stream from Twilio within 1s" in reason and "ringing" in reason
    (call,) = standin.calls.values()
    assert call.statuses == ["queued", "ringing", "canceled"]
    methods = [(r.method, r.form.get("Status")) for r in standin.requests]
    assert methods == [("POST", None), ("GET", None), ("POST", "canceled")]


async def test_a_mis_signed_stream_is_refused_and_the_call_fails(
        standin: StandIn, agent: Any) -> None:
    standin.numbers[AGENT_NO] = agent.url
    standin.stream_token = "not-the-account-token"
    reason = await setup_failure(target(standin))
    (call,) = standin.calls.values()
    assert call.upgrade_status == 403
    assert "no media stream from Twilio within 2s" in reason
    assert call.media_to_agent == 0


async def test_the_far_end_hanging_up_is_agent_hangup_and_not_ended_again(
        standin: StandIn, agent: Any) -> None:
    standin.numbers[AGENT_NO] = agent.url
    transport = target(standin).new_transport(call_id="c1")
    try:
        await transport.connect()
        assert transport.remote_id in standin.calls
        for _ in range(10):  # the agent's greeting is heard through the bridge
            await asyncio.sleep(0.1)
            transport.send_audio(b"\xff" * 160)
        assert transport.heard(now_ns())
        standin.hang_up(transport.remote_id)
        async with asyncio.timeout(5):
            end = await transport.ended
        assert end.outcome == CallOutcome.AGENT_HANGUP and "stop" in end.reason
    finally:
        await transport.hangup()
        await close_shared()
    assert [r.form.get("Status") for r in standin.requests if r.method == "POST"] == [None]


def test_pstn_runs_in_one_process_and_refuses_a_number_outside_allow(tmp_path: Path) -> None:
    shipped = Path(__file__).resolve().parents[2] / "profiles" / "pstn.yaml"
    env = {**os.environ, "TWILIO_AUTH_TOKEN": "placeholder"}
    outside = tmp_path / "outside.yaml"
    outside.write_text(shipped.read_text().replace('allow: ["+14155550100"]',
                                                   'allow: ["+4420*"]'))
    for args, said in (((str(shipped), "--processes", "2"), "one process"),
                       ((str(outside),), "is not in target.allow")):
        proc = subprocess.run([sys.executable, "-m", "loadcaller", "run", *args,
                               "--results-dir", str(tmp_path / "out")], env=env,
                              capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)
        assert proc.returncode == 2, proc.stderr
        lines = [line for line in proc.stderr.strip().splitlines()
                 if line != "loadcaller: invalid profile"]  # the profile errors' header
        assert len(lines) == 1 and said in lines[0], proc.stderr
        assert "placeholder" not in proc.stderr + proc.stdout


async def test_the_server_refuses_unsigned_and_unknown_streams() -> None:
    port = free_port()
    server = await stream_server("127.0.0.1", port)
    url = f"ws://127.0.0.1:{port}/media"
    started: list[str] = []
    server.waiting["known"] = StreamWaiter(TOKEN, url, lambda ws, st, t: started.append(
        st.custom_parameters["loadcaller_call_id"]), lambda m, t: None, lambda c, r: None)
    good = {"X-Twilio-Signature": compute_signature(TOKEN, url.replace("ws:", "wss:"))}
    try:
        for headers in ({}, {"X-Twilio-Signature": compute_signature("other", url)}):
            with pytest.raises(InvalidStatus) as refused:
                async with connect(url, additional_headers=headers):
                    pass
            assert refused.value.response.status_code == 403
        from loadcaller.twilio.caller import TwilioCallerStream
        stream = TwilioCallerStream(custom_parameters={"loadcaller_call_id": "unknown"})
        async with connect(url, additional_headers=good) as ws:
            await ws.send(stream.connected())
            await ws.send(stream.start())
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(5):
                    await ws.recv()
            assert ws.close_code == 1008
        assert started == [] and "known" in server.waiting
    finally:
        await close_shared()
        from loadcaller.twilio.streamserver import close_servers
        await close_servers()


def test_a_number_outside_allow_is_refused_at_load() -> None:
    fields = {"transport": "pstn", "to": "+442079460000", "from": "+15005550006",
              "account_sid": SID, "auth_token": TOKEN, "public_url": "wss://x.example/media",
              "allow": ["+1500555*"]}
    with pytest.raises(ValidationError, match=r"target.to \+442079460000 is not in "
                                              r"target.allow"):
        PstnTarget.model_validate(fields)
    with pytest.raises(ValidationError, match=r"target\.allow is empty"):
        PstnTarget.model_validate({**fields, "allow": []})
    with pytest.raises(ValidationError, match="Field required"):
        PstnTarget.model_validate({k: v for k, v in fields.items() if k != "allow"})
    with pytest.raises(ValidationError, match="an account SID is AC and 32 hex digits"):
        PstnTarget.model_validate({**fields, "to": AGENT_NO, "account_sid": TOKEN})
