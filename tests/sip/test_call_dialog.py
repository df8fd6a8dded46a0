"""The caller's dialog under requests SipServer never sends, and races."""

from __future__ import annotations

import pytest

from loadcaller.sip.dialog import Dialog
from loadcaller.sip.events import (
    Answered,
    CallEnded,
    Ended,
    Failed,
    IncomingCall,
    MediaChanged,
    RemoteBye,
)
from loadcaller.sip.message import Request, Response, parse_message
from loadcaller.sip.sdp import build_offer
from loadcaller.sip.transaction import T1

from .pair import AGENT, CALLER, Pair, agent_answer
from .test_call import TICK_SLACK, answered_pair


def far_end(pair: Pair) -> Dialog:
    """The agent's side of the dialog, rebuilt from the wire (public API only)."""
    ((_, invite),) = pair.sent("up", "INVITE")[-1:]
    ((_, ok),) = pair.sent("down", 200)[:1]
    assert isinstance(invite, Request) and isinstance(ok, Response)
    dialog = Dialog.as_uas(invite, ok.to.tag or "", 100)
    return dialog


def send(pair: Pair, dialog: Dialog, method: str, body: bytes = b"", **kw: object) -> Response:
    """Send an in-dialog request to the caller; its response."""
    headers = (("Content-Type", "application/sdp"),) if body else ()
    via = f"SIP/2.0/UDP 10.0.0.2:5080;branch=z9hG4bK{method}{dialog.local_seq}"
    contact = "<sip:agent@10.0.0.2:5080>"
    req = dialog.request(method, via=via, contact=contact, headers=headers, body=body, **kw)  # type: ignore[arg-type]
    pair.call.receive(req.serialize(), AGENT, pair.now)
    out = pair.call.datagrams_to_send()
    responses = [parse_message(d) for d, _ in out]
    assert out and all(addr == AGENT for _, addr in out)
    response = responses[-1]
    assert isinstance(response, Response)
    return response


def test_update_with_sdp_moves_media() -> None:
    pair, _ = answered_pair()
    dialog = far_end(pair)
    moved = build_offer(ip="10.0.0.3", port=31000, session_id=22, version=2)
    ok = send(pair, dialog, "UPDATE", moved)
    assert ok.status == 200 and b"m=audio 40000 RTP/AVP 0 101" in ok.body
    changed = pair.call.next_event()
    assert isinstance(changed, MediaChanged) and changed.media.remote_rtp == ("10.0.0.3", 31000)
    assert send(pair, dialog, "UPDATE").status == 200  # no offer: nothing to answer


def test_offerless_reinvite_gets_our_offer_and_reads_the_ack() -> None:
    pair, _ = answered_pair()
    dialog = far_end(pair)
    ok = send(pair, dialog, "INVITE")
    assert ok.status == 200 and ok.body == pair.call.local.current
    answer = build_offer(ip="10.0.0.2", port=32000, session_id=22, version=3, direction="inactive")
    ack = dialog.request("ACK", via="SIP/2.0/UDP 10.0.0.2:5080;branch=z9hG4bKack2",
                         seq=dialog.local_seq, body=answer)  # fmt: skip
    pair.call.receive(ack.serialize(), AGENT, pair.now)
    changed = pair.call.next_event()
    assert isinstance(changed, MediaChanged) and changed.media.on_hold
    pair.run(2)
    assert not pair.call.datagrams_to_send()  # the ACK stopped the 200's retransmission


def test_reinvite_with_an_unreadable_contact_gets_400_and_the_call_goes_on() -> None:
    pair, _ = answered_pair()
    dialog = far_end(pair)
    moved = build_offer(ip="10.0.0.3", port=31000, session_id=22, version=2)
    req = dialog.request("INVITE", via="SIP/2.0/UDP 10.0.0.2:5080;branch=z9hG4bKbad1",
                         contact="<>", headers=(("Content-Type", "application/sdp"),),
                         body=moved)  # fmt: skip
    pair.call.receive(req.serialize(), AGENT, pair.now)
    (data, addr), = pair.call.datagrams_to_send()
    response = parse_message(data)
    assert isinstance(response, Response) and addr == AGENT
    assert (response.status, response.reason) == (400, "Bad Contact")
    assert pair.call.next_event() is None  # the media did not move
    assert pair.call.garbage == 1
    assert send(pair, dialog, "UPDATE", moved).status == 200  # the dialog still works


def test_other_requests() -> None:
    pair, _ = answered_pair()
    dialog = far_end(pair)
    assert send(pair, dialog, "INFO").status == 200
    assert send(pair, dialog, "SUBSCRIBE").status == 501
    assert send(pair, dialog, "INFO", seq=1).status == 500  # CSeq went backwards
    bad = send(pair, dialog, "INVITE", b"v=0\r\nm=video 1 RTP/AVP 96\r\nc=IN IP4 1.1.1.1\r\n")
    assert bad.status == 488
    assert send(pair, dialog, "OPTIONS").status == 200


