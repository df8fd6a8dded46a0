"""``X-Twilio-Signature`` for a Media Streams websocket upgrade.

Twilio signs the websocket request with HMAC-SHA1 of the full ``wss://`` URL
(no POST parameters) keyed by the account's auth token, base64-encoded. The
``twilio`` package's own :class:`RequestValidator` computes it, so an agent that
validates with the official SDK accepts our upgrade.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from twilio.request_validator import RequestValidator


def signed_url(url: str) -> str:
    """The URL Twilio signs: the target with its scheme as ``wss``."""
    parts = urlsplit(url)
    scheme = {"ws": "wss", "http": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, parts.fragment))


def compute_signature(auth_token: str, url: str) -> str:
    """The ``X-Twilio-Signature`` header value for an upgrade to ``url``."""
    return str(RequestValidator(auth_token).compute_signature(url, {}))


def validate_signature(auth_token: str, url: str, signature: str) -> bool:
    """Whether ``signature`` is Twilio's for ``url`` (what an agent checks)."""
    return bool(RequestValidator(auth_token).validate(url, {}, signature))
