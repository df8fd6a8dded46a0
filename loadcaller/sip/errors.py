"""Errors of the sans-I/O SIP core.

Who failed decides the class, as in h11, and the blame is the one the whole tool
shares (:mod:`chaos.blame`: a local one is also a ``blame.LocalError``, a remote
one a ``blame.RemoteError``)::

    SipError                     base of everything this package raises on purpose
    ├── LocalProtocolError       we misused the core (hangup on an unknown call,
    │                            a status code out of range, an SDP we built badly)
    └── RemoteProtocolError      the peer sent something the protocol does not allow
        └── ParseError           bytes that are not a SIP message, header or SDP body

Parsing raises only :class:`ParseError`, whatever the input (the tests fuzz it).
The call objects (:class:`~loadcaller.sip.uac.SipCall`,
:class:`~loadcaller.sip.uas.SipServer`) never raise from ``receive()``: garbage
from the network is counted and dropped, because a load tester must survive the
agent it is testing.
"""

from __future__ import annotations

from chaos import blame

__all__ = ["LocalProtocolError", "ParseError", "RemoteProtocolError", "SipError"]


class SipError(blame.Error):
    """Base of every error the SIP core raises on purpose."""


class LocalProtocolError(SipError, blame.LocalError):
    """We misused the core: our bug or our bad configuration."""


class RemoteProtocolError(SipError, blame.RemoteError):
    """The peer broke the protocol."""


class ParseError(RemoteProtocolError):
    """Bytes from the peer are not a valid SIP message, header value or SDP body."""
