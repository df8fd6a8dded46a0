"""The transaction tables alone: RFC 3261 timer instants on a fake clock."""

from __future__ import annotations

import pytest

from loadcaller.sip.message import Request, Response, parse_message
from loadcaller.sip.transaction import T1, State, Transactions

from .fixtures import INVITE

PEER = ("192.0.2.9", 5060)


def drive(txns: Transactions, until: float, tick: float = 0.001) -> list[float]:
    """Run timers to ``until``; the instants something was sent."""
    sent: list[float] = []
    outbox = txns._outbox
    now = 0.0
    while now < until:
        now = round(now + tick, 6)
        t = txns.get_timer()
        if t is not None and t <= now:
            txns.handle_timer(now)
        if outbox:
            sent += [now] * len(outbox)
            outbox.clear()
    return sent


def request(method: str) -> Request:
    invite = parse_message(INVITE)
    assert isinstance(invite, Request)
    headers = tuple((k, f"1 {method}") if k == "CSeq" else (k, v) for k, v in invite.headers)
    return Request(method=method, uri=invite.uri, headers=headers)


def response_to(req: Request, status: int) -> Response:
    keep = ("Via", "From", "To", "Call-ID", "CSeq")
    headers = tuple((k, v) for k, v in req.headers if k in keep)
    return Response(status=status, reason="x", headers=headers)


def test_invite_client_timer_a_and_b() -> None:
    outbox: list[tuple[bytes, tuple[str, int]]] = []
    txns = Transactions(outbox, reliable=False)
    txn = txns.client(request("INVITE"), PEER, 0.0)
    outbox.clear()
    sent = drive(txns, 40)
    assert sent == pytest.approx([0.5, 1.5, 3.5, 7.5, 15.5, 31.5], abs=0.002)
    assert txn.state is State.TERMINATED and len(txns) == 0


def test_non_invite_client_timer_e_caps_at_t2_and_t2_in_proceeding() -> None:
    outbox: list[tuple[bytes, tuple[str, int]]] = []
    txns = Transactions(outbox, reliable=False)
    req = request("BYE")
    txn = txns.client(req, PEER, 0.0)
    outbox.clear()
    sent = drive(txns, 20)
    assert sent == pytest.approx([0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5], abs=0.002)
    # A 1xx moves it to Proceeding: it keeps E (now at T2) and F.
    txns2 = Transactions(outbox, reliable=False)
    txn = txns2.client(req, PEER, 0.0)
    assert txn.receive_response(response_to(req, 100), 0.1)
    assert txn.state is State.PROCEEDING
    outbox.clear()
    assert drive(txns2, 9) == pytest.approx([0.5, 4.5, 8.5], abs=0.002)


def test_non_2xx_is_acked_in_the_transaction_and_absorbed() -> None:
    outbox: list[tuple[bytes, tuple[str, int]]] = []
    txns = Transactions(outbox, reliable=False)
    req = request("INVITE")
    txn = txns.client(req, PEER, 0.0)
    outbox.clear()
    busy = response_to(req, 486)
    assert txn.receive_response(busy, 0.1) is True
    assert not txn.receive_response(busy, 0.2)  # a retransmission: ACK again, not handed up
    acks = [parse_message(data) for data, _ in outbox]
    assert [a.method for a in acks if isinstance(a, Request)] == ["ACK", "ACK"]
    assert acks[0].top_via.branch == req.top_via.branch
    assert txn.state is State.COMPLETED
    assert txns.get_timer() == pytest.approx(0.1 + 32)  # timer D


def test_reliable_transport_no_retransmit_zero_waits() -> None:
    outbox: list[tuple[bytes, tuple[str, int]]] = []
    txns = Transactions(outbox, reliable=True)
    req = request("BYE")
    txn = txns.client(req, PEER, 0.0)
    assert txns.get_timer() == pytest.approx(64 * T1)  # F only
    txn.receive_response(response_to(req, 200), 0.1)
    assert txns.get_timer() == pytest.approx(0.1)  # K = 0
    txns.handle_timer(0.1)
    assert len(txns) == 0


def test_server_invite_retransmits_final_until_ack() -> None:
    outbox: list[tuple[bytes, tuple[str, int]]] = []
    txns = Transactions(outbox, reliable=False)
    req = request("INVITE")
    txn = txns.server(req, PEER, 0.0)
    txn.send_response(response_to(req, 100), 0.0)
    txn.send_response(response_to(req, 486), 0.0)
    assert txns.for_request(req) is txn
    outbox.clear()
    sent = drive(txns, 4)
    assert sent == pytest.approx([0.5, 1.5, 3.5], abs=0.002)  # timer G
    ack = Request(method="ACK", uri=req.uri, headers=tuple(
        (k, "1 ACK") if k == "CSeq" else (k, v) for k, v in req.headers))  # fmt: skip
    assert txns.for_request(ack) is txn
    txn.receive_request(ack, 4.0)
    assert txn.state is State.CONFIRMED
    assert txns.get_timer() == pytest.approx(9.0)  # timer I = T4


def test_server_non_invite_answers_retransmissions() -> None:
    outbox: list[tuple[bytes, tuple[str, int]]] = []
    txns = Transactions(outbox, reliable=False)
    req = request("OPTIONS")
    txn = txns.server(req, PEER, 0.0)
    assert not txn.receive_request(req, 0.1)  # Trying: absorbed, nothing to resend
    txn.send_response(response_to(req, 200), 0.2)
    txn.receive_request(req, 0.3)
    assert len(outbox) == 2 and outbox[0] == outbox[1]
    assert txns.get_timer() == pytest.approx(0.2 + 64 * T1)  # timer J
