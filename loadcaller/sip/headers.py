"""Structured SIP header values: URI, Via, name-addr (From/To/Contact), CSeq.

Each value is a frozen dataclass with ``parse()`` (raising only
:class:`~loadcaller.sip.errors.ParseError`) and ``__str__`` (its wire form).
Parameters are kept in order as ``(name, value-or-None)`` pairs, names
compared case-insensitively, so what the peer sent is what goes back out: a
To tag or a Record-Route is echoed byte for byte, which strict peers (SIPp)
check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from loadcaller.sip.errors import ParseError

__all__ = [
    "BRANCH_COOKIE",
    "CSeq",
    "NameAddr",
    "Params",
    "Uri",
    "Via",
    "format_params",
    "get_param",
    "is_token",
    "parse_params",
    "split_list",
]

BRANCH_COOKIE = "z9hG4bK"  # RFC 3261 8.1.1.7: every branch we make starts with it

Params = tuple[tuple[str, str | None], ...]

_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._]+)\Z")


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value, ignoring commas in quotes or <>."""
    if "," not in value:
        value = value.strip()
        return [value] if value else []
    parts: list[str] = []
    start = 0
    quoted = angle = escaped = False
    for i, ch in enumerate(value):
        if escaped:
            escaped = False
        elif quoted:
            if ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            angle = True
        elif ch == ">":
            angle = False
        elif ch == "," and not angle:
            parts.append(value[start:i].strip())
            start = i + 1
    parts.append(value[start:].strip())
    return [p for p in parts if p]


def parse_params(text: str) -> Params:
    """``;a=1;b;c="x;y"`` (leading ``;`` optional) to ordered pairs."""
    out: list[tuple[str, str | None]] = []
    for chunk in _split_semicolons(text):
        chunk = chunk.strip()
        if not chunk:
            continue
        name, eq, value = chunk.partition("=")
        name = name.strip()
        if not _TOKEN.match(name):
            raise ParseError(f"bad parameter name {name!r}")
        out.append((name, value.strip() if eq else None))
    return tuple(out)


def _split_semicolons(text: str) -> list[str]:
    if '"' not in text:
        return text.split(";")
    parts: list[str] = []
    start = 0
    quoted = escaped = False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == ";" and not quoted:
            parts.append(text[start:i])
            start = i + 1
    if quoted:
        raise ParseError(f"unterminated quote in {text!r}")
    parts.append(text[start:])
    return parts


def format_params(params: Params) -> str:
    """Ordered pairs back to ``;a=1;b``."""
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


def get_param(params: Params, name: str) -> str | None:
    """Value of a parameter ("" for a flag like ``;lr``), None when absent."""
    lname = name.lower()
    for k, v in params:
        if k.lower() == lname:
            return "" if v is None else v
    return None


def _set_param(params: Params, name: str, value: str | None) -> Params:
    lname = name.lower()
    kept = tuple((k, v) for k, v in params if k.lower() != lname)
    return (*kept, (name, value))


def _parse_hostport(text: str) -> tuple[str, int | None]:
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ParseError(f"bad IPv6 reference {text!r}")
        host, rest = text[: end + 1], text[end + 1 :]
    else:
        host, colon, port_text = text.partition(":")
        rest = colon + port_text
    if not _HOST.match(host):
        raise ParseError(f"bad host {host!r}")
    if not rest:
        return host, None
    if not rest.startswith(":") or not rest[1:].strip().isdigit() or not rest[1:].isascii():
        raise ParseError(f"bad port in {text!r}")
    port = int(rest[1:])
    if not 0 < port < 65536:
        raise ParseError(f"port out of range in {text!r}")
    return host, port


def _hostport(host: str, port: int | None) -> str:
    return host if port is None else f"{host}:{port}"


@dataclass(frozen=True, slots=True)
class Uri:
    """A sip: or sips: URI (RFC 3261 19.1)."""

    scheme: str
    user: str | None
    host: str
    port: int | None = None
    params: Params = ()
    headers: str = ""  # the part after "?", kept verbatim
    password: str | None = None

    @classmethod
    def parse(cls, text: str) -> Uri:
        text = text.strip()
        scheme, colon, rest = text.partition(":")
        if not colon or scheme.lower() not in ("sip", "sips"):
            raise ParseError(f"not a sip: URI {text!r}")
        rest, _, headers = rest.partition("?")
        user = password = None
        at = rest.rfind("@")
        if at >= 0:
            userinfo, rest = rest[:at], rest[at + 1 :]
            user, pc, pw = userinfo.partition(":")
            password = pw if pc else None
            if not user:
                raise ParseError(f"empty user in {text!r}")
        hostport, _, params = rest.partition(";")
        host, port = _parse_hostport(hostport)
        return cls(scheme.lower(), user, host, port, parse_params(params), headers, password)

    def param(self, name: str) -> str | None:
        return get_param(self.params, name)

    @property
    def transport(self) -> str:
        """The ``transport=`` parameter lower-cased, "udp" when absent (tls for sips)."""
        value = self.param("transport")
        if value:
            return value.lower()
        return "tls" if self.scheme == "sips" else "udp"

    def __str__(self) -> str:
        userinfo = ""
        if self.user is not None:
            userinfo = self.user + (f":{self.password}" if self.password is not None else "")
            userinfo += "@"
        tail = f"?{self.headers}" if self.headers else ""
        return (
            f"{self.scheme}:{userinfo}{_hostport(self.host, self.port)}"
            f"{format_params(self.params)}{tail}"
        )


