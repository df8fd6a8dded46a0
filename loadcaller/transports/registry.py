"""Every transport's target, as the profile's ``target:`` union sees them.

Adding a transport is three steps (docs/architecture.md): write
``transports/<name>.py`` with a :class:`~loadcaller.transports.base.Target`
subclass and a :class:`~loadcaller.transports.base.CallTransport`; list the
target in :data:`TARGETS`; test it against a real peer.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field

from loadcaller.transports.base import Target
from loadcaller.transports.pstn import PstnTarget
from loadcaller.transports.sip import SipTarget
from loadcaller.transports.twilio_stream import TwilioTarget
from loadcaller.transports.webrtc import WebRtcTarget

TARGETS: tuple[type[Target], ...] = (TwilioTarget, SipTarget, WebRtcTarget, PstnTarget)
TRANSPORT_NAMES = frozenset(str(t.model_fields["transport"].default) for t in TARGETS)



def _default_transport(value: Any) -> Any:
    """A target without ``transport:`` takes it from its URL's scheme (else twilio)."""
    if isinstance(value, dict) and "transport" not in value:
        url = value.get("url")
        found = transport_for_url(url) if isinstance(url, str) else None
        return {"transport": found or "twilio", **value}
    return value


AnyTarget = Annotated[TwilioTarget | SipTarget | WebRtcTarget | PstnTarget,
                      Field(discriminator="transport"),
                      BeforeValidator(_default_transport)]


def transport_for_url(url: str) -> str | None:
    """The transport a ``--target`` URL's scheme selects, or None if none does."""
    scheme = urlsplit(url).scheme.lower() if ":" in url else ""
    for target in TARGETS:
        if scheme in target.schemes:
            return str(target.model_fields["transport"].default)
    return None


def target_override(url: str, current: dict[str, Any] | None) -> dict[str, Any]:
    """The profile's ``target`` section after ``--target URL``.

    The same transport keeps the section's other fields (auth, parameters); a URL
    of another transport replaces the section, since its fields belong to the old one.
    """
    transport = transport_for_url(url)
    section = dict(current or {})
    if transport is None or section.get("transport", "twilio") == transport:
        section["url"] = url
        return section
    return {"transport": transport, "url": url}


def known_schemes() -> list[str]:
    return [s for target in TARGETS for s in target.schemes]
