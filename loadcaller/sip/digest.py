"""HTTP digest authentication for SIP (RFC 2617, RFC 7616, RFC 3261 22.4).

Both sides: :func:`authorization` answers a ``WWW-Authenticate`` /
``Proxy-Authenticate`` challenge (MD5 or SHA-256, ``qop=auth`` with ``nc`` and
``cnonce``, or the RFC 2069 form without qop); :func:`challenge` and
:func:`verify` let our test UAS issue and check one.

Quoting follows RFC 7616 3.4: ``realm``, ``nonce``, ``uri``, ``response``,
``cnonce`` and ``opaque`` are quoted strings; ``algorithm``, ``qop`` and ``nc``
are tokens in the Authorization header (``qop`` is a quoted list in the
challenge). Asterisk and SIPp reject the other spelling.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from loadcaller.sip.errors import ParseError, RemoteProtocolError, SipError
from loadcaller.sip.message import Request, Response

__all__ = [
    "Challenge",
    "answer_challenge",
    "authorization",
    "challenge",
    "parse_auth",
    "verify",
]

_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
_QUOTED_OUT = ("username", "realm", "nonce", "uri", "response", "cnonce", "opaque")


def parse_auth(value: str) -> tuple[str, dict[str, str]]:
    """``Digest realm="x", nonce="y", qop=auth`` -> ("Digest", {"realm": "x", ...}).

    Parameter names are lower-cased; quoted values are unescaped.
    """
    value = value.strip()
    scheme, _, rest = value.partition(" ")
    if not scheme:
        raise ParseError("empty authentication header")
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " \t,":
            i += 1
        if i >= n:
            break
        eq = rest.find("=", i)
        if eq < 0:
            raise ParseError(f"bad auth parameter in {value[:60]!r}")
        name = rest[i:eq].strip().lower()
        i = eq + 1
        while i < n and rest[i] in " \t":
            i += 1
        if i < n and rest[i] == '"':
            out: list[str] = []
            i += 1
            while i < n and rest[i] != '"':
                if rest[i] == "\\" and i + 1 < n:
                    i += 1
                out.append(rest[i])
                i += 1
            if i >= n:
                raise ParseError(f"unterminated quote in {value[:60]!r}")
            i += 1
            params[name] = "".join(out)
        else:
            end = rest.find(",", i)
            end = n if end < 0 else end
            params[name] = rest[i:end].strip()
            i = end
        if not name:
            raise ParseError(f"empty auth parameter name in {value[:60]!r}")
    return scheme, params


@dataclass(frozen=True, slots=True)
class Challenge:
    """A parsed digest challenge."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False

    @classmethod
    def parse(cls, value: str) -> Challenge:
        scheme, p = parse_auth(value)
        if scheme.lower() != "digest":
            raise RemoteProtocolError(f"unsupported auth scheme {scheme!r}")
        if "nonce" not in p:
            raise ParseError("digest challenge without nonce")
        algorithm = p.get("algorithm", "MD5").upper()
        qop = tuple(q.strip().lower() for q in p.get("qop", "").split(",") if q.strip())
        return cls(
            realm=p.get("realm", ""),
            nonce=p["nonce"],
            algorithm=algorithm,
            qop=qop,
            opaque=p.get("opaque"),
            stale=p.get("stale", "").lower() == "true",
        )

    @property
    def supported(self) -> bool:
        base = self.algorithm.removesuffix("-SESS")
        return base in _HASHES and (not self.qop or "auth" in self.qop)


def _h(algorithm: str, text: str) -> str:
    return _HASHES[algorithm.upper().removesuffix("-SESS")](text.encode()).hexdigest()


