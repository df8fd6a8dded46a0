"""Credentials out of URLs before a URL is printed or written anywhere.

A target URL may carry a secret: a password in its userinfo
(``wss://user:PASSWORD@host/...``, ``sip:alice:PASSWORD@host``) or a token in
its query (``wss://agent.example/media?token=...``, a signed URL's
``X-Amz-Signature=...``). The run needs the real URL to dial; everything a
person or a file sees (console, summary.json, Locust's reports and web UI)
gets :func:`redact_url`'s copy: the password and the values of parameters
whose names look like credentials become ``***``. Names match
case-insensitively, by substring (:data:`CREDENTIAL_WORDS`), so
``X-Amz-Signature``, ``apiKey`` and ``oauth_token`` are caught too; a harmless
``monkey=1`` is redacted as well, a price worth paying.

What cannot be recognised stays: a secret in the path (``/media/SECRET``) or a
bare username that is itself a token (``wss://TOKEN@host``).
"""

from __future__ import annotations

import re
from urllib.parse import unquote

REDACTED = "***"

# substrings of parameter names that carry credentials (matched case-insensitively)
CREDENTIAL_WORDS = ("token", "key", "secret", "password", "passwd", "pwd", "signature",
                    "sig", "auth", "access_token", "api_key", "apikey")

_CREDENTIAL = re.compile("|".join(re.escape(w) for w in CREDENTIAL_WORDS), re.IGNORECASE)
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
# URLs inside free text (error messages): a scheme, then anything up to a space or quote
_URL_IN_TEXT = re.compile(r"""\b[A-Za-z][A-Za-z0-9+.-]*:(?://)?[^\s'"<>]+""")


def is_credential_name(name: str) -> bool:
    """Whether a parameter named ``name`` (possibly %-encoded) holds a credential."""
    return bool(_CREDENTIAL.search(unquote(name)))


def _params(text: str, sep: str) -> str:
    """``a=1&token=x`` -> ``a=1&token=***`` (separator ``&`` or ``;``), verbatim otherwise."""
    out = []
    for part in text.split(sep):
        name, eq, _value = part.partition("=")
        out.append(f"{name}={REDACTED}" if eq and is_credential_name(name) else part)
    return sep.join(out)


def _userinfo(text: str) -> str:
    """``user:pw@host:port/path`` -> ``user:***@host:port/path``; else unchanged.

    The userinfo runs to the last ``@``, so a password with a raw ``/`` or ``@``
    in it is still caught.
    """
    userinfo, at, after = text.rpartition("@")
    if not at or ":" not in userinfo:
        return text
    user = userinfo.split(":", 1)[0]
    return f"{user}:{REDACTED}@{after}"


def redact_url(url: str) -> str:
    """``url`` with its userinfo password and credential-like parameters replaced.

    Works on hierarchical URLs (``ws://``, ``wss://``, ``http://``: userinfo,
    query and fragment) and on SIP URIs (``sip:user:pw@host;param=v?header=v``:
    userinfo, ``;`` parameters and ``?`` headers). The rest of the URL is kept
    byte for byte, so what is printed still says which agent was called.
    """
    m = _SCHEME.match(url)
    if m is None:
        return url
    scheme = m.group(1)
    rest = url[m.end():]
    rest, hash_, fragment = rest.partition("#")
    rest, qmark, query = rest.partition("?")
    if rest.startswith("//"):  # scheme://userinfo@host:port/path
        rest = "//" + _userinfo(rest[2:])
    else:  # sip:user:pw@host;transport=tcp, mailto:..., urn:...
        head, semi, params = rest.partition(";")
        rest = _userinfo(head) + semi + (_params(params, ";") if semi else "")
    out = f"{scheme}:{rest}"
    if qmark:
        out += "?" + _params(query, "&")
    if hash_:
        out += "#" + (_params(fragment, "&") if "=" in fragment else fragment)
    return out


def redact_text(text: str) -> str:
    """Every URL found in free text (an error message, say) redacted as by :func:`redact_url`."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


def redacted_in(value: str, key: str = "") -> bool:
    """Whether ``value`` holds a :data:`REDACTED` placeholder where a credential was.

    True for ``***`` under a credential-like ``key`` and for a URL whose password or
    credential parameter is ``***`` (a results directory's profile.yaml): running it
    would send ``***`` as the secret.
    """
    if REDACTED not in value:
        return False
    if value.strip() == REDACTED and key and is_credential_name(key):
        return True
    # a placeholder in a credential's place: the URL with a stand-in value is redacted
    stand_in = value.replace(REDACTED, "x")
    return _SCHEME.match(value) is not None and redact_url(stand_in) != stand_in
