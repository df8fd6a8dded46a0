"""PSTN call set-up against the stand-in Twilio, in process: Twilio's refusals, a call
never answered, a mis-signed or unknown media stream, and the guard rails at load."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from loadcaller.errors import LocalSetupError, SetupFailed
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