def _response(
    *,
    algorithm: str,
    username: str,
    password: str,
    realm: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None,
    nc: str,
    cnonce: str,
) -> str:
    ha1 = _h(algorithm, f"{username}:{realm}:{password}")
    if algorithm.upper().endswith("-SESS"):
        ha1 = _h(algorithm, f"{ha1}:{nonce}:{cnonce}")
    ha2 = _h(algorithm, f"{method}:{uri}")
    if qop:
        return _h(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _h(algorithm, f"{ha1}:{nonce}:{ha2}")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def authorization(
    chal: Challenge,
    *,
    method: str,
    uri: str,
    username: str,
    password: str,
    cnonce: str,
    nc: int = 1,
) -> str:
    """The ``Authorization`` / ``Proxy-Authorization`` value answering ``chal``."""
    if not chal.supported:
        raise RemoteProtocolError(
            f"unsupported digest challenge (algorithm={chal.algorithm}, qop={chal.qop})"
        )
    qop = "auth" if chal.qop else None
    nc_text = f"{nc:08x}"
    response = _response(
        algorithm=chal.algorithm,
        username=username,
        password=password,
        realm=chal.realm,
        nonce=chal.nonce,
        method=method,
        uri=uri,
        qop=qop,
        nc=nc_text,
        cnonce=cnonce,
    )
    fields = {
        "username": username,
        "realm": chal.realm,
        "nonce": chal.nonce,
        "uri": uri,
        "response": response,
        "algorithm": chal.algorithm,
    }
    if qop:
        fields |= {"qop": qop, "nc": nc_text, "cnonce": cnonce}
    if chal.opaque is not None:
        fields["opaque"] = chal.opaque
    parts = [f"{k}={_quote(v) if k in _QUOTED_OUT else v}" for k, v in fields.items()]
    return "Digest " + ", ".join(parts)


def answer_challenge(
    response: Response, request: Request, *, username: str, password: str, cnonce: str
) -> tuple[str, str] | None:
    """The header answering a 401/407 to ``request``: the first challenge we support.

    ``("Authorization", value)`` for a 401, ``("Proxy-Authorization", value)`` for
    a 407; None when no challenge there is one we can answer.
    """
    proxy = response.status == 407
    for value in response.header_list("Proxy-Authenticate" if proxy else "WWW-Authenticate"):
        try:
            chal = Challenge.parse(value)
        except SipError:
            continue
        if chal.supported:
            cred = authorization(
                chal,
                method=request.method,
                uri=request.uri,
                username=username,
                password=password,
                cnonce=cnonce,
            )
            return ("Proxy-Authorization" if proxy else "Authorization"), cred
    return None


def challenge(realm: str, nonce: str, *, qop: bool = True, opaque: str | None = None) -> str:
    """A ``WWW-Authenticate`` value for our test UAS (MD5)."""
    parts = [f"realm={_quote(realm)}", f"nonce={_quote(nonce)}", "algorithm=MD5"]
    if qop:
        parts.append('qop="auth"')
    if opaque is not None:
        parts.append(f"opaque={_quote(opaque)}")
    return "Digest " + ", ".join(parts)


def verify(value: str, *, method: str, username: str, password: str, realm: str) -> str | None:
    """Check an Authorization value; the nonce it answered if it is right, else None.

    The caller checks the nonce is one it issued. Malformed values are simply
    wrong (None), never an exception.
    """
    try:
        scheme, p = parse_auth(value)
    except ParseError:
        return None
    needed = ("username", "realm", "nonce", "uri", "response")
    if scheme.lower() != "digest" or any(k not in p for k in needed):
        return None
    if p["username"] != username or p["realm"] != realm:
        return None
    algorithm = p.get("algorithm", "MD5").upper()
    if algorithm.removesuffix("-SESS") not in _HASHES:
        return None
    qop = p.get("qop") or None
    if qop not in (None, "auth") or (qop and ("nc" not in p or "cnonce" not in p)):
        return None
    expected = _response(
        algorithm=algorithm,
        username=username,
        password=password,
        realm=realm,
        nonce=p["nonce"],
        method=method,
        uri=p["uri"],
        qop=qop,
        nc=p.get("nc", ""),
        cnonce=p.get("cnonce", ""),
    )
    return p["nonce"] if expected == p["response"].lower() else None
