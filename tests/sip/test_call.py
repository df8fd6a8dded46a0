"""SipCall against SipServer in memory, on a fake clock."""

from __future__ import annotations

import random

import pytest

from loadcaller.sip.events import (
    Answered,
    CallConfirmed,
    CallEnded,
    EarlyMedia,
    Ended,
    Failed,
    MediaChanged,
    Provisional,
    RemoteBye,
    RequestAnswered,
)
from loadcaller.sip.message import Request, Response, parse_message
from loadcaller.sip.sdp import build_offer
from loadcaller.sip.transaction import T1
from loadcaller.sip.uac import SipCall, classify

from .pair import AGENT, CALLER, OFFER, Pair, agent_answer, drop_nth


def answered_pair(**kw: object) -> tuple[Pair, str]:
    pair = Pair(**kw)  # type: ignore[arg-type]
    pair.start()
    call_id = pair.incoming()
    pair.server.ring(call_id, pair.now)
    pair.server.answer(call_id, agent_answer(), pair.now)
    pair.wait_for(Answered)
    pair.wait_for(CallConfirmed, server=True)
    return pair, call_id


def test_plain_call_and_caller_bye() -> None:
    pair, _ = answered_pair()
    events = pair.call_events
    assert [type(e) for e in events] == [Provisional, Provisional, Answered]
    assert [e.status for e in events[:2]] == [100, 180]  # type: ignore[union-attr]
    answered = events[2]
    assert isinstance(answered, Answered) and answered.status == 200
    assert answered.media.codec == "PCMU" and answered.media.remote_rtp == ("10.0.0.2", 30000)
    assert answered.media.telephone_event == 101
    pair.call.hangup(pair.now)
    assert pair.wait_for(Ended).reason == "local_bye"
    assert pair.wait_for(CallEnded, server=True).reason == "remote_bye"
    assert pair.server.calls == []
    pair.run(40)
    assert pair.call.closed


def test_wire_details_a_strict_peer_checks() -> None:
    pair, _ = answered_pair()
    ((_, invite),) = pair.sent("up", "INVITE")
    ((_, ack),) = pair.sent("up", "ACK")
    assert isinstance(invite, Request) and isinstance(ack, Request)
    via = invite.top_via
    assert via.branch and via.branch.startswith("z9hG4bK") and via.transport == "UDP"
    assert any(k == "rport" for k, _ in via.params)
    assert invite.header("Contact") == "<sip:alice@10.0.0.1:5060>"
    assert invite.header("Content-Type") == "application/sdp" and invite.body == OFFER
    # The 2xx ACK: a new transaction in the dialog, the INVITE's CSeq number.
    assert ack.top_via.branch != via.branch
    assert ack.cseq.seq == invite.cseq.seq and ack.cseq.method == "ACK"
    assert ack.to.tag and ack.from_.tag == invite.from_.tag
    assert ack.uri == "sip:agent@10.0.0.2:5080"  # the agent's Contact
    ((_, ok),) = [(t, m) for t, m in pair.sent("down", 200)]
    assert isinstance(ok, Response) and ok.to.tag == ack.to.tag
    # The server stamped received/rport; the caller learned nothing new (same address).
    assert ok.top_via.rport == 5060


def test_agent_hangs_up() -> None:
    pair, call_id = answered_pair()
    pair.server.hangup(call_id, pair.now)
    assert isinstance(pair.wait_for(RemoteBye), RemoteBye)
    assert pair.wait_for(CallEnded, server=True).reason == "local_bye"
    assert [t for t, _ in pair.sent("up", 200)]  # we answered the BYE


def test_hangup_before_answer_cancels() -> None:
    pair = Pair()
    pair.start()
    call_id = pair.incoming()
    pair.server.ring(call_id, pair.now)
    pair.pump()
    pair.call.hangup(pair.now)
    assert pair.wait_for(Ended).reason == "cancelled"
    assert pair.wait_for(CallEnded, server=True).reason == "cancelled"
    assert pair.sent("up", "CANCEL") and pair.sent("down", 487)
    ((_, cancel),) = pair.sent("up", "CANCEL")
    ((_, invite),) = pair.sent("up", "INVITE")
    assert cancel.top_via.branch == invite.top_via.branch
    ((_, ack),) = pair.sent("up", "ACK")  # the 487 is ACKed in its transaction
    assert ack.top_via.branch == invite.top_via.branch


