"""SDP offer/answer for one audio stream (RFC 4566, RFC 3264, RFC 3551).

Why not ``aiortc.sdp.SessionDescription.parse``: it reads a plain RTP/AVP offer,
but it drops static payload types that have no ``a=rtpmap`` line
(``m=audio 4000 RTP/AVP 0 8`` yields no codec at all, and RFC 3551 makes those
lines optional), it puts a session-level ``c=`` only on the session, and on a
malformed body it raises whatever Python raises (IndexError, ValueError). A
load tester reads SDP from the system under test, so this is a tight parser of
the few lines that matter, raising only :class:`ParseError`.

Negotiation picks the first codec of the remote list that we support (in an
answer that is the answerer's choice; when we answer, the offerer's preference),
the remote RTP address and port, the telephone-event payload type, and the
direction. Hold (``a=sendonly``, ``a=inactive`` or the RFC 2543 ``c=0.0.0.0``)
is reported as ``on_hold``; an answer reflects the offered direction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from loadcaller.sip.errors import LocalProtocolError, ParseError

__all__ = [
    "STATIC_PAYLOAD_TYPES",
    "Media",
    "Negotiated",
    "NoCommonCodec",
    "Sdp",
    "build_answer",
    "build_offer",
    "negotiate",
]

# RFC 3551 table 4, the audio types a voice peer may leave without rtpmap.
STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int]] = {
    0: ("PCMU", 8000), 3: ("GSM", 8000), 4: ("G723", 8000), 8: ("PCMA", 8000),
    9: ("G722", 8000), 18: ("G729", 8000),
}  # fmt: skip
_BY_NAME = {name: pt for pt, (name, _) in STATIC_PAYLOAD_TYPES.items()}
_DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_REFLECT = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly",
            "inactive": "inactive"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Media:
    """One ``m=`` section."""

    kind: str
    port: int
    proto: str
    formats: tuple[str, ...]
    address: str | None  # its c= (or the session's), None if neither
    rtpmap: tuple[tuple[int, str, int], ...]  # (payload type, encoding, clock rate)
    direction: str
    ptime: int | None

    def codec(self, pt: int) -> tuple[str, int] | None:
        """(encoding name, clock rate) of a payload type: rtpmap first, then RFC 3551."""
        for p, name, rate in self.rtpmap:
            if p == pt:
                return name, rate
        return STATIC_PAYLOAD_TYPES.get(pt)

    @property
    def payload_types(self) -> list[int]:
        return [int(f) for f in self.formats if f.isdigit() and f.isascii() and int(f) < 128]


@dataclass(frozen=True, slots=True)
class Sdp:
    """A parsed session description: the origin line and the media sections."""

    origin: str
    media: tuple[Media, ...]

    @classmethod
    def parse(cls, body: bytes) -> Sdp:
        """Parse a session description; raises only :class:`ParseError`."""
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError("SDP is not UTF-8") from exc
        origin = ""
        session = _Section("", 0, "", [])
        sections: list[_Section] = []
        saw_version = False
        for raw in text.splitlines():
            line = raw.strip()
            if not line:
                continue
            if len(line) < 2 or line[1] != "=":
                raise ParseError(f"bad SDP line {line[:40]!r}")
            kind, value = line[0], line[2:].strip()
            target = sections[-1] if sections else session
            if kind == "v":
                saw_version = True
            elif kind == "o" and not sections:
                origin = value
            elif kind == "c":
                target.address = _connection(value)
            elif kind == "m":
                sections.append(_media_line(value))
            elif kind == "a":
                name, _, arg = value.partition(":")
                if name in _DIRECTIONS:
                    target.direction = name
                elif name == "rtpmap":
                    target.rtpmap.append(_rtpmap(arg))
                elif name == "ptime":
                    target.ptime = _int(arg.strip(), "ptime")
        if not saw_version:
            raise ParseError("SDP without v= line")
        media = tuple(
            Media(
                kind=s.kind,
                port=s.port,
                proto=s.proto,
                formats=tuple(s.formats),
                address=s.address or session.address,
                rtpmap=tuple(s.rtpmap),
                direction=s.direction or session.direction or "sendrecv",
                ptime=s.ptime,
            )
            for s in sections
        )
        return cls(origin, media)

    @property
    def audio(self) -> Media | None:
        """The first audio section with a non-zero port, or the first audio one."""
        audio = [m for m in self.media if m.kind == "audio"]
        live = [m for m in audio if m.port]
        candidates = live or audio
        return candidates[0] if candidates else None


def _int(text: str, what: str) -> int:
    if not text.isdigit() or not text.isascii() or len(text) > 9:
        raise ParseError(f"bad {what} {text!r}")
    return int(text)


def _connection(value: str) -> str:
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise ParseError(f"bad c= line {value!r}")
    return parts[2].split("/")[0]  # drop a multicast TTL


@dataclass(slots=True)
class _Section:
    """A media section (or the session level) while it is being read."""

    kind: str
    port: int
    proto: str
    formats: list[str]
    address: str | None = None
    direction: str | None = None
    ptime: int | None = None
    rtpmap: list[tuple[int, str, int]] = field(default_factory=list)


def _media_line(value: str) -> _Section:
    parts = value.split()
    if len(parts) < 3:
        raise ParseError(f"bad m= line {value!r}")
    port = _int(parts[1].split("/")[0], "media port")
    if port > 65535:
        raise ParseError(f"media port out of range {value!r}")
    return _Section(parts[0], port, parts[2], parts[3:])


def _rtpmap(arg: str) -> tuple[int, str, int]:
    pt_text, _, encoding = arg.strip().partition(" ")
    name, _, rest = encoding.strip().partition("/")
    rate = rest.partition("/")[0]
    if not name:
        raise ParseError(f"bad rtpmap {arg!r}")
    return _int(pt_text, "payload type"), name, _int(rate, "clock rate")


@dataclass(frozen=True, slots=True)
class Negotiated:
    """What both sides agreed: the codec, where to send RTP, DTMF, direction."""

    codec: str  # "PCMU"
    payload_type: int
    clock_rate: int
    remote_rtp: tuple[str, int]
    telephone_event: int | None  # payload type of RFC 4733 events, if both support it
    direction: str  # the remote side's direction attribute
    ptime: int | None

    @property
    def on_hold(self) -> bool:
        """The remote side put us on hold (or offered no media address)."""
        return self.direction in ("sendonly", "inactive") or self.remote_rtp[0] in (
            "0.0.0.0",
            "::",
        )


@dataclass(frozen=True, slots=True)
class NoCommonCodec:
    """Negotiation failed; ``reason`` says why. ``codecs``: an audio stream was there,
    and its codecs are what failed (else the stream itself was missing or rejected)."""

    reason: str
    codecs: bool = False


def negotiate(
    local_codecs: Sequence[str], remote: Sdp, prefer: str | None = None
) -> Negotiated | NoCommonCodec:
    """Pick the first remote audio codec we also support (``prefer`` if offered)."""
    audio = remote.audio
    if audio is None:
        return NoCommonCodec("no audio stream")
    if audio.port == 0:
        return NoCommonCodec("audio stream rejected (port 0)")
    if audio.address is None:
        return NoCommonCodec("no c= address")
    wanted = {c.upper() for c in local_codecs}
    common: list[tuple[int, str, int]] = []
    dtmf: int | None = None
    for pt in audio.payload_types:
        codec = audio.codec(pt)
        if codec is None:
            continue
        name, rate = codec
        if name.lower() == "telephone-event" and rate == 8000 and dtmf is None:
            dtmf = pt
        elif name.upper() in wanted:
            common.append((pt, name.upper(), rate))
    preferred = [c for c in common if prefer and c[1] == prefer.upper()]
    if not common:
        offered = [audio.codec(pt) for pt in audio.payload_types]
        names = [c[0] for c in offered if c] or list(audio.formats)
        return NoCommonCodec(
            f"no common codec: remote offers {names}, we support {list(local_codecs)}",
            codecs=True,
        )
    chosen = (preferred or common)[0]
    return Negotiated(
        codec=chosen[1], payload_type=chosen[0], clock_rate=chosen[2],
        remote_rtp=(audio.address, audio.port), telephone_event=dtmf,
        direction=audio.direction, ptime=audio.ptime,
    )  # fmt: skip


def _session(ip: str, session_id: int, version: int, user: str) -> list[str]:
    family = "IP6" if ":" in ip else "IP4"
    return [
        "v=0",
        f"o={user} {session_id} {version} IN {family} {ip}",
        "s=loadcaller",
        f"c=IN {family} {ip}",
        "t=0 0",
    ]


def _audio(port: int, codecs: list[tuple[int, str, int]], dtmf: int | None, ptime: int,
           direction: str) -> list[str]:  # fmt: skip
    pts = [pt for pt, _, _ in codecs] + ([dtmf] if dtmf is not None else [])
    lines = [f"m=audio {port} RTP/AVP {' '.join(map(str, pts))}"]
    lines += [f"a=rtpmap:{pt} {name}/{rate}" for pt, name, rate in codecs]
    if dtmf is not None:
        lines += [f"a=rtpmap:{dtmf} telephone-event/8000", f"a=fmtp:{dtmf} 0-16"]
    return [*lines, f"a=ptime:{ptime}", f"a={direction}"]


def _encode(lines: list[str]) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode()


def build_offer(
    *,
    ip: str,
    port: int,
    session_id: int,
    version: int = 1,
    codecs: Sequence[str] = ("PCMU", "PCMA"),
    telephone_event: int | None = 101,
    ptime: int = 20,
    direction: str = "sendrecv",
    origin_user: str = "loadcaller",
) -> bytes:
    """An audio offer: static G.711 types in preference order, then telephone-event."""
    if direction not in _DIRECTIONS:
        raise LocalProtocolError(f"unknown direction {direction!r}")
    table: list[tuple[int, str, int]] = []
    for name in codecs:
        if name.upper() not in _BY_NAME:
            raise LocalProtocolError(f"no static payload type for codec {name!r}")
        pt = _BY_NAME[name.upper()]
        table.append((pt, *STATIC_PAYLOAD_TYPES[pt]))
    return _encode(
        _session(ip, session_id, version, origin_user)
        + _audio(port, table, telephone_event, ptime, direction)
    )


def build_answer(
    offer: Sdp,
    *,
    ip: str,
    port: int,
    session_id: int,
    version: int = 1,
    codecs: Sequence[str] = ("PCMU", "PCMA"),
    prefer: str | None = None,
    ptime: int = 20,
    direction: str | None = None,
    origin_user: str = "loadcaller",
) -> tuple[bytes, Negotiated] | NoCommonCodec:
    """Answer an offer with one codec (``prefer`` first if offered) and its DTMF type.

    The direction reflects the offer's (sendonly -> recvonly, inactive stays)
    unless ``direction`` is given.
    """
    result = negotiate(codecs, offer, prefer)
    if isinstance(result, NoCommonCodec):
        return result
    own = direction or _REFLECT.get(result.direction, "sendrecv")
    table = [(result.payload_type, result.codec, result.clock_rate)]
    body = _encode(
        _session(ip, session_id, version, origin_user)
        + _audio(port, table, result.telephone_event, ptime, own)
    )
    return body, result
