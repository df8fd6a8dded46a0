"""Events the SIP cores hand to their drivers, as frozen dataclasses.

Caller side (:class:`~loadcaller.sip.uac.SipCall`), in the order they can come::

    Provisional* EarlyMedia* (Answered (MediaChanged)* | Failed) (Ended | RemoteBye)

Exactly one of :class:`Failed`, :class:`Ended` or :class:`RemoteBye` is the last
event of a call: after it the call only finishes its transactions (answering
retransmissions) until :attr:`SipCall.closed`.

Answering side (:class:`~loadcaller.sip.uas.SipServer`): :class:`IncomingCall`,
:class:`CallConfirmed`, :class:`RequestAnswered`, :class:`CallEnded`, each
naming its Call-ID.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from loadcaller.sip.message import Request
from loadcaller.sip.sdp import Negotiated

__all__ = [
    "Answered",
    "CallConfirmed",
    "CallEnded",
    "EarlyMedia",
    "Ended",
    "Failed",
    "FailureOutcome",
    "IncomingCall",
    "MediaChanged",
    "Provisional",
    "RemoteBye",
    "RequestAnswered",
    "ServerEvent",
    "SipEvent",
    "classify",
]

FailureOutcome = Literal[
    "busy",  # 486, 600
    "not_found",  # 404, 480, 484
    "unavailable",  # 503
    "timeout",  # timer B: no final response at all
    "auth_failed",  # challenged again after we answered, or no usable credentials
    "redirect",  # 3xx: classified, not followed
    "rejected",  # any other 4xx-6xx
    "no_sdp",  # 2xx without (usable) SDP: we ACK, then BYE
    "no_common_codec",  # 2xx whose SDP shares no codec with our offer: ACK, then BYE
    "bad_answer",  # 2xx whose Contact or Record-Route cannot be read: ACK, then BYE
]


def classify(status: int) -> FailureOutcome:
    """The outcome a final status >= 300 stands for."""
    if status in (486, 600):
        return "busy"
    if status in (404, 480, 484, 604):
        return "not_found"
    if status == 503:
        return "unavailable"
    if status in (401, 407):
        return "auth_failed"
    if 300 <= status < 400:
        return "redirect"
    return "rejected"


@dataclass(frozen=True, slots=True)
class Provisional:
    """A 1xx to our INVITE (100 Trying included)."""

    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class EarlyMedia:
    """A 18x with an SDP answer we can use: RTP may flow before the answer."""

    sdp: bytes
    media: Negotiated


@dataclass(frozen=True, slots=True)
class Answered:
    """The far end answered (2xx, ACKed) with SDP we negotiated."""

    sdp: bytes
    status: int
    media: Negotiated


@dataclass(frozen=True, slots=True)
class Failed:
    """The call was not set up. ``outcome`` classifies ``status`` for metrics."""

    status: int
    reason: str
    outcome: FailureOutcome


@dataclass(frozen=True, slots=True)
class MediaChanged:
    """A re-INVITE/UPDATE (or an ACK's answer) moved the far end's RTP or direction."""

    sdp: bytes
    media: Negotiated


@dataclass(frozen=True, slots=True)
class RemoteBye:
    """The far end hung up (we answered its BYE with 200)."""


@dataclass(frozen=True, slots=True)
class Ended:
    """We ended the call: ``local_bye`` (our BYE answered), ``bye_unanswered``
    (timer F), ``cancelled`` (CANCEL before answer, 487 received) or
    ``cancel_unanswered`` (no final response 64*T1 after our CANCEL)."""

    reason: str


SipEvent = Provisional | EarlyMedia | Answered | Failed | MediaChanged | RemoteBye | Ended


@dataclass(frozen=True, slots=True)
class IncomingCall:
    """A new INVITE (authenticated if the server challenges)."""

    call_id: str
    remote_addr: tuple[str, int]
    sdp: bytes
    request: Request = field(repr=False)

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        return self.request.headers


@dataclass(frozen=True, slots=True)
class CallConfirmed:
    """The ACK for our 2xx arrived (``sdp`` if it carried an answer)."""

    call_id: str
    sdp: bytes = b""


@dataclass(frozen=True, slots=True)
class RequestAnswered:
    """A final response to a request we sent in a dialog (re-INVITE, OPTIONS...)."""

    call_id: str
    method: str
    status: int
    sdp: bytes = b""


@dataclass(frozen=True, slots=True)
class CallEnded:
    """A call is over: ``remote_bye``, ``local_bye``, ``bye_unanswered``,
    ``cancelled``, ``rejected`` or ``ack_timeout`` (our 2xx never ACKed)."""

    call_id: str
    reason: str


ServerEvent = IncomingCall | CallConfirmed | RequestAnswered | CallEnded