def test_cancel_waits_for_a_provisional() -> None:
    pair = Pair(drop=lambda d, m: d == "down")  # the agent's 100 Trying never arrives
    pair.start()
    pair.call.hangup(pair.now)
    pair.run(1)
    assert not pair.sent("up", "CANCEL")  # RFC 3261 9.1


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(486, "busy"), (600, "busy"), (404, "not_found"), (480, "not_found"),
     (503, "unavailable"), (403, "rejected"), (488, "rejected")],
)  # fmt: skip
def test_rejections_are_classified(status: int, outcome: str) -> None:
    pair = Pair()
    pair.start()
    pair.server.reject(pair.incoming(), status, pair.now)
    failed = pair.wait_for(Failed)
    assert (failed.status, failed.outcome) == (status, outcome)
    assert len(pair.sent("up", "ACK")) == 1
    pair.run(33)  # timer D
    assert pair.call.closed


def test_redirect_is_classified_not_followed() -> None:
    pair = Pair()
    pair.start()
    contact = (("Contact", "<sip:human@10.0.0.9>"),)
    pair.server.reject(pair.incoming(), 302, pair.now, headers=contact)
    failed = pair.wait_for(Failed)
    assert failed.outcome == "redirect" and "sip:human@10.0.0.9" in failed.reason
    pair.run(5)
    assert len(pair.sent("up", "INVITE")) == 1


def test_classify() -> None:
    assert classify(484) == "not_found" and classify(407) == "auth_failed"
    assert classify(301) == "redirect" and classify(500) == "rejected"


@pytest.mark.parametrize("proxy", [False, True])
def test_digest_challenge_then_200(proxy: bool) -> None:
    pair = Pair(
        server_kw={"auth": ("lab", "alice", "s3cret"), "proxy_auth": proxy},
        auth_username="alice",
        auth_password="s3cret",
    )
    pair.start()
    pair.server.answer(pair.incoming(), agent_answer(), pair.now)
    assert pair.wait_for(Answered).status == 200
    invites = [m for _, m in pair.sent("up", "INVITE")]
    assert len(invites) == 2
    first, second = invites
    assert second.cseq.seq == first.cseq.seq + 1
    assert second.call_id == first.call_id and second.from_.tag == first.from_.tag
    assert second.top_via.branch != first.top_via.branch
    name = "Proxy-Authorization" if proxy else "Authorization"
    assert second.header(name) is not None and first.header(name) is None
    assert len(pair.sent("down", 407 if proxy else 401)) == 1
    acks = [m for _, m in pair.sent("up", "ACK")]
    assert [a.cseq.seq for a in acks] == [first.cseq.seq, second.cseq.seq]
    assert acks[1].header(name) == second.header(name)  # RFC 3261 13.2.2.4


def test_bad_credentials_fail_auth() -> None:
    pair = Pair(server_kw={"auth": ("lab", "alice", "right")}, auth_username="alice",
                auth_password="wrong")  # fmt: skip
    pair.start()
    failed = pair.wait_for(Failed)
    assert (failed.status, failed.outcome) == (401, "auth_failed")
    assert failed.reason == "Unauthorized (challenged again: our credentials were refused)"
    assert len(pair.sent("up", "INVITE")) == 2 and pair.server.auth_failures == 1
    assert pair.server_events == []


def test_no_credentials_fail_auth() -> None:
    pair = Pair(server_kw={"auth": ("lab", "alice", "right")})
    pair.start()
    failed = pair.wait_for(Failed)
    assert failed.outcome == "auth_failed"
    assert failed.reason == "Unauthorized (challenged, and the profile has no auth_username)"
    assert len(pair.sent("up", "INVITE")) == 1


def test_a_challenge_we_cannot_answer_says_what_was_asked() -> None:
    pair = Pair(auth_username="alice", auth_password="pw")
    pair.start()
    challenge = (("WWW-Authenticate", 'Digest realm="lab", nonce="n1", algorithm=AKAv1-MD5'),)
    pair.server.reject(pair.incoming(), 401, pair.now, headers=challenge)
    failed = pair.wait_for(Failed)
    assert failed.outcome == "auth_failed"
    assert failed.reason == ("Unauthorized (no challenge we can answer (MD5 or SHA-256 "
                             "digest): Digest algorithm=AKAv1-MD5)")
    assert len(pair.sent("up", "INVITE")) == 1


