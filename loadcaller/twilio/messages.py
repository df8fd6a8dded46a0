"""Twilio Media Streams messages, both directions, as frozen dataclasses.

Sans-I/O: text in, events out; events in, text out. The wire format follows
Twilio's documentation for bidirectional Media Streams: numbers that Twilio
sends as strings (sequenceNumber, chunk, timestamp) are strings here too, and
``mediaFormat.sampleRate``/``channels`` are numbers.

From Twilio (the caller side builds these; an agent parses them):
``connected``, ``start``, ``media``, ``dtmf``, ``mark`` (echo), ``stop``.
From the agent (an agent builds these; the caller side parses them):
``media``, ``mark``, ``clear``.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from loadcaller import peerjson
from loadcaller.errors import RemoteProtocolError

# ---- messages an agent sends (parsed by the caller) ------------------------


@dataclass(frozen=True, slots=True)
class AgentMedia:
    payload: bytes


@dataclass(frozen=True, slots=True)
class AgentMark:
    name: str


@dataclass(frozen=True, slots=True)
class AgentClear:
    pass


AgentMessage = AgentMedia | AgentMark | AgentClear

# ---- messages Twilio sends (parsed by an agent) -----------------------------


@dataclass(frozen=True, slots=True)
class Connected:
    protocol: str = "Call"
    version: str = "1.0.0"


@dataclass(frozen=True, slots=True)
class Start:
    stream_sid: str
    call_sid: str
    account_sid: str
    tracks: tuple[str, ...] = ("inbound",)
    custom_parameters: dict[str, str] = field(default_factory=dict)
    encoding: str = "audio/x-mulaw"
    sample_rate: int = 8000
    channels: int = 1


@dataclass(frozen=True, slots=True)
class Media:
    stream_sid: str
    payload: bytes
    chunk: int
    timestamp_ms: int
    track: str = "inbound"


@dataclass(frozen=True, slots=True)
class Dtmf:
    stream_sid: str
    digit: str


@dataclass(frozen=True, slots=True)
class MarkEcho:
    stream_sid: str
    name: str


@dataclass(frozen=True, slots=True)
class Stop:
    stream_sid: str
    call_sid: str
    account_sid: str


TwilioMessage = Connected | Start | Media | Dtmf | MarkEcho | Stop


def _loads(text: str | bytes) -> dict[str, Any]:
    if isinstance(text, bytes):
        raise RemoteProtocolError("binary websocket frame where Twilio protocol expects text")
    try:
        obj = peerjson.loads(text)
    except ValueError as exc:
        raise RemoteProtocolError(f"malformed JSON ({exc}): {text[:80]!r}") from exc
    if not isinstance(obj, dict):
        raise RemoteProtocolError(f"message is not a JSON object: {text[:80]!r}")
    return obj


def _b64(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise RemoteProtocolError(f"{where}: payload missing or not a string")
    try:
        # strict binascii: validates like b64decode(validate=True), in half the time
        return binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise RemoteProtocolError(f"{where}: payload is not base64") from exc


def parse_agent_message(text: str | bytes) -> AgentMessage:
    """Parse one websocket message an agent sent to "Twilio"."""
    obj = _loads(text)
    event = obj.get("event")
    if event == "media":
        media = obj.get("media")
        if not isinstance(media, dict):
            raise RemoteProtocolError("media message without a media object")
        return AgentMedia(_b64(media.get("payload"), "media"))
    if event == "mark":
        mark = obj.get("mark")
        if not isinstance(mark, dict) or not isinstance(mark.get("name"), str):
            raise RemoteProtocolError("mark message without mark.name")
        return AgentMark(mark["name"])
    if event == "clear":
        return AgentClear()
    raise RemoteProtocolError(f"unknown event {event!r} from agent")


def parse_twilio_message(text: str | bytes) -> TwilioMessage:
    """Parse one websocket message "Twilio" sent to an agent."""
    obj = _loads(text)
    event = obj.get("event")
    try:
        if event == "media":
            media = obj["media"]
            return Media(
                stream_sid=obj["streamSid"],
                payload=_b64(media["payload"], "media"),
                chunk=int(media["chunk"]),
                timestamp_ms=int(media["timestamp"]),
                track=media.get("track", "inbound"),
            )
        if event == "connected":
            return Connected(obj.get("protocol", "Call"), obj.get("version", "1.0.0"))
        if event == "start":
            st = obj["start"]
            fmt = st.get("mediaFormat", {})
            return Start(
                stream_sid=st["streamSid"],
                call_sid=st["callSid"],
                account_sid=st["accountSid"],
                tracks=tuple(st.get("tracks", ("inbound",))),
                custom_parameters=dict(st.get("customParameters", {})),
                encoding=fmt.get("encoding", "audio/x-mulaw"),
                sample_rate=int(fmt.get("sampleRate", 8000)),
                channels=int(fmt.get("channels", 1)),
            )
        if event == "dtmf":
            return Dtmf(obj["streamSid"], obj["dtmf"]["digit"])
        if event == "mark":
            return MarkEcho(obj["streamSid"], obj["mark"]["name"])
        if event == "stop":
            stop = obj.get("stop", {})
            return Stop(obj["streamSid"], stop.get("callSid", ""), stop.get("accountSid", ""))
    except (KeyError, TypeError, ValueError) as exc:
        raise RemoteProtocolError(f"{event} message missing or bad field: {exc}") from exc
    raise RemoteProtocolError(f"unknown event {event!r}")


# ---- payloads ------------------------------------------------------------------

# A frame's base64 text, computed once per distinct frame and shared by every call
# (utterance frames are long-lived objects: the lookup is an identity hit).
_B64: dict[bytes, bytes] = {}
_B64_MAX = 1 << 16  # frames beyond this many (impaired, changed) are not kept


def b64_bytes(frame: bytes) -> bytes:
    """The base64 ``payload`` of a frame as ASCII bytes, cached for frames seen before."""
    text = _B64.get(frame)
    if text is None:
        text = base64.b64encode(frame)
        if len(_B64) < _B64_MAX:
            _B64[frame] = text
    return text


def b64_payload(frame: bytes) -> str:
    """The base64 ``payload`` text of a frame (:func:`b64_bytes`, decoded)."""
    return b64_bytes(frame).decode("ascii")


# ---- builders an agent uses -------------------------------------------------


def agent_media(stream_sid: str, payload: bytes) -> str:
    """An agent's outbound ``media`` message."""
    b64 = b64_payload(payload)
    return f'{{"event":"media","streamSid":"{stream_sid}","media":{{"payload":"{b64}"}}}}'


def agent_mark(stream_sid: str, name: str) -> str:
    """An agent's ``mark`` message."""
    return json.dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def agent_clear(stream_sid: str) -> str:
    """An agent's ``clear`` message."""
    return json.dumps({"event": "clear", "streamSid": stream_sid})