_VIA = re.compile(
    r"\s*SIP\s*/\s*2\.0\s*/\s*([A-Za-z0-9\-]+)\s+([^;\s]+(?:\s*:\s*\d+)?)\s*(.*)\Z", re.S
)


@dataclass(frozen=True, slots=True)
class Via:
    """One Via value: ``SIP/2.0/UDP host:port;branch=z9hG4bK...;rport``."""

    transport: str
    host: str
    port: int | None = None
    params: Params = ()

    @classmethod
    def parse(cls, text: str) -> Via:
        m = _VIA.match(text)
        if not m:
            raise ParseError(f"bad Via {text!r}")
        host, port = _parse_hostport(m.group(2).replace(" ", ""))
        rest = m.group(3).strip()
        if rest and not rest.startswith(";"):
            raise ParseError(f"bad Via parameters {text!r}")
        return cls(m.group(1).upper(), host, port, parse_params(rest))

    @property
    def branch(self) -> str | None:
        return get_param(self.params, "branch")

    @property
    def received(self) -> str | None:
        return get_param(self.params, "received")

    @property
    def rport(self) -> int | None:
        """The port the peer saw us send from (``rport=N``), None if not filled in."""
        value = get_param(self.params, "rport")
        return int(value) if value and value.isdigit() and value.isascii() else None

    def with_param(self, name: str, value: str | None) -> Via:
        return replace(self, params=_set_param(self.params, name, value))

    def __str__(self) -> str:
        sent_by = _hostport(self.host, self.port)
        return f"SIP/2.0/{self.transport} {sent_by}{format_params(self.params)}"


def _parse_quoted(text: str) -> tuple[str, str]:
    """A quoted-string at the start of ``text``: (unescaped content, rest)."""
    out: list[str] = []
    i = 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if ch == '"':
            return "".join(out), text[i + 1 :]
        out.append(ch)
        i += 1
    raise ParseError(f"unterminated quoted string {text!r}")


@dataclass(frozen=True, slots=True)
class NameAddr:
    """From, To, Contact, Route: ``"Display" <uri>;tag=...`` or a bare addr-spec."""

    uri: str
    display_name: str = ""
    params: Params = ()

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        text = text.strip()
        display = ""
        if text.startswith('"'):
            display, text = _parse_quoted(text)
            text = text.lstrip()
            if not text.startswith("<"):
                raise ParseError("quoted display name without <uri>")
        if "<" in text:
            lt = text.index("<")
            if not display:
                display = " ".join(text[:lt].split())
            gt = text.find(">", lt)
            if gt < 0:
                raise ParseError(f"unterminated <uri> in {text!r}")
            uri, rest = text[lt + 1 : gt].strip(), text[gt + 1 :].strip()
            if rest and not rest.startswith(";"):
                raise ParseError(f"junk after <uri> in {text!r}")
        else:
            # addr-spec: its ";params" belong to the header, not the URI (RFC 3261 20.10)
            uri, _, rest = text.partition(";")
            uri = uri.strip()
        if not uri or " " in uri:
            raise ParseError(f"bad URI in {text!r}")
        return cls(uri, display, parse_params(rest))

    @property
    def tag(self) -> str | None:
        return get_param(self.params, "tag")

    def param(self, name: str) -> str | None:
        return get_param(self.params, name)

    def with_tag(self, tag: str) -> NameAddr:
        return replace(self, params=_set_param(self.params, "tag", tag))

    def parsed_uri(self) -> Uri:
        return Uri.parse(self.uri)

    def __str__(self) -> str:
        name = ""
        if self.display_name:
            escaped = self.display_name.replace("\\", "\\\\").replace('"', '\\"')
            name = f'"{escaped}" '
        return f"{name}<{self.uri}>{format_params(self.params)}"


@dataclass(frozen=True, slots=True)
class CSeq:
    """``CSeq: 4711 INVITE``."""

    seq: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        parts = text.split()
        if (
            len(parts) != 2
            or not parts[0].isdigit()
            or not parts[0].isascii()
            or not _TOKEN.match(parts[1])
        ):
            raise ParseError(f"bad CSeq {text!r}")
        seq = int(parts[0])
        if seq >= 2**32:
            raise ParseError(f"CSeq out of range {text!r}")
        return cls(seq, parts[1])

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


def is_token(text: str) -> bool:
    """True for an RFC 3261 token (method names, header names, parameter names)."""
    return bool(_TOKEN.match(text))
