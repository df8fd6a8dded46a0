"""SIP messages (RFC 3261 section 7): parse, serialise, frame a stream.

A :class:`Request` or :class:`Response` is a frozen dataclass holding the start
line, the headers as ordered ``(name, value)`` pairs and the body bytes. Parsing
normalises what RFC 3261 lets a peer vary and keeps everything else verbatim:

- header names are matched case-insensitively and stored in canonical spelling;
  compact forms (``v``, ``f``, ``t``, ``i``, ``m``, ``l``, ``c``, ``k``, ...) are
  expanded, so ``msg.header("Via")`` finds ``v:`` too;
- folded header lines (a line starting with a space or tab) are joined;
- a header may repeat or carry a comma-joined list; :meth:`Request.header_list`
  returns the values in order either way (Via, Route, Record-Route, Contact...);
- ``Content-Length`` bounds the body (extra datagram bytes are dropped, a
  shorter body is an error, RFC 3261 18.3); :meth:`serialize` always writes the
  true length.

The head is decoded as UTF-8 with ``surrogateescape``, so any byte survives a
parse/serialise round trip. Only :class:`ParseError` escapes :func:`parse_message`.

:class:`StreamFramer` cuts a TCP/TLS byte stream into messages by
Content-Length, skipping the CRLF keep-alives of RFC 5626.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from loadcaller.sip.errors import ParseError
from loadcaller.sip.headers import CSeq, NameAddr, Via, is_token, split_list

__all__ = ["Message", "Request", "Response", "StreamFramer", "canonical_name", "parse_message"]

Headers = tuple[tuple[str, str], ...]

_COMPACT = {
    "a": "Accept-Contact", "b": "Referred-By", "c": "Content-Type", "d": "Request-Disposition",
    "e": "Content-Encoding", "f": "From", "i": "Call-ID", "j": "Reject-Contact",
    "k": "Supported", "l": "Content-Length", "m": "Contact", "n": "Identity-Info",
    "o": "Event", "r": "Refer-To", "s": "Subject", "t": "To", "u": "Allow-Events",
    "v": "Via", "x": "Session-Expires", "y": "Identity",
}  # fmt: skip
_CANONICAL = {
    name.lower(): name
    for name in (
        *_COMPACT.values(), "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info",
        "Allow", "Authentication-Info", "Authorization", "Call-Info", "CSeq", "Date",
        "Error-Info", "Expires", "In-Reply-To", "Max-Forwards", "Min-Expires", "Min-SE",
        "MIME-Version", "Organization", "P-Asserted-Identity", "Priority",
        "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "RAck", "Reason",
        "Record-Route", "Reply-To", "Require", "Retry-After", "Route", "RSeq", "Server",
        "Timestamp", "Unsupported", "User-Agent", "Warning", "WWW-Authenticate",
        "Content-Disposition", "Content-Language", "Privacy", "Path", "Service-Route",
    )
}  # fmt: skip
# Headers whose comma-joined values are separate entries (RFC 3261 7.3.1).
_LISTS = frozenset(
    n.lower()
    for n in ("Via", "Route", "Record-Route", "Contact", "Allow", "Supported", "Require",
              "Proxy-Require", "Unsupported", "Accept", "Accept-Encoding", "Path")
)  # fmt: skip
_REQUIRED = ("Via", "From", "To", "Call-ID", "CSeq")
_LINE_SPLIT = re.compile(rb"\r?\n")
_MAX_HEAD = 65536
# Header lines a message may have. Real ones have a few dozen; a 64 KB datagram of
# 6,000 one-line headers took 25 ms to parse and check (a stalled event loop: a missed
# 20 ms tick for every call of the process, per datagram of a flood). Refused at 256
# before any line is read, it costs what a short message does.
MAX_HEADER_LINES = 256


def canonical_name(name: str) -> str:
    """``v`` -> ``Via``, ``call-id`` -> ``Call-ID``; unknown names keep their spelling."""
    lower = name.lower()
    if lower in _COMPACT:
        return _COMPACT[lower]
    return _CANONICAL.get(lower, name)


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """What requests and responses share: headers and body."""

    headers: Headers = ()
    body: bytes = field(default=b"", repr=False)

    def header(self, name: str) -> str | None:
        """The first value of a header (comma lists not split), or None."""
        lname = canonical_name(name).lower()
        for k, v in self.headers:
            if k.lower() == lname:
                return v
        return None

    def header_list(self, name: str) -> list[str]:
        """Every value of a header in order, comma-joined lists split."""
        lname = canonical_name(name).lower()
        values = [v for k, v in self.headers if k.lower() == lname]
        if lname in _LISTS:
            return [item for v in values for item in split_list(v)]
        return values

    def _start_line(self) -> str:
        raise NotImplementedError

    def serialize(self) -> bytes:
        """Wire bytes; Content-Length is (re)written to the true body length."""
        lines = [self._start_line()]
        has_length = False
        for name, value in self.headers:
            if name == "Content-Length":
                if has_length:
                    continue
                value, has_length = str(len(self.body)), True
            lines.append(f"{name}: {value}")
        if not has_length:
            lines.append(f"Content-Length: {len(self.body)}")
        head = "\r\n".join(lines) + "\r\n\r\n"
        return head.encode("utf-8", "surrogateescape") + self.body

    # The five headers every message has (checked by the parser).
    @property
    def call_id(self) -> str:
        return self._required("Call-ID")

    @property
    def cseq(self) -> CSeq:
        return CSeq.parse(self._required("CSeq"))

    @property
    def vias(self) -> list[Via]:
        return [Via.parse(v) for v in self.header_list("Via")]

    @property
    def top_via(self) -> Via:
        vias = self.header_list("Via")
        if not vias:
            raise ParseError("no Via")
        return Via.parse(vias[0])

    @property
    def from_(self) -> NameAddr:
        return NameAddr.parse(self._required("From"))

    @property
    def to(self) -> NameAddr:
        return NameAddr.parse(self._required("To"))

    def _required(self, name: str) -> str:
        value = self.header(name)
        if value is None:
            raise ParseError(f"no {name} header")
        return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Request(Message):
    """``INVITE sip:bob@example.com SIP/2.0`` and what follows."""

    method: str = ""
    uri: str = ""

    def _start_line(self) -> str:
        return f"{self.method} {self.uri} SIP/2.0"


@dataclass(frozen=True, slots=True, kw_only=True)
class Response(Message):
    """``SIP/2.0 200 OK`` and what follows."""

    status: int = 0
    reason: str = ""

    def _start_line(self) -> str:
        return f"SIP/2.0 {self.status} {self.reason}"


def _parse_head(head: bytes) -> tuple[str, Headers]:
    lines = _LINE_SPLIT.split(head, MAX_HEADER_LINES + 1)
    if len(lines) > MAX_HEADER_LINES + 1:
        raise ParseError(f"more than {MAX_HEADER_LINES} header lines")
    start = lines[0].decode("utf-8", "surrogateescape")
    headers: list[list[str]] = []
    for raw in lines[1:]:
        line = raw.decode("utf-8", "surrogateescape")
        if line[:1] in (" ", "\t"):
            if not headers:
                raise ParseError("continuation line before any header")
            headers[-1][1] = f"{headers[-1][1]} {line.strip()}".strip()
            continue
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not is_token(name):
            raise ParseError(f"bad header line {line[:60]!r}")
        headers.append([canonical_name(name), value.strip()])
    return start, tuple((k, v) for k, v in headers)


def _content_length(headers: Headers) -> int | None:
    values = {v.strip() for k, v in headers if k == "Content-Length"}
    if not values:
        return None
    if len(values) > 1:
        raise ParseError(f"conflicting Content-Length {sorted(values)}")
    (value,) = values
    if not value.isdigit() or not value.isascii() or len(value) > 9:
        raise ParseError(f"bad Content-Length {value!r}")
    return int(value)


def _build(start: str, headers: Headers, body: bytes) -> Request | Response:
    msg: Request | Response
    if start[:4].upper() == "SIP/":
        parts = start.split(" ", 2)
        if len(parts) < 2 or parts[0].upper() != "SIP/2.0":
            raise ParseError(f"bad status line {start[:60]!r}")
        code = parts[1]
        if len(code) != 3 or not code.isdigit() or not code.isascii() or code[0] == "0":
            raise ParseError(f"bad status code {code!r}")
        reason = parts[2].strip() if len(parts) > 2 else ""
        msg = Response(headers=headers, body=body, status=int(code), reason=reason)
    else:
        parts = start.split()
        if len(parts) != 3 or parts[2].upper() != "SIP/2.0" or not is_token(parts[0]):
            raise ParseError(f"bad request line {start[:60]!r}")
        msg = Request(headers=headers, body=body, method=parts[0], uri=parts[1])
    for name in _REQUIRED:
        if msg.header(name) is None:
            raise ParseError(f"no {name} header")
    cseq = msg.cseq
    msg.top_via  # noqa: B018 - validates the Via the transaction layer keys on
    msg.from_  # noqa: B018
    msg.to  # noqa: B018
    if isinstance(msg, Request) and cseq.method != msg.method:
        raise ParseError(f"CSeq method {cseq.method} does not match {msg.method}")
    return msg


_BLANK = re.compile(rb"\r?\n\r?\n")


def _head_end(data: bytes | bytearray) -> tuple[int, int] | None:
    """(end of head, start of body) at the first empty line; None if none yet."""
    m = _BLANK.search(data, 0, _MAX_HEAD + 4)
    return None if m is None else (m.start(), m.end())


def parse_message(data: bytes) -> Request | Response:
    """Parse one datagram. Raises only :class:`ParseError`."""
    data = data.lstrip(b"\r\n")
    ends = _head_end(data)
    if ends is None:
        raise ParseError("no end of headers")
    start, headers = _parse_head(data[: ends[0]])
    rest = data[ends[1] :]
    length = _content_length(headers)
    if length is None:
        body = rest
    elif length > len(rest):
        raise ParseError(f"body shorter than Content-Length {length}")
    else:
        body = rest[:length]
    return _build(start, headers, body)


class StreamFramer:
    """Cut a TCP/TLS byte stream into messages by Content-Length (RFC 3261 18.3).

    ``feed()`` returns complete messages. A message the peer got wrong raises
    :class:`ParseError`: on a stream the framing is then lost, and the caller
    should close the connection.
    """

    def __init__(self, max_message: int = 1 << 20) -> None:
        self._buf = bytearray()
        self._max = max_message

    def feed(self, data: bytes) -> list[Request | Response]:
        self._buf += data
        out: list[Request | Response] = []
        while True:
            # CRLF keep-alives (RFC 5626 3.5.1) sit between messages.
            skip = len(self._buf) - len(self._buf.lstrip(b"\r\n"))
            del self._buf[:skip]
            ends = _head_end(self._buf)
            if ends is None:
                if len(self._buf) > _MAX_HEAD:
                    raise ParseError("header block too long")
                return out
            head_end, body_start = ends
            start, headers = _parse_head(bytes(self._buf[:head_end]))
            length = _content_length(headers) or 0  # missing on a stream: no body
            if body_start + length > self._max:
                raise ParseError("message too long")
            if len(self._buf) < body_start + length:
                return out
            body = bytes(self._buf[body_start : body_start + length])
            del self._buf[: body_start + length]
            out.append(_build(start, headers, body))

    @property
    def buffered(self) -> int:
        """Bytes waiting for the rest of a message."""
        return len(self._buf)
