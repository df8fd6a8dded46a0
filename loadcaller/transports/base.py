"""The one interface every transport implements (Twilio stream, SIP, WebRTC, PSTN).

A transport is one call's media session, seen from the caller:

- :meth:`CallTransport.connect` sets the call up, or raises
  :class:`~loadcaller.errors.SetupFailed` with a reason;
- the media clock calls :meth:`send_audio` every 20 ms with a mu-law frame (and
  its base64 form, encoded once per utterance frame and shared by every call);
- the media clock calls :meth:`heard` on the same tick to collect the agent's
  audio as the caller hears it: frames stamped with the instant their playout
  began (a Twilio playout queue, an RTP jitter buffer, a WebRTC track);
- :attr:`ended` resolves when the far end or the network ends the call, with a
  :class:`CallEnd` that classifies it;
- :meth:`hangup` ends the call from our side (Twilio ``stop``, SIP BYE).

``send_audio`` and ``heard`` are synchronous and never block: they run inside
the media clock's tick for hundreds of calls.
"""

from __future__ import annotations

import abc
import asyncio
from dataclasses import dataclass
from typing import ClassVar

from loadcaller.twilio.playout import PlayedFrame

# Call outcomes (calls.jsonl "outcome")
COMPLETED = "completed"
FAILED_SETUP = "failed_setup"
DROPPED = "dropped"
AGENT_HANGUP = "agent_hangup"
ERROR = "error"
NO_RESPONSE = "no_response"
CANCELLED = "cancelled"
CALL_OUTCOMES = (COMPLETED, FAILED_SETUP, DROPPED, AGENT_HANGUP, ERROR, NO_RESPONSE, CANCELLED)


@dataclass(frozen=True, slots=True)
class CallEnd:
    """Why a call ended, when the far end or the network ended it."""

    outcome: str
    reason: str


class CallTransport(abc.ABC):
    """One call's media session (see the module docstring)."""

    name: ClassVar[str]

    def __init__(self) -> None:
        self.ended: asyncio.Future[CallEnd] = asyncio.get_running_loop().create_future()

    @property
    def remote_id(self) -> str:
        """An identifier the agent also sees (Twilio callSid, SIP Call-ID)."""
        return ""

    @abc.abstractmethod
    async def connect(self) -> None:
        """Set the call up; raise SetupFailed with a reason."""

    @abc.abstractmethod
    def send_audio(self, frame: bytes, b64: str) -> None:
        """Send one 20 ms mu-law frame now."""

    @abc.abstractmethod
    def heard(self, now_ns: int) -> list[PlayedFrame]:
        """The agent's frames whose playout began by ``now_ns``."""

    def send_dtmf(self, digit: str) -> None:  # pragma: no cover - per transport
        """Send a DTMF digit."""
        raise NotImplementedError(f"{self.name} does not send DTMF yet")

    @abc.abstractmethod
    async def hangup(self) -> None:
        """End the call from the caller's side."""

    def _end(self, outcome: str, reason: str) -> None:
        if not self.ended.done():
            self.ended.set_result(CallEnd(outcome, reason))
