"""The caller's side of a Twilio Media Stream, as Twilio itself speaks it.

Sans-I/O. :class:`TwilioCallerStream` builds the text of every message Twilio
sends to an agent (``connected``, ``start``, ``media`` every 20 ms, ``dtmf``,
``mark`` echoes, ``stop``) with Twilio's numbering: ``sequenceNumber`` counts
every message after ``connected`` from 1, ``chunk`` counts media messages from 1,
``timestamp`` is milliseconds since the stream started; all three are strings.

``media`` text is built from a base64 payload the caller encodes once per
utterance frame and shares across calls, so the hot path is one bytes
formatting (:meth:`TwilioCallerStream.media_bytes`).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field


def new_sid(prefix: str) -> str:
    """A Twilio-shaped SID: two letters and 32 hex digits."""
    return prefix + secrets.token_hex(16)


@dataclass(slots=True)
class TwilioCallerStream:
    """Message builder for one stream; holds the counters Twilio keeps."""

    account_sid: str = field(default_factory=lambda: new_sid("AC"))
    call_sid: str = field(default_factory=lambda: new_sid("CA"))
    stream_sid: str = field(default_factory=lambda: new_sid("MZ"))
    custom_parameters: dict[str, str] = field(default_factory=dict)
    seq: int = 0
    chunk: int = 0
    _media: bytes = field(default=b"", init=False, repr=False, compare=False)

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def connected(self) -> str:
        return '{"event":"connected","protocol":"Call","version":"1.0.0"}'

    def start(self) -> str:
        seq = self._next_seq()
        return json.dumps(
            {
                "event": "start",
                "sequenceNumber": str(seq),
                "start": {
                    "accountSid": self.account_sid,
                    "streamSid": self.stream_sid,
                    "callSid": self.call_sid,
                    "tracks": ["inbound"],
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                    "customParameters": self.custom_parameters,
                },
                "streamSid": self.stream_sid,
            }
        )

    def media(self, b64_payload: str) -> str:
        """The next 20 ms ``media`` message; ``timestamp`` follows the chunk count."""
        return self.media_bytes(b64_payload.encode("ascii")).decode("ascii")

    def media_bytes(self, b64_payload: bytes) -> bytes:
        """:meth:`media` as the bytes a websocket frame carries (the hot path: one
        bytes formatting, about half the cost of an f-string and its encoding)."""
        self.seq += 1
        chunk = self.chunk = self.chunk + 1
        template = self._media
        if not template:
            sid = self.stream_sid.encode().replace(b"%", b"%%")
            template = self._media = (
                b'{"event":"media","sequenceNumber":"%d","media":{"track":"inbound",'
                b'"chunk":"%d","timestamp":"%d","payload":"%s"},"streamSid":"' + sid + b'"}')
        return template % (self.seq, chunk, (chunk - 1) * 20, b64_payload)

    def dtmf(self, digit: str) -> str:
        return json.dumps(
            {
                "event": "dtmf",
                "streamSid": self.stream_sid,
                "sequenceNumber": str(self._next_seq()),
                "dtmf": {"track": "inbound_track", "digit": digit},
            }
        )

    def mark(self, name: str) -> str:
        return json.dumps(
            {
                "event": "mark",
                "sequenceNumber": str(self._next_seq()),
                "streamSid": self.stream_sid,
                "mark": {"name": name},
            }
        )

    def stop(self) -> str:
        return json.dumps(
            {
                "event": "stop",
                "sequenceNumber": str(self._next_seq()),
                "streamSid": self.stream_sid,
                "stop": {"accountSid": self.account_sid, "callSid": self.call_sid},
            }
        )
