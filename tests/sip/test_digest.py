"""Digest authentication: RFC 2617 vectors, quoting, verification."""

from __future__ import annotations

import pytest

from loadcaller.sip.digest import Challenge, authorization, challenge, parse_auth, verify
from loadcaller.sip.errors import ParseError, RemoteProtocolError

RFC2617 = (
    'Digest realm="testrealm@host.com", qop="auth,auth-int", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)


def test_rfc2617_example() -> None:
    chal = Challenge.parse(RFC2617)
    assert chal.qop == ("auth", "auth-int") and chal.algorithm == "MD5"
    value = authorization(chal, method="GET", uri="/dir/index.html", username="Mufasa",
                          password="Circle Of Life", cnonce="0a4f113b")  # fmt: skip
    _, params = parse_auth(value)
    assert params["response"] == "6629fae49393a05397450978507c4ef1"
    assert params["nc"] == "00000001" and params["qop"] == "auth"
    assert params["opaque"] == "5ccc069c403ebaf9f0171e9517f40e41"


def test_quote_rules() -> None:
    chal = Challenge.parse(RFC2617)
    value = authorization(chal, method="INVITE", uri="sip:bob@x", username="u", password="p",
                          cnonce="c")  # fmt: skip
    assert value.startswith('Digest username="u", realm="testrealm@host.com", ')
    assert 'uri="sip:bob@x"' in value and 'cnonce="c"' in value
    assert "algorithm=MD5" in value and "qop=auth" in value and "nc=00000001" in value
    assert 'qop="' not in value and 'nc="' not in value and 'algorithm="' not in value


def test_without_qop_rfc2069() -> None:
    chal = Challenge.parse('Digest realm="r", nonce="n"')
    value = authorization(chal, method="INVITE", uri="sip:x", username="u", password="p",
                          cnonce="ignored")  # fmt: skip
    assert "qop" not in value and "cnonce" not in value
    # MD5(MD5(u:r:p):n:MD5(INVITE:sip:x)), computed by hand.
    import hashlib

    def h(s: str) -> str:
        return hashlib.md5(s.encode()).hexdigest()

    expected = h(f"{h('u:r:p')}:n:{h('INVITE:sip:x')}")
    assert parse_auth(value)[1]["response"] == expected


def test_server_side_round_trip() -> None:
    chal = Challenge.parse(challenge("lab", "n0nce", opaque="op"))
    for password, ok in (("s3cret", True), ("wrong", False)):
        value = authorization(chal, method="INVITE", uri="sip:agent@lab", username="alice",
                              password=password, cnonce="cn", nc=2)  # fmt: skip
        got = verify(value, method="INVITE", username="alice", password="s3cret", realm="lab")
        assert got == ("n0nce" if ok else None)
    assert verify("garbage", method="INVITE", username="a", password="b", realm="c") is None
    assert verify('Digest username="a"', method="X", username="a", password="b", realm="c") is None


def test_sha256_and_unsupported() -> None:
    chal = Challenge.parse('Digest realm="r", nonce="n", algorithm=SHA-256, qop="auth"')
    value = authorization(chal, method="INVITE", uri="sip:x", username="u", password="p",
                          cnonce="c")  # fmt: skip
    assert len(parse_auth(value)[1]["response"]) == 64
    assert verify(value, method="INVITE", username="u", password="p", realm="r") == "n"
    odd = Challenge.parse('Digest realm="r", nonce="n", algorithm=SHA-512-256')
    assert not odd.supported
    with pytest.raises(RemoteProtocolError):
        authorization(odd, method="INVITE", uri="sip:x", username="u", password="p", cnonce="c")
    with pytest.raises(RemoteProtocolError):
        Challenge.parse('Basic realm="r"')
    with pytest.raises(ParseError):
        Challenge.parse('Digest realm="r"')
    with pytest.raises(ParseError):
        parse_auth('Digest realm="unterminated')