def test_2xx_crossing_our_cancel_is_acked_then_byed() -> None:
    pair = Pair(drop=lambda d, m: isinstance(m, Request) and m.method == "CANCEL")
    pair.start()
    call_id = pair.incoming()
    pair.server.ring(call_id, pair.now)
    pair.pump()
    pair.call.hangup(pair.now)
    pair.server.answer(call_id, agent_answer(), pair.now)
    assert pair.wait_for(Ended).reason == "cancelled"
    assert pair.wait_for(CallEnded, server=True).reason == "remote_bye"
    assert not any(isinstance(e, Answered) for e in pair.call_events)


def test_late_200_after_timer_b_is_acked_then_byed() -> None:
    pair = Pair(drop=lambda d, m: d == "down")
    pair.start()
    call_id = pair.incoming()
    assert pair.wait_for(Failed, limit=40).outcome == "timeout"
    pair.drop = None
    pair.server.answer(call_id, agent_answer(), pair.now)
    pair.pump()
    assert pair.wait_for(CallEnded, server=True).reason == "remote_bye"
    assert [type(e) for e in pair.call_events] == [Failed]


def test_cancel_unanswered() -> None:
    pair = Pair()
    pair.start()
    call_id = pair.incoming()
    pair.server.ring(call_id, pair.now)
    pair.pump()
    pair.drop = lambda d, m: d == "up"
    start = pair.now
    pair.call.hangup(pair.now)
    assert pair.wait_for(Ended, limit=40).reason == "cancel_unanswered"
    assert pair.now - start == pytest.approx(64 * T1, abs=TICK_SLACK)


def test_from_display_name_and_extra_headers() -> None:
    pair = Pair(display_name='Load "Bot"', extra_headers=[("X-Scenario", "smoke")])
    pair.start()
    incoming = pair.wait_for(IncomingCall, server=True)
    invite = incoming.request
    assert invite.from_.display_name == 'Load "Bot"' and invite.from_.uri == "sip:alice@10.0.0.2"
    assert invite.header("x-scenario") == "smoke" and invite.header("User-Agent") == "loadcaller"
    assert dict(incoming.headers)["Call-ID"] == pair.call.call_id


def test_rport_and_received_fix_our_contact_behind_nat() -> None:
    pair = Pair(call_local=("192.168.1.5", 5062))  # we think we are here; the agent sees CALLER
    pair.start()
    call_id = pair.incoming()
    pair.server.answer(call_id, agent_answer(), pair.now)
    pair.wait_for(Answered)
    ((_, ok),) = pair.sent("down", 200)
    assert (ok.top_via.received, ok.top_via.rport) == CALLER
    hold = build_offer(ip="10.0.0.2", port=30000, session_id=22, version=2, direction="sendonly")
    pair.server.reinvite(call_id, hold, pair.now)
    pair.pump()
    reinvite_ok = [m for _, m in pair.sent("up", 200)][-1]
    assert reinvite_ok.header("Contact") == "<sip:alice@10.0.0.1:5060>"


def test_remote_bye_on_an_early_dialog_is_refused() -> None:
    # RFC 3261 15: the callee must not BYE an early dialog; a BYE naming only the
    # Call-ID and our tag (anyone on the path can forge that) must not end the call
    pair = Pair()
    pair.start()
    call_id = pair.incoming()
    pair.server.ring(call_id, pair.now)
    pair.pump()
    ((_, ringing),) = pair.sent("down", 180)
    ((_, invite),) = pair.sent("up", "INVITE")
    assert isinstance(ringing, Response) and isinstance(invite, Request)
    dialog = Dialog.as_uas(invite, ringing.to.tag or "", 5)
    assert send(pair, dialog, "BYE").status == 481
    events = []
    while (event := pair.call.next_event()) is not None:
        events.append(event)
    assert not any(isinstance(e, RemoteBye) for e in events)


def test_challenged_bye_is_sent_again_with_credentials() -> None:
    pair, _ = answered_pair(auth_username="alice", auth_password="pw")
    pair.call.hangup(pair.now)
    ((data, _),) = pair.call.datagrams_to_send()
    bye = parse_message(data)
    assert isinstance(bye, Request) and bye.method == "BYE"
    keep = ("Via", "From", "To", "Call-ID", "CSeq")
    challenge = 'Digest realm="r", nonce="n", qop="auth"'
    headers = (*((k, v) for k, v in bye.headers if k in keep), ("WWW-Authenticate", challenge))
    unauthorized = Response(status=401, reason="Unauthorized", headers=headers)
    pair.call.receive(unauthorized.serialize(), AGENT, pair.now)
    out = [parse_message(d) for d, _ in pair.call.datagrams_to_send()]
    again = [m for m in out if isinstance(m, Request) and m.method == "BYE"]
    assert len(again) == 1 and again[0].cseq.seq == bye.cseq.seq + 1
    assert 'uri="sip:agent@10.0.0.2:5080"' in (again[0].header("Authorization") or "")
    pair.pump()
    assert pair.wait_for(Ended).reason == "local_bye"
