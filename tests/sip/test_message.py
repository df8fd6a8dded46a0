"""SIP message parsing and serialisation against wire fixtures."""

from __future__ import annotations

import pytest

from loadcaller.sip.errors import ParseError
from loadcaller.sip.message import Request, Response, StreamFramer, parse_message

from .fixtures import ALL, INVITE, OK_COMPACT, RINGING, SDP, TORTURE, UNAUTHORIZED, crlf


@pytest.mark.parametrize("name", sorted(ALL))
def test_round_trip(name: str) -> None:
    msg = parse_message(ALL[name])
    again = parse_message(msg.serialize())
    assert again == msg
    assert again.serialize() == msg.serialize()


def test_invite() -> None:
    msg = parse_message(INVITE)
    assert isinstance(msg, Request)
    assert (msg.method, msg.uri) == ("INVITE", "sip:bob@biloxi.example.com")
    assert msg.call_id == "3848276298220188511@atlanta.example.com"
    assert (msg.cseq.seq, msg.cseq.method) == (1, "INVITE")
    assert msg.from_.display_name == "Alice" and msg.from_.tag == "9fxced76sl"
    assert msg.to.tag is None and msg.to.display_name == "Bob"
    via = msg.top_via
    assert (via.transport, via.host, via.port, via.branch) == (
        "UDP", "client.atlanta.example.com", 5060, "z9hG4bK74bf9"
    )  # fmt: skip
    assert via.rport is None and ("rport", None) in via.params
    assert msg.body == crlf(SDP)
    assert msg.serialize() == INVITE  # canonical input comes back byte for byte


def test_torture_message() -> None:
    msg = parse_message(TORTURE)
    assert isinstance(msg, Request)
    assert msg.uri == "sip:vivekg@chair-dnrc.example.com;unknownparam"
    assert msg.to.tag == "1918181833n" and msg.to.uri == "sip:vivekg@chair-dnrc.example.com"
    assert msg.from_.tag == "98asjd8" and msg.from_.display_name == 'J Rosenberg \\"'
    assert msg.header("max-forwards") == "0068"
    assert (msg.cseq.seq, msg.cseq.method) == (9, "INVITE")
    vias = msg.vias
    assert [(v.transport, v.host, v.branch) for v in vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert msg.header("Subject") == ""
    assert msg.header("NewFangledHeader") == "newfangled value continued newfangled value"
    contact = msg.header_list("Contact")
    assert len(contact) == 1 and "q = 0.33" in contact[0]
    assert msg.header_list("Route") == [
        "<sip:services.example.com;lr;unknownwith=value;unknown-no-value>"
    ]
    assert msg.body == b""


def test_compact_lf_only_response() -> None:
    msg = parse_message(OK_COMPACT)
    assert isinstance(msg, Response) and (msg.status, msg.reason) == (200, "OK")
    assert msg.header("Contact") == "<sip:bob@192.0.2.4:5070>"
    assert msg.header("content-type") == "application/sdp"
    via = msg.top_via
    assert (via.rport, via.received) == (5062, "198.51.100.7")
    assert msg.header_list("Record-Route") == [
        "<sip:p2.example.com;lr>",
        "<sip:p1.example.com;lr>",
    ]
    assert msg.body == crlf(SDP)
    assert b"\r\nContact: <sip:bob@192.0.2.4:5070>\r\n" in msg.serialize()


def test_multiple_challenges_are_separate_headers() -> None:
    msg = parse_message(UNAUTHORIZED)
    assert len(msg.header_list("WWW-Authenticate")) == 2  # commas inside are not a list


def test_content_length_bounds_the_body() -> None:
    assert parse_message(INVITE + b"trailing junk").body == crlf(SDP)
    with pytest.raises(ParseError, match="shorter"):
        parse_message(INVITE[:-5])


def test_missing_content_length_takes_the_datagram() -> None:
    raw = RINGING.replace(b"Content-Length: 0\r\n", b"") + b"xyz"
    assert parse_message(raw).body == b"xyz"


def test_serialize_writes_the_true_length() -> None:
    msg = parse_message(RINGING)
    bigger = Response(status=183, reason="Session Progress", headers=msg.headers, body=b"v=0\r\n")
    assert b"Content-Length: 5\r\n" in bigger.serialize()
    assert bigger.serialize().count(b"Content-Length") == 1


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\r\n\r\n",
        b"INVITE sip:x SIP/2.0\r\n",  # no end of headers
        b"INVITE sip:x SIP/3.0\r\n\r\n",
        b"INVITE  SIP/2.0\r\n\r\n",
        b"SIP/2.0 2000 OK\r\n\r\n",
        b"SIP/2.0 099 Odd\r\n\r\n",
        RINGING.replace(b"Call-ID", b"Call-Id-Missing"),
        RINGING.replace(b"CSeq: 1 INVITE", b"CSeq: one INVITE"),
        RINGING.replace(b"Content-Length: 0", b"Content-Length: -1"),
        RINGING.replace(b"Content-Length: 0", b"Content-Length: 0\r\nl: 3"),
        RINGING.replace(b"Via: SIP/2.0/UDP", b"Via: HTTP/1.1"),
        INVITE.replace(b"CSeq: 1 INVITE", b"CSeq: 1 BYE"),
        b" continuation first\r\nVia: x\r\n\r\n",
        INVITE.replace(b"Max-Forwards: 70", b"Max Forwards: 70"),
    ],
)
def test_invalid_messages(raw: bytes) -> None:
    with pytest.raises(ParseError):
        parse_message(raw)


def test_stream_framer_cuts_by_content_length() -> None:
    stream = b"\r\n\r\n" + INVITE + RINGING + b"\r\n" + OK_COMPACT
    framer = StreamFramer()
    got = []
    for i in range(0, len(stream), 7):  # dribbled in 7-byte chunks
        got += framer.feed(stream[i : i + 7])
    assert [type(m).__name__ for m in got] == ["Request", "Response", "Response"]
    assert got[0] == parse_message(INVITE) and got[2].body == crlf(SDP)
    assert framer.buffered == 0


def test_stream_framer_pipelined_in_one_chunk() -> None:
    framer = StreamFramer()
    assert len(framer.feed(INVITE + INVITE + INVITE[:30])) == 2
    assert framer.buffered == 30


def test_stream_framer_limits() -> None:
    with pytest.raises(ParseError):
        StreamFramer().feed(b"X" * 70000)
    with pytest.raises(ParseError):
        StreamFramer(max_message=100).feed(INVITE)


def test_header_lines_are_bounded() -> None:
    head, sep, body = INVITE.partition(b"\r\n\r\n")
    many = head + b"\r\nX-Pad: 1" * 6000 + sep + body  # a 64 KB datagram of one-line headers
    with pytest.raises(ParseError, match="more than 256 header lines"):
        parse_message(many)
    some = head + b"\r\nX-Pad: 1" * 200 + sep + body
    assert len(parse_message(some).header_list("X-Pad")) == 200
