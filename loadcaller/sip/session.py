"""Our side of an SDP session across offer/answer exchanges (RFC 3264 section 8).

The caller gives its offer as bytes; later the far end may send a new offer
(re-INVITE, UPDATE: hold, a moved RTP port). :class:`LocalSession` answers
those from what our offer said (address, port, codecs), keeping the ``o=``
user and session id and raising the version only when the body changes, as
RFC 3264 8 requires.
"""

from __future__ import annotations

from loadcaller.sip.errors import LocalProtocolError, ParseError
from loadcaller.sip.events import FailureOutcome
from loadcaller.sip.sdp import Negotiated, NoCommonCodec, Sdp, build_answer, negotiate

__all__ = ["LocalSession"]


class LocalSession:
    """The offer we made, and the answers we give to later offers."""

    def __init__(self, offer: bytes) -> None:
        try:
            sdp = Sdp.parse(offer)
        except ParseError as exc:
            raise LocalProtocolError(f"our SDP offer does not parse: {exc}") from exc
        audio = sdp.audio
        origin = sdp.origin.split()
        if audio is None or audio.address is None or len(origin) != 6:
            raise LocalProtocolError("our SDP offer needs o=, c= and an m=audio line")
        if not origin[1].isdigit() or not origin[2].isdigit():
            raise LocalProtocolError(f"our SDP o= line is malformed: {sdp.origin!r}")
        self.offer = offer
        self.ip = audio.address
        self.port = audio.port
        self.codecs = [
            c[0]
            for pt in audio.payload_types
            if (c := audio.codec(pt)) is not None and c[0].lower() != "telephone-event"
        ]
        self.ptime = audio.ptime or 20
        self._user, self._session_id = origin[0], int(origin[1])
        self.version = int(origin[2])
        self._last = _without_origin(offer)
        self.current = offer

    def answer(
        self, remote: Sdp, *, prefer: str | None = None
    ) -> tuple[bytes, Negotiated] | NoCommonCodec:
        """Answer ``remote``'s offer: same codec as before if offered, reflected direction."""
        for version in (self.version, self.version + 1):
            result = build_answer(
                remote,
                ip=self.ip,
                port=self.port,
                session_id=self._session_id,
                version=version,
                codecs=self.codecs,
                prefer=prefer,
                ptime=self.ptime,
                origin_user=self._user,
            )
            if isinstance(result, NoCommonCodec):
                return result
            body, media = result
            if _without_origin(body) == self._last or version > self.version:
                break
        self.version = version
        self._last = _without_origin(body)
        self.current = body
        return body, media

    def negotiate(self, body: bytes) -> Negotiated | tuple[FailureOutcome, str]:
        """Our offer against the peer's answer: the media, or why not
        (``"no_sdp"`` or ``"no_common_codec"`` and a reason)."""
        if not body:
            return "no_sdp", "no SDP in the answer"
        try:
            result = negotiate(self.codecs, Sdp.parse(body))
        except ParseError as exc:
            return "no_sdp", f"SDP we cannot read: {exc}"
        if isinstance(result, NoCommonCodec):
            if result.codecs:
                return "no_common_codec", result.reason
            # no audio m= line, its port 0, no c=: nothing to negotiate codecs on
            return "no_sdp", f"SDP without a usable audio stream: {result.reason}"
        return result


def _without_origin(body: bytes) -> bytes:
    return b"\n".join(line for line in body.splitlines() if not line.startswith(b"o="))
