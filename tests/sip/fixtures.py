"""Wire fixtures: messages as peers really write them, in RFC 4475 torture style.

Each is bytes exactly as it would arrive (CRLF line ends unless noted).
"""

from __future__ import annotations


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


SDP = (
    "v=0\n"
    "o=user1 53655765 2353687637 IN IP4 192.0.2.10\n"
    "s=-\n"
    "c=IN IP4 192.0.2.10\n"
    "t=0 0\n"
    "m=audio 6000 RTP/AVP 8 0 101\n"
    "a=rtpmap:101 telephone-event/8000\n"
    "a=fmtp:101 0-15\n"
    "a=ptime:20\n"
)

# RFC 3261 24.2 (F1), as sent over UDP by a soft phone.
INVITE = crlf(
    "INVITE sip:bob@biloxi.example.com SIP/2.0\n"
    "Via: SIP/2.0/UDP client.atlanta.example.com:5060;branch=z9hG4bK74bf9;rport\n"
    "Max-Forwards: 70\n"
    'From: "Alice" <sip:alice@atlanta.example.com>;tag=9fxced76sl\n'
    "To: Bob <sip:bob@biloxi.example.com>\n"
    "Call-ID: 3848276298220188511@atlanta.example.com\n"
    "CSeq: 1 INVITE\n"
    "Contact: <sip:alice@client.atlanta.example.com;transport=udp>\n"
    "Content-Type: application/sdp\n"
    f"Content-Length: {len(crlf(SDP))}\n"
    "\n" + SDP
)

# RFC 4475 3.1.1.1 "wsinv" in spirit: compact forms, folding, odd spacing, lower case.
TORTURE = crlf(
    "INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0\n"
    "TO :\n"
    " sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n\n"
    'from   : "J Rosenberg \\\\\\"" <sip:jdrosen@example.com>\n'
    "  ;\n"
    "  tag = 98asjd8\n"
    "MaX-fOrWaRdS: 0068\n"
    "Call-ID: wsinv.ndaksdj@192.0.2.1\n"
    "Content-Length   : 0\n"
    "cseq: 0009\n"
    "  INVITE\n"
    "Via  : SIP  /   2.0\n"
    " /UDP\n"
    "    192.0.2.2;branch=390skdjuw\n"
    "s :\n"
    "NewFangledHeader:   newfangled value\n"
    " continued newfangled value\n"
    "UnknownHeaderWithUnusualValue: ;;,,;;,;\n"
    "Route:\n"
    " <sip:services.example.com;lr;unknownwith=value;unknown-no-value>\n"
    "v:  SIP  / 2.0  / TCP     spindle.example.com   ;\n"
    "  branch  =   z9hG4bK9ikj8  ,\n"
    " SIP  /    2.0   / UDP  192.168.255.111   ; branch=\n"
    " z9hG4bK30239\n"
    'm:"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam =\n'
    "      newvalue ;\n"
    "  secondparam ; q = 0.33\n"
    "\n"
)

# A 200 OK with Record-Route (two proxies), compact headers, LF-only line ends.
OK_COMPACT = (
    "SIP/2.0 200 OK\n"
    "v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKabc;rport=5062;received=198.51.100.7\n"
    "Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>\n"
    "f: <sip:alice@example.com>;tag=a1\n"
    "t: <sip:bob@example.com>;tag=b2\n"
    "i: call-1@10.0.0.1\n"
    "CSeq: 2 INVITE\n"
    "m: <sip:bob@192.0.2.4:5070>\n"
    "c: application/sdp\n"
    f"l: {len(crlf(SDP))}\n"
    "\n"
).encode() + crlf(SDP)

# SIPp's default uas answer to an OPTIONS-less INVITE: a 180 without body.
RINGING = crlf(
    "SIP/2.0 180 Ringing\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1-0;rport=5061;received=127.0.0.1\n"
    "From: sipp <sip:sipp@127.0.0.1:5061>;tag=1\n"
    "To: sut <sip:service@127.0.0.1:5060>;tag=2\n"
    "Call-ID: 1-12345@127.0.0.1\n"
    "CSeq: 1 INVITE\n"
    "Contact: <sip:127.0.0.1:5060;transport=UDP>\n"
    "Content-Length: 0\n"
    "\n"
)

# A 401 with two challenges (SHA-256 first, as RFC 8760 servers do).
UNAUTHORIZED = crlf(
    "SIP/2.0 401 Unauthorized\n"
    "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx1;rport=5060\n"
    "From: <sip:alice@example.com>;tag=a1\n"
    "To: <sip:bob@example.com>;tag=srv\n"
    "Call-ID: c2@10.0.0.1\n"
    "CSeq: 1 INVITE\n"
    'WWW-Authenticate: Digest realm="example.com", nonce="abc", algorithm=SHA-256, qop="auth"\n'
    'WWW-Authenticate: Digest realm="example.com", nonce="def", algorithm=MD5, qop="auth"\n'
    "Content-Length: 0\n"
    "\n"
)

ALL = {"invite": INVITE, "torture": TORTURE, "ok": OK_COMPACT, "ringing": RINGING,
       "unauthorized": UNAUTHORIZED}  # fmt: skip
