"""Structured header values: URI, Via, name-addr, CSeq."""

from __future__ import annotations

import pytest

from loadcaller.sip.errors import ParseError
from loadcaller.sip.headers import CSeq, NameAddr, Uri, Via, split_list


def test_uri_parts() -> None:
    uri = Uri.parse("sips:alice:pw@[2001:db8::1]:5061;transport=tcp;lr?subject=x")
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == (
        "sips", "alice", "pw", "[2001:db8::1]", 5061
    )  # fmt: skip
    assert uri.transport == "tcp" and uri.param("lr") == "" and uri.headers == "subject=x"
    assert str(uri) == "sips:alice:pw@[2001:db8::1]:5061;transport=tcp;lr?subject=x"


def test_uri_defaults() -> None:
    uri = Uri.parse("sip:example.com")
    assert (uri.user, uri.port, uri.transport) == (None, None, "udp")
    assert Uri.parse("sips:b@example.com").transport == "tls"
    # A user part may carry ';' (RFC 4475 3.1.1.1 escapes and user params).
    assert Uri.parse("sip:alice;day=tue@example.com").user == "alice;day=tue"


@pytest.mark.parametrize(
    "text", ["http://x", "sip:", "sip:@host", "sip:a@host:99999", "sip:a@host:x", "sip:a@ho st"]
)
def test_bad_uris(text: str) -> None:
    with pytest.raises(ParseError):
        Uri.parse(text)


def test_via() -> None:
    via = Via.parse("SIP/2.0/udp 10.0.0.1:5060;branch=z9hG4bKx;rport=4000;received=1.2.3.4")
    assert (via.transport, via.host, via.port) == ("UDP", "10.0.0.1", 5060)
    assert (via.branch, via.rport, via.received) == ("z9hG4bKx", 4000, "1.2.3.4")
    assert str(via) == "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx;rport=4000;received=1.2.3.4"
    stamped = Via.parse("SIP/2.0/UDP h;rport").with_param("rport", "9")
    assert str(stamped) == "SIP/2.0/UDP h;rport=9"


def test_name_addr_forms() -> None:
    quoted = NameAddr.parse('"Bob \\"B\\"" <sip:bob@x>;tag=1')
    assert (quoted.display_name, quoted.uri, quoted.tag) == ('Bob "B"', "sip:bob@x", "1")
    assert NameAddr.parse(str(quoted)) == quoted
    tokens = NameAddr.parse("Bob  Smith <sip:bob@x;transport=tcp>")
    assert tokens.display_name == "Bob Smith" and tokens.uri == "sip:bob@x;transport=tcp"
    assert tokens.tag is None
    bare = NameAddr.parse("sip:bob@x;tag=abc")  # addr-spec: the params are the header's
    assert (bare.uri, bare.tag) == ("sip:bob@x", "abc")
    assert str(bare.with_tag("t2")) == "<sip:bob@x>;tag=t2"


@pytest.mark.parametrize("text", ['"open <sip:x>', "<sip:x", "<sip:x> junk", '"a" sip:x', ""])
def test_bad_name_addrs(text: str) -> None:
    with pytest.raises(ParseError):
        NameAddr.parse(text)


def test_cseq() -> None:
    assert CSeq.parse(" 4711   INVITE ") == CSeq(4711, "INVITE")
    assert str(CSeq(2, "BYE")) == "2 BYE"
    for bad in ("INVITE", "1", "-1 INVITE", "1 IN VITE", "99999999999 INVITE"):
        with pytest.raises(ParseError):
            CSeq.parse(bad)


def test_split_list_respects_quotes_and_angles() -> None:
    value = '"A, B" <sip:a@x;p=1,2>;q=1, <sip:b@y>, sip:c@z'
    assert split_list(value) == ['"A, B" <sip:a@x;p=1,2>;q=1', "<sip:b@y>", "sip:c@z"]
