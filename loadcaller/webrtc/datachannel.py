"""What an agent says on the data channel, sans-I/O: Pipecat's signalling and RTVI messages.

Pipecat's SmallWebRTC sends JSON on the data channel the caller opens:
``{"type": "signalling", "message": {"type": "renegotiate"}}`` asks for a new
offer with the same pc_id, ``{"type": "signalling", "message": {"type":
"peerLeft"}}`` says the bot hung up, and RTVI messages (``"label": "rtvi-ai"``)
carry, among much else, what the bot said as text. :class:`DataChannelLog`
counts every message and keeps the bot's words stamped with their arrival, so a
turn's record can carry the agent's text beside its latency.

The bot's text comes in several RTVI kinds that repeat one another (whole
sentences as ``bot-output`` and ``bot-transcription``, TTS chunks as
``bot-tts-text``, LLM tokens as ``bot-llm-text``): :attr:`DataChannelLog.transcripts`
keeps the best kind the agent sent, so no word is counted twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from loadcaller import peerjson

RTVI_LABEL: Final = "rtvi-ai"
# Best first: each kind restates the same speech at a finer grain than the one before.
TEXT_KINDS: Final = ("bot-output", "bot-transcription", "bot-tts-text", "bot-llm-text")
MAX_TEXTS: Final = 2000  # per call; a chatty agent cannot grow a caller's memory without end
MAX_TEXT_CHARS: Final = 2000


class Signal(Enum):
    """What a data-channel message asks of the call."""

    RENEGOTIATE = "renegotiate"
    PEER_LEFT = "peerLeft"


@dataclass(slots=True)
class DataChannelLog:
    """One call's data-channel traffic (see the module docstring)."""

    messages: int = 0
    octets: int = 0
    rtvi: int = 0
    not_json: int = 0
    texts: list[tuple[int, str, str]] = field(default_factory=list)  # (t_ns, kind, text)
    kinds: dict[str, int] = field(default_factory=dict)

    def receive(self, message: str | bytes, t_ns: int) -> Signal | None:
        """Count one message that arrived at ``t_ns``; what it asks of the call, if anything."""
        self.messages += 1
        self.octets += len(message)
        if isinstance(message, bytes):
            return None
        try:
            data = peerjson.loads(message)
        except ValueError:
            self.not_json += 1
            return None
        if not isinstance(data, dict):
            return None
        kind = data.get("type")
        if kind == "signalling":
            inner = data.get("message")
            inner_kind = inner.get("type") if isinstance(inner, dict) else None
            for signal in Signal:
                if inner_kind == signal.value:
                    return signal
            return None
        if data.get("label") != RTVI_LABEL or not isinstance(kind, str):
            return None
        self.rtvi += 1
        if len(self.kinds) < 64 or kind in self.kinds:
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
        payload = data.get("data")
        text = payload.get("text") if isinstance(payload, dict) else None
        if (kind in TEXT_KINDS and isinstance(text, str) and text.strip()
                and len(self.texts) < MAX_TEXTS):
            self.texts.append((t_ns, kind, text[:MAX_TEXT_CHARS]))
        return None

    @property
    def transcripts(self) -> list[tuple[int, str]]:
        """The bot's words as ``(arrival ns, text)``, in the best kind it sent."""
        present = {k for _, k, _ in self.texts}
        for kind in TEXT_KINDS:
            if kind in present:
                return [(t, text) for t, k, text in self.texts if k == kind]
        return []

    def stats(self) -> dict[str, int]:
        """Counts for the call's media record."""
        out = {"datachannel_messages": self.messages, "datachannel_bytes": self.octets,
               "rtvi_messages": self.rtvi}
        if self.not_json:
            out["datachannel_not_json"] = self.not_json
        if self.texts:
            out["rtvi_texts"] = len(self.texts)
        return out

