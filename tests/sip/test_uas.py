"""SipServer alone, fed hand-written requests (fixtures), and its misuse errors."""

from __future__ import annotations

import random

import pytest

from loadcaller.sip.errors import LocalProtocolError
from loadcaller.sip.events import Answered, CallConfirmed, CallEnded, IncomingCall, RemoteBye
from loadcaller.sip.message import Request, Response, parse_message
from loadcaller.sip.uac import SipCall
from loadcaller.sip.uas import SipServer

from .fixtures import INVITE
from .pair import AGENT, OFFER, Pair, agent_answer

PHONE = ("192.0.2.50", 5060)


def server() -> SipServer:
    return SipServer(("192.0.2.1", 5060), random.Random(3))


def replies(srv: SipServer) -> list[Response]:
    out = [parse_message(d) for d, _ in srv.datagrams_to_send()]
    assert all(isinstance(m, Response) for m in out)
    return out  # type: ignore[return-value]


def with_method(raw: bytes, method: str) -> bytes:
    msg = parse_message(raw)
    assert isinstance(msg, Request)
    headers = tuple((k, f"{msg.cseq.seq} {method}") if k == "CSeq" else (k, v)
                    for k, v in msg.headers)  # fmt: skip
    return Request(method=method, uri=msg.uri, headers=headers, body=b"").serialize()


def test_invite_gets_trying_at_once_and_retransmissions_are_absorbed() -> None:
    srv = server()
    srv.receive(INVITE, PHONE, 0.0)
    (trying,) = replies(srv)
    assert trying.status == 100 and trying.to.tag is None
    assert trying.top_via.received == "192.0.2.50"  # RFC 3261 18.2.1
    event = srv.next_event()
    assert isinstance(event, IncomingCall) and event.remote_addr == PHONE
    srv.receive(INVITE, PHONE, 0.4)  # a retransmission: the 100 again, no new call
    assert [r.status for r in replies(srv)] == [100] and srv.next_event() is None
    srv.ring(event.call_id, 0.5)
    srv.receive(INVITE, PHONE, 0.6)
    assert [r.status for r in replies(srv)] == [180, 180]


def test_out_of_dialog_options_cancel_and_bye() -> None:
    srv = server()
    srv.receive(with_method(INVITE, "OPTIONS"), PHONE, 0.0)
    (ok,) = replies(srv)
    assert ok.status == 200 and "OPTIONS" in (ok.header("Allow") or "")
    srv.receive(with_method(INVITE, "CANCEL"), PHONE, 0.0)
    srv.receive(with_method(INVITE, "BYE"), PHONE, 0.0)
    assert [r.status for r in replies(srv)] == [481, 481]


def test_misuse_is_a_local_error() -> None:
    srv = server()
    with pytest.raises(LocalProtocolError):
        srv.answer("nope", b"", 0.0)
    srv.receive(INVITE, PHONE, 0.0)
    event = srv.next_event()
    assert isinstance(event, IncomingCall)
    with pytest.raises(LocalProtocolError):
        srv.reject(event.call_id, 200, 0.0)
    with pytest.raises(LocalProtocolError):
        srv.reinvite(event.call_id, b"", 0.0)  # no confirmed dialog yet
    with pytest.raises(LocalProtocolError):
        SipServer(("h", 1), random.Random(), transport="sctp")


def test_hangup_before_the_ack_waits_for_it() -> None:
    pair = Pair(drop=lambda d, m: isinstance(m, Request) and m.method == "ACK" and d == "up"
                and len(pair.sent("up", "ACK")) == 1)  # fmt: skip
    pair.start()
    call_id = pair.incoming()
    pair.server.answer(call_id, agent_answer(), pair.now)
    pair.server.hangup(call_id, pair.now)
    pair.pump()
    assert not pair.sent("down", "BYE")  # RFC 3261 15: not before the ACK
    pair.wait_for(CallConfirmed, server=True)
    pair.pump()
    assert len(pair.sent("down", "BYE")) == 1


def test_many_calls_on_one_server() -> None:
    srv = SipServer(AGENT, random.Random(9))
    calls = {
        ("10.0.0.1", 6000 + i): SipCall(
            "sip:agent@10.0.0.2:5080", ("10.0.0.1", 6000 + i), AGENT, sdp_offer=OFFER,
            rng=random.Random(i),
        )
        for i in range(3)
    }  # fmt: skip
    got: dict[tuple[str, int], list[object]] = {addr: [] for addr in calls}
    ended: list[CallEnded] = []

    def pump(now: float) -> None:
        for _ in range(10):
            for addr, call in calls.items():
                for data, _ in call.datagrams_to_send():
                    srv.receive(data, addr, now)
                while (e := call.next_event()) is not None:
                    got[addr].append(e)
            for data, to in srv.datagrams_to_send():
                calls[to].receive(data, AGENT, now)
            while (s := srv.next_event()) is not None:
                if isinstance(s, IncomingCall):
                    srv.answer(s.call_id, agent_answer(s.sdp), now)
                elif isinstance(s, CallEnded):
                    ended.append(s)

    for call in calls.values():
        call.start(0.0)
    pump(0.0)
    assert all(isinstance(events[-1], Answered) for events in got.values())
    assert len(srv.calls) == 3
    first, second, third = calls.values()
    first.hangup(1.0)
    srv.hangup(second.call_id, 1.0)
    pump(1.0)
    assert [e.reason for e in ended] == ["remote_bye", "local_bye"]
    assert srv.calls == [third.call_id]
    assert isinstance(got[("10.0.0.1", 6001)][-1], RemoteBye)