def test_timer_b_retransmits_then_times_out() -> None:
    pair = Pair(drop=lambda d, m: True)  # nobody there
    pair.start()
    failed = pair.wait_for(Failed, limit=40)
    assert failed.outcome == "timeout" and failed.status == 408
    instants = [t for t, _ in pair.sent("up", "INVITE")]
    expected = [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert instants == pytest.approx(expected, abs=TICK_SLACK)
    assert pair.now == pytest.approx(64 * T1, abs=TICK_SLACK)


TICK_SLACK = 0.011


def test_early_media_on_183() -> None:
    pair = Pair()
    pair.start()
    call_id = pair.incoming()
    pair.server.ring(call_id, pair.now, status=183, sdp=agent_answer())
    early = pair.wait_for(EarlyMedia)
    assert early.media.remote_rtp == ("10.0.0.2", 30000)
    pair.server.answer(call_id, agent_answer(), pair.now)
    assert isinstance(pair.wait_for(Answered), Answered)


def test_200_without_sdp_after_a_183_with_sdp_goes_on_with_the_early_session() -> None:
    pair = Pair()
    pair.start()
    call_id = pair.incoming()
    pair.server.ring(call_id, pair.now, status=183, sdp=agent_answer())
    early = pair.wait_for(EarlyMedia)
    pair.server.answer(call_id, b"", pair.now)
    answered = pair.wait_for(Answered)
    assert answered.media == early.media and answered.sdp == early.sdp
    assert len(pair.sent("up", "ACK")) == 1 and not pair.sent("up", "BYE")


def test_200_without_sdp_is_acked_then_byed() -> None:
    pair = Pair()
    pair.start()
    call_id = pair.incoming()
    pair.server.answer(call_id, b"", pair.now)
    failed = pair.wait_for(Failed)
    assert (failed.status, failed.outcome) == (200, "no_sdp")
    assert pair.wait_for(CallEnded, server=True).reason == "remote_bye"
    assert len(pair.sent("up", "ACK")) == 1 and len(pair.sent("up", "BYE")) == 1
    pair.run(40)
    assert pair.call_events[-1] == failed and pair.call.closed


@pytest.mark.parametrize(("edit", "why"), [
    ((b"m=audio 30000 ", b"m=audio 0 "), "audio stream rejected (port 0)"),
    ((b"c=IN IP4 10.0.0.2\r\n", b""), "no c= address"),
    ((b"m=audio 30000 RTP/AVP", b"m=video 30000 RTP/AVP"), "no audio stream"),
])
def test_200_without_a_usable_audio_stream_is_no_sdp_not_a_codec_mismatch(
        edit: tuple[bytes, bytes], why: str) -> None:
    # (SipServer answers only with SDP it could use itself: the 200 is written here)
    call = SipCall("sip:agent@10.0.0.2:5080", CALLER, AGENT, sdp_offer=OFFER,
                   rng=random.Random(1))  # fmt: skip
    call.start(0.0)
    ((data, _),) = call.datagrams_to_send()
    invite = parse_message(data)
    assert isinstance(invite, Request)
    answer = agent_answer()
    assert edit[0] in answer
    ok = call.response(invite, 200, to_tag="agent1", body=answer.replace(*edit),
                       headers=(("Contact", "<sip:agent@10.0.0.2:5080>"),))
    call.receive(ok.serialize(), AGENT, 0.1)
    failed = call.next_event()
    assert isinstance(failed, Failed)
    assert (failed.status, failed.outcome) == (200, "no_sdp")
    assert failed.reason == f"SDP without a usable audio stream: {why}"
    sent = [parse_message(d) for d, _ in call.datagrams_to_send()]
    assert [m.method for m in sent if isinstance(m, Request)] == ["ACK", "BYE"]


def test_no_common_codec() -> None:
    pair = Pair(sdp_offer=build_offer(ip="10.0.0.1", port=40000, session_id=1, codecs=["PCMA"]))
    pair.start()
    call_id = pair.incoming()
    offer_pcmu = build_offer(ip="10.0.0.1", port=40000, session_id=1, codecs=["PCMU"])
    pair.server.answer(call_id, agent_answer(offer_pcmu), pair.now)
    failed = pair.wait_for(Failed)
    assert failed.outcome == "no_common_codec" and "PCMU" in failed.reason
    assert len(pair.sent("up", "BYE")) == 1


def test_reinvite_hold_is_answered_and_reported() -> None:
    pair, call_id = answered_pair()
    hold = build_offer(ip="10.0.0.2", port=30002, session_id=22, version=2, direction="sendonly")
    pair.server.reinvite(call_id, hold, pair.now)
    changed = pair.wait_for(MediaChanged)
    assert changed.media.on_hold and changed.media.remote_rtp == ("10.0.0.2", 30002)
    answered = pair.wait_for(RequestAnswered, server=True)
    assert (answered.method, answered.status) == ("INVITE", 200)
    assert b"a=recvonly" in answered.sdp and b"o=loadcaller 11 2 " in answered.sdp
    # Resume: the same port back to sendrecv.
    resume = build_offer(ip="10.0.0.2", port=30002, session_id=22, version=3)
    pair.server.reinvite(call_id, resume, pair.now)
    pair.run(0.1)
    last = pair.call_events[-1]
    assert isinstance(last, MediaChanged) and not last.media.on_hold
    assert len(pair.sent("down", "ACK")) == 2


def test_options_in_and_out_of_dialog() -> None:
    pair, call_id = answered_pair()
    pair.server.options(call_id, pair.now)
    answered = pair.wait_for(RequestAnswered, server=True)
    assert (answered.method, answered.status) == ("OPTIONS", 200)
    ((_, ok),) = pair.sent("up", 200)
    assert "INVITE" in (ok.header("Allow") or "")


def test_bye_unanswered_ends_after_timer_f() -> None:
    pair, _ = answered_pair()
    pair.drop = lambda d, m: isinstance(m, Request) and m.method == "BYE"
    start = pair.now
    pair.call.hangup(pair.now)
    pair.pump()
    ended = pair.wait_for(Ended, limit=40)
    assert ended.reason == "bye_unanswered"
    assert pair.now - start == pytest.approx(64 * T1, abs=TICK_SLACK)
    gaps = [round(t - start, 2) for t, _ in pair.sent("up", "BYE")]
    assert gaps[:5] == [0.0, 0.5, 1.5, 3.5, 7.5] and gaps[5] == 11.5  # E capped at T2


def test_retransmitted_2xx_is_acked_again() -> None:
    pair = Pair(drop=drop_nth("ACK", 1))
    pair.start()
    call_id = pair.incoming()
    pair.server.answer(call_id, agent_answer(), pair.now)
    pair.wait_for(CallConfirmed, server=True)
    assert len(pair.sent("down", 200)) == 2 and len(pair.sent("up", "ACK")) == 2
    assert [type(e) for e in pair.call_events].count(Answered) == 1


def test_lost_invite_is_retransmitted() -> None:
    pair = Pair(drop=drop_nth("INVITE", 1))
    pair.start()
    call_id = pair.incoming()
    assert pair.now == pytest.approx(T1, abs=TICK_SLACK)
    pair.server.answer(call_id, agent_answer(), pair.now)
    assert isinstance(pair.wait_for(Answered), Answered)
    assert len(pair.sent("up", "INVITE")) == 2


def test_lost_200_is_retransmitted_by_the_agent() -> None:
    pair = Pair(drop=drop_nth(200, 1))
    pair.start()
    call_id = pair.incoming()
    pair.server.answer(call_id, agent_answer(), pair.now)
    pair.wait_for(Answered)
    assert pair.now == pytest.approx(T1, abs=TICK_SLACK)


def test_ack_never_arrives_agent_gives_up() -> None:
    pair = Pair(drop=lambda d, m: isinstance(m, Request) and m.method == "ACK")
    pair.start()
    call_id = pair.incoming()
    pair.server.answer(call_id, agent_answer(), pair.now)
    ended = pair.wait_for(CallEnded, server=True, limit=40)
    assert ended.reason == "ack_timeout"
    assert isinstance(pair.wait_for(RemoteBye), RemoteBye)


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_reliable_transport_has_no_retransmissions(transport: str) -> None:
    pair, _ = answered_pair(transport=transport)
    ((_, invite),) = pair.sent("up", "INVITE")
    assert invite.top_via.transport == transport.upper()
    assert f";transport={transport}" in (invite.header("Contact") or "")
    pair.call.hangup(pair.now)
    pair.wait_for(Ended)
    pair.run(0.1)
    assert not pair.call.closed  # timer M still absorbs a late 2xx from another fork
    pair.run(32)
    assert pair.call.closed
    silent = Pair(transport=transport, drop=lambda d, m: True)
    silent.start()
    assert silent.wait_for(Failed, limit=40).outcome == "timeout"
    assert len(silent.sent("up", "INVITE")) == 1  # timer A does not run on a stream


def test_garbage_is_counted_not_raised() -> None:
    pair, _ = answered_pair()
    pair.call.receive(b"\x00\xffnot sip", ("6.6.6.6", 1), pair.now)
    pair.server.receive(b"INVITE sip:x SIP/2.0\r\n\r\n", ("6.6.6.6", 1), pair.now)
    assert pair.call.garbage == 1 and pair.server.garbage == 1


def test_unknown_dialog_gets_481() -> None:
    pair, _ = answered_pair()
    ((_, bye_like),) = pair.sent("up", "ACK")
    assert isinstance(bye_like, Request)
    raw = bye_like.serialize().replace(b"ACK", b"BYE").replace(pair.call.call_id.encode(), b"x@y")
    pair.server.receive(raw, ("10.0.0.1", 5060), pair.now)
    out = pair.server.datagrams_to_send()
    assert out and out[0][0].startswith(b"SIP/2.0 481")
