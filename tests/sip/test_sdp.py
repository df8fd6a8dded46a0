"""SDP offer/answer for audio."""

from __future__ import annotations

import pytest

from loadcaller.sip.errors import LocalProtocolError, ParseError
from loadcaller.sip.sdp import Negotiated, NoCommonCodec, Sdp, build_answer, build_offer, negotiate
from loadcaller.sip.session import LocalSession

from .fixtures import SDP


def test_offer_layout() -> None:
    offer = build_offer(ip="192.0.2.1", port=40000, session_id=5, codecs=("PCMA", "PCMU"))
    assert offer == (
        b"v=0\r\no=loadcaller 5 1 IN IP4 192.0.2.1\r\ns=loadcaller\r\nc=IN IP4 192.0.2.1\r\n"
        b"t=0 0\r\nm=audio 40000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\n"
        b"a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
        b"a=ptime:20\r\na=sendrecv\r\n"
    )
    with pytest.raises(LocalProtocolError):
        build_offer(ip="x", port=1, session_id=1, codecs=("OPUS",))


def test_static_payload_types_need_no_rtpmap() -> None:
    sdp = Sdp.parse(SDP.encode())
    audio = sdp.audio
    assert audio is not None and audio.payload_types == [8, 0, 101]
    assert audio.codec(8) == ("PCMA", 8000) and audio.codec(101) == ("telephone-event", 8000)
    result = negotiate(["PCMU", "PCMA"], sdp)
    assert isinstance(result, Negotiated)
    assert (result.codec, result.payload_type) == ("PCMA", 8)  # the remote's first choice
    assert result.remote_rtp == ("192.0.2.10", 6000) and result.telephone_event == 101
    assert result.ptime == 20 and not result.on_hold


def test_aiortc_agrees_on_what_it_reads() -> None:
    from aiortc.sdp import SessionDescription

    ours = build_offer(ip="192.0.2.1", port=40000, session_id=5)
    theirs = SessionDescription.parse(ours.decode()).media[0]
    assert [c.payloadType for c in theirs.rtp.codecs] == [0, 8, 101]
    assert theirs.port == 40000 and theirs.direction == "sendrecv"


def test_no_common_codec() -> None:
    result = negotiate(["G722"], Sdp.parse(SDP.encode()))
    assert isinstance(result, NoCommonCodec) and "PCMA" in result.reason
    rejected = Sdp.parse(SDP.replace("m=audio 6000", "m=audio 0").encode())
    assert isinstance(negotiate(["PCMU"], rejected), NoCommonCodec)
    video_only = Sdp.parse(b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=video 5 RTP/AVP 96\r\n")
    assert negotiate(["PCMU"], video_only) == NoCommonCodec("no audio stream")


@pytest.mark.parametrize(
    ("edit", "reflected"),
    [("a=sendonly", b"a=recvonly"), ("a=inactive", b"a=inactive"),
     ("a=recvonly", b"a=sendonly"), ("", b"a=sendrecv")],
)  # fmt: skip
def test_answer_reflects_direction(edit: str, reflected: bytes) -> None:
    offer = Sdp.parse((SDP + (edit + "\n" if edit else "")).encode())
    result = build_answer(offer, ip="10.0.0.2", port=30000, session_id=9)
    assert not isinstance(result, NoCommonCodec)
    body, media = result
    assert reflected in body and b"m=audio 30000 RTP/AVP 8 101" in body
    assert media.on_hold == (edit in ("a=sendonly", "a=inactive"))


def test_old_style_hold_and_session_level_direction() -> None:
    held = Sdp.parse(SDP.replace("c=IN IP4 192.0.2.10", "c=IN IP4 0.0.0.0").encode())
    result = negotiate(["PCMU"], held)
    assert isinstance(result, Negotiated) and result.on_hold
    session_dir = SDP.replace("t=0 0\n", "t=0 0\na=sendonly\n")
    media = Sdp.parse(session_dir.encode()).audio
    assert media is not None and media.direction == "sendonly"


def test_prefer_keeps_the_current_codec() -> None:
    result = build_answer(Sdp.parse(SDP.encode()), ip="h", port=1, session_id=1, prefer="PCMU")
    assert not isinstance(result, NoCommonCodec) and result[1].codec == "PCMU"


def test_local_session_versions() -> None:
    session = LocalSession(build_offer(ip="10.0.0.1", port=4000, session_id=7))
    remote = Sdp.parse(SDP.encode())
    first = session.answer(remote)
    again = session.answer(remote)
    held = session.answer(Sdp.parse((SDP + "a=sendonly\n").encode()))
    assert not isinstance(first, NoCommonCodec) and not isinstance(again, NoCommonCodec)
    assert not isinstance(held, NoCommonCodec)
    assert b"o=loadcaller 7 2 " in first[0]  # differs from our offer: version + 1
    assert b"o=loadcaller 7 2 " in again[0]  # unchanged: same version
    assert b"o=loadcaller 7 3 " in held[0] and b"a=recvonly" in held[0]
    with pytest.raises(LocalProtocolError):
        LocalSession(b"not sdp")


@pytest.mark.parametrize(
    "body",
    [b"", b"x=1\r\n", b"v=0\r\nm=audio\r\n", b"v=0\r\nc=IN IP4\r\n",
     b"v=0\r\nm=audio x RTP/AVP 0\r\n", b"v=0\r\nm=audio 99999 RTP/AVP 0\r\n",
     b"v=0\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap:x PCMU/8000\r\n", b"\xff\xfe", b"garbage"],
)  # fmt: skip
def test_bad_sdp(body: bytes) -> None:
    with pytest.raises(ParseError):
        Sdp.parse(body)
