"""RTP for an aiortc sender, sent from the media clock's tick with no task in between.

aiortc sends a track's audio from one task per call: the task wakes for each
frame, builds an ``RtpPacket`` with header extensions, serialises it, and awaits
SRTP and ICE (three coroutines deep) for what is one ``sendto``. At 50 frames a
second per call that task is most of a WebRTC caller's CPU. :class:`DirectRtp`
does the same work synchronously inside the tick: a 12-byte header packed once
per frame, the DTLS transport's own SRTP session, and the nominated ICE pair's
UDP socket.

It reaches into aiortc and aioice internals (the DTLS transport's SRTP context,
the ICE connection's nominated pair), so :meth:`DirectRtp.attach` checks each
one and returns None when something is not as expected (a TCP candidate pair,
another aiortc version); :meth:`DirectRtp.send` returns False when it could
not send. The caller then falls back to :class:`~loadcaller.webrtc.media.ClockTrack`
and aiortc's own sender. Receivers route our packets by the SSRC our SDP
announced (``a=ssrc``), which is the sender's own.
"""

from __future__ import annotations

import random
import struct
from typing import Any, Final

from aioice.ice import StunProtocol

_HEADER: Final = struct.Struct("!BBHII")
_V2: Final = 0x80


class DirectRtp:
    """One call's outgoing RTP stream (see the module docstring)."""

    __slots__ = ("_dtls", "_marker", "_pt", "_seq", "_ssrc", "_ts", "octets", "packets")

    def __init__(self, dtls: Any, *, ssrc: int, payload_type: int,
                 rng: random.Random | None = None) -> None:
        rng = rng or random.Random()
        self._dtls = dtls
        self._ssrc = ssrc
        self._pt = payload_type
        self._seq = rng.getrandbits(16)
        self._ts = rng.getrandbits(32)
        self._marker = 0x80  # the first packet starts a talkspurt
        self.packets = 0
        self.octets = 0

    @classmethod
    def attach(cls, transceiver: Any) -> DirectRtp | None:
        """A direct sender for ``transceiver``'s negotiated stream, or None if it cannot be."""
        sender = getattr(transceiver, "sender", None)
        codecs = getattr(transceiver, "_codecs", None)
        dtls = getattr(sender, "transport", None)
        ssrc = getattr(sender, "_ssrc", None)
        if not codecs or dtls is None or not isinstance(ssrc, int):
            return None
        if getattr(dtls, "_tx_srtp", None) is None or _pair_socket(dtls) is None:
            return None
        return cls(dtls, ssrc=ssrc, payload_type=int(codecs[0].payloadType))

    def send(self, payload: bytes, samples: int) -> bool:
        """One packet of ``payload`` now; then the timestamp moves by ``samples``."""
        dtls = self._dtls
        srtp = dtls._tx_srtp
        target = _pair_socket(dtls)
        if srtp is None or target is None or str(getattr(dtls, "state", "")) != "connected":
            return False
        sock, addr = target
        header = _HEADER.pack(_V2, self._pt | self._marker, self._seq, self._ts, self._ssrc)
        sock.sendto(srtp.protect(header + payload), addr)
        self._marker = 0
        self._seq = (self._seq + 1) & 0xFFFF
        self._ts = (self._ts + samples) & 0xFFFFFFFF
        self.packets += 1
        self.octets += len(payload)
        return True


def _pair_socket(dtls: Any) -> tuple[Any, tuple[str, int]] | None:
    """The UDP socket and remote address of the nominated ICE pair (component 1)."""
    ice = getattr(dtls, "transport", None)
    conn = getattr(ice, "_connection", None)
    nominated = getattr(conn, "_nominated", None)
    pair = nominated.get(1) if isinstance(nominated, dict) else None
    protocol = getattr(pair, "protocol", None)
    if pair is None or not isinstance(protocol, StunProtocol):
        return None
    sock = protocol.transport
    if sock is None or sock.is_closing():
        return None
    return sock, pair.remote_addr
