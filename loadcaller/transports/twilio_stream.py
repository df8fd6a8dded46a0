"""Calls placed as Twilio Media Streams: the caller impersonates Twilio.

Thin asyncio glue: a TCP (or TLS) connection carries websockets' sans-I/O
``ClientProtocol``; messages are built by :mod:`loadcaller.twilio.caller` and
the agent's audio goes through :mod:`loadcaller.twilio.playout`. Sending is a
synchronous ``transport.write`` from the media clock's tick, with no coroutine
per frame, which is what lets one process hold hundreds of calls.

Nothing the agent does grows the caller's memory without bound: the playout
queue holds at most ``max_playout_queue`` of audio (an agent once queued twenty
minutes, 9.2 MiB, in one second), data the agent does not read stops at
``max_unsent`` bytes (an agent that stopped reading grew one caller's write
buffer to 18.7 MiB), and a message over websockets' ``max_size`` (4 MiB) is
refused unread. Each ends the call as ``error`` with a reason that says which.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from typing import Literal

from pydantic import ByteSize, Field, field_validator
from websockets.client import ClientProtocol
from websockets.exceptions import InvalidURI, PayloadTooBig
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from loadcaller.config import Duration, PositiveDuration, Secret
from loadcaller.errors import RemoteProtocolError, SetupFailed
from loadcaller.media.frames import SAMPLE_RATE, PlayedFrame
from loadcaller.media.outcomes import CallOutcome
from loadcaller.timebase import now_ns
from loadcaller.transports.base import CallTransport, Target, local_os_error
from loadcaller.transports.wsframe import (
    BINARY,
    ServerFrames,
    masked_text_frame,
    server_frame,
)
from loadcaller.twilio.caller import TwilioCallerStream
from loadcaller.twilio.messages import (
    AgentClear,
    AgentMark,
    AgentMedia,
    b64_bytes,
    parse_agent_message,
)
from loadcaller.twilio.playout import Playout, PlayoutOverflow
from loadcaller.twilio.signature import compute_signature, signed_url

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 2**22  # websockets' max_size: a media message is a few hundred bytes
MAX_UPGRADE_BYTES = 2**16  # an upgrade response's head; past this websockets judges it
# Twilio-stream calls one process carries with media-clock lag p99 < 5 ms through
# `loadcaller run` with churn (benchmarks/churn_scale.py, 12 s calls, a quiet 2-core
# machine, the agent on the same cores). Against an agent that sends each reply in one
# message, 500 held (lag p99 1.8 ms) and 700 did not; against one that streams its speech
# in paced 20 ms messages, as Pipecat does (--chunk-ms 20), every message is a read, a
# call costs about twice the CPU, and 300 held (3.7 ms). Set below what held
CALLS_PER_PROCESS = 250
MIB = 2**20


class TwilioTarget(Target):
    """An agent that speaks Twilio Media Streams (``target.transport: twilio``)."""

    schemes = ("ws", "wss")

    transport: Literal["twilio"] = "twilio"
    url: str = Field("ws://127.0.0.1:8080/media", description="ws:// or wss:// Media Streams URL")
    auth_token: Secret | None = Field(
        None, description="sign the upgrade with X-Twilio-Signature (${VAR} or {file: PATH})")
    signature_url: str | None = Field(None, description="URL to sign (default: url as wss://)")
    custom_parameters: dict[str, str] = Field(default_factory=dict)
    setup_timeout: PositiveDuration = 5.0
    max_playout_queue: Duration = Field(
        60.0, gt=0, description="agent audio the playout may hold; more ends the call (error)")
    max_unsent: ByteSize = Field(
        ByteSize(4 * MIB),
        description="bytes the agent has not read yet (e.g. 4MiB); more ends the call (error)")

    @field_validator("url")
    @classmethod
    def _ws_url(cls, v: str) -> str:
        if not re.match(r"^wss?://[^/\s]+", v):
            raise ValueError(f"{v!r} is not a ws:// or wss:// URL")
        try:
            parse_uri(v)  # e.g. a port out of range: refused here, not by every call
        except (InvalidURI, ValueError) as exc:
            raise ValueError(f"{v!r} is not a valid websocket URL: {exc}") from None
        return v

    @field_validator("max_unsent")
    @classmethod
    def _positive(cls, v: ByteSize) -> ByteSize:
        if v <= 0:
            raise ValueError("must be more than 0 bytes")
        return v

    def new_transport(self, *, call_id: str) -> TwilioStreamTransport:
        return TwilioStreamTransport(self, custom_parameters={"loadcaller_call_id": call_id})

    def per_process(self) -> tuple[int, str]:
        return CALLS_PER_PROCESS, "Twilio stream"


class _Wire(asyncio.Protocol):
    """Moves bytes between the socket and the transport; stamps receive time."""

    def __init__(self, owner: TwilioStreamTransport) -> None:
        self.owner = owner

    def data_received(self, data: bytes) -> None:
        try:
            self.owner._on_data(data, now_ns())
        except Exception as exc:  # our bug: this call ends as an error, not a traceback per read
            self.owner._broken(exc)

    def eof_received(self) -> bool | None:
        self.owner._on_eof()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._on_lost(exc)

    def pause_writing(self) -> None:  # over the transport's high-water mark: max_unsent
        self.owner._unread = True

    def resume_writing(self) -> None:
        self.owner._unread = False


class TwilioStreamTransport(CallTransport):
    """One call as a Twilio Media Stream to ``target.url``."""

    name = "twilio"

    def __init__(self, target: TwilioTarget, *, custom_parameters: dict[str, str] | None = None):
        super().__init__()
        self.target = target
        params = {**target.custom_parameters, **(custom_parameters or {})}
        self.stream = TwilioCallerStream(custom_parameters=params)
        self.ws = ClientProtocol(parse_uri(target.url), max_size=MAX_MESSAGE_BYTES)
        self.max_unsent = int(target.max_unsent)
        self.playout: Playout | None = None
        self._before_clear: list[PlayedFrame] = []
        self._tcp: asyncio.Transport | None = None
        self._handshake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._fragments: list[bytes] = []
        self._upgrading = True  # the response's head is read into _head first
        self._head = bytearray()
        self._frames: ServerFrames | None = None  # once upgraded: the agent's frames
        self._stopping = False
        # more than max_unsent bytes wait for the agent to read them: the transport's own
        # flow control says so (its high-water mark), not a size asked after every frame
        self._unread = False

    @property
    def remote_id(self) -> str:
        return self.stream.call_sid

    # ---- setup ---------------------------------------------------------------

    async def connect(self) -> None:
        uri = self.ws.uri
        loop = asyncio.get_running_loop()
        ctx = ssl.create_default_context() if uri.secure else None
        try:
            async with asyncio.timeout(self.target.setup_timeout):
                tcp, _ = await loop.create_connection(
                    lambda: _Wire(self), uri.host, uri.port, ssl=ctx
                )
                self._tcp = tcp
                tcp.set_write_buffer_limits(high=self.max_unsent)
                request = self.ws.connect()
                if self.target.auth_token:
                    url = self.target.signature_url or signed_url(self.target.url)
                    request.headers["X-Twilio-Signature"] = compute_signature(
                        self.target.auth_token.get_secret_value(), url
                    )
                self.ws.send_request(request)
                self._flush()
                await self._handshake
        except TimeoutError:
            self._abort()
            raise SetupFailed(
                f"no websocket upgrade within {self.target.setup_timeout:g}s") from None
        except SetupFailed:  # rejected upgrade: do not wait for the agent to close
            self._abort()
            raise
        except OSError as exc:
            self._abort()
            where = f"{uri.host}:{uri.port}"
            local = local_os_error(exc, f"connecting to {where}")
            if local is not None:
                raise local from exc
            raise SetupFailed(f"connect to {where} failed: {exc}") from exc
        now = now_ns()
        self.playout = Playout(now, max_bytes=round(self.target.max_playout_queue * SAMPLE_RATE))
        self._send(self.stream.connected())
        self._send(self.stream.start())

    # ---- media clock side ----------------------------------------------------

    def send_audio(self, frame: bytes) -> None:
        tcp = self._tcp
        if tcp is not None and self.ws.state is State.OPEN and not self._stopping:
            # the hot path: framed here, not by the protocol object (see wsframe)
            tcp.write(masked_text_frame(self.stream.media_bytes(b64_bytes(frame))))
            if self._unread:
                self._not_reading(tcp)

    def heard(self, now: int) -> list[PlayedFrame]:
        if self.playout is None:
            return []
        frames, marks = self.playout.advance(now)
        for name in marks:
            self._send(self.stream.mark(name))
        if self._before_clear:  # what played up to a clear that came between two ticks
            frames, self._before_clear = self._before_clear + frames, []
        return frames

    def send_dtmf(self, digit: str) -> None:
        self._send(self.stream.dtmf(digit))

    async def hangup(self) -> None:
        """Send ``stop`` and close the websocket, as Twilio does when a call ends."""
        if self.ws.state is State.OPEN:
            self._send(self.stream.stop())
            self._stopping = True
            self.ws.send_close(1000, "")
            self._flush()
            try:
                async with asyncio.timeout(2.0):
                    await asyncio.shield(self.ended)
            except TimeoutError:
                pass
        self._abort()
        self._end(CallOutcome.COMPLETED, "caller hung up")

    # ---- receive path --------------------------------------------------------

    def _on_data(self, data: bytes, t: int) -> None:
        frames = self._frames
        if frames is None:
            if self._upgrading:
                self._on_upgrade_data(data, t)
            else:  # a refused upgrade's body: websockets reads it
                self._on_ws_data(data, t)
            return
        ws = self.ws
        for kind, chunk in frames.feed(data):
            if self.ended.done():
                break  # this call is over: the rest is not worth parsing
            if not kind:
                self._on_ws_data(chunk, t)
            elif ws.state is State.OPEN and not self._fragments:
                self._on_payload(chunk, kind == BINARY, t)  # a whole message: the hot path
            else:  # mid-fragments or closing: websockets judges it
                self._on_ws_data(server_frame(kind, chunk), t)

    def _on_upgrade_data(self, data: bytes, t: int) -> None:
        """Bytes before the upgrade's end: websockets gets the response's head and not a
        byte more, so that it holds no part of a frame when :class:`ServerFrames` takes
        over (an agent may send its first message right behind the 101)."""
        head = self._head
        head += data
        end = head.find(b"\r\n\r\n")
        if end < 0 and len(head) < MAX_UPGRADE_BYTES:
            return
        cut = len(head) if end < 0 else end + 4
        response, rest = bytes(head[:cut]), bytes(head[cut:])
        head.clear()
        self._upgrading = False
        self._on_ws_data(response, t)
        if self.ws.state is State.OPEN and self.ws.handshake_exc is None:
            self._frames = ServerFrames(MAX_MESSAGE_BYTES)
        if rest:
            self._on_data(rest, t)

    def _on_ws_data(self, data: bytes, t: int) -> None:
        """What websockets reads: the upgrade, control frames, fragments, errors."""
        ws = self.ws
        ws.receive_data(data)
        for event in ws.events_received():
            if self.ended.done():
                break  # this call is over: the rest is not worth parsing
            if isinstance(event, Response):
                self._on_response(event)
                continue
            if not isinstance(event, Frame):
                continue
            op = event.opcode
            if op is Opcode.TEXT or op is Opcode.BINARY or op is Opcode.CONT:
                if not event.fin:
                    self._fragments.append(bytes(event.data))
                    continue
                if self._fragments:
                    self._fragments.append(bytes(event.data))
                    payload = b"".join(self._fragments)
                    self._fragments = []
                else:
                    payload = bytes(event.data)
                if not self._on_payload(payload, op is Opcode.BINARY, t):
                    return
            elif op is Opcode.CLOSE:
                self._on_close_frame()
        if ws.parser_exc is not None or ws.handshake_exc is not None:
            self._on_parser_error()
        self._flush()

    def _on_payload(self, payload: bytes, binary: bool, t: int) -> bool:
        """One whole message; False when it ended the call (text that is not UTF-8)."""
        if binary:
            self._on_message(payload, t)
            return True
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            self._fail(CallOutcome.ERROR, "agent broke the websocket protocol: text "
                       f"message is not UTF-8 ({exc.reason} at byte {exc.start})")
            return False
        self._on_message(text, t)
        return True

    def _on_parser_error(self) -> None:
        """websockets refused what the agent sent; say what, instead of "connection lost"."""
        hs = self.ws.handshake_exc
        if hs is not None and not self._handshake.done():
            cause = f": {hs.__cause__}" if hs.__cause__ is not None else ""
            self._handshake.set_exception(SetupFailed(f"websocket upgrade failed: {hs}{cause}"))
            return
        exc = self.ws.parser_exc
        if exc is None or isinstance(exc, EOFError) or self.ended.done():
            return  # EOF without a close frame: connection_lost says so
        if isinstance(exc, PayloadTooBig):
            self._fail(CallOutcome.ERROR, f"agent sent a message too big: {exc}")
        else:
            self._fail(CallOutcome.ERROR, f"agent broke the websocket protocol: {exc}")

    def _on_response(self, response: Response) -> None:
        if self._handshake.done():
            return
        if self.ws.handshake_exc is not None:
            status = response.status_code
            why = f"HTTP {status}" if status != 101 else str(self.ws.handshake_exc)
            self._handshake.set_exception(SetupFailed(f"websocket upgrade rejected: {why}"))
        else:
            self._handshake.set_result(None)

    def _on_message(self, message: str | bytes, t: int) -> None:
        try:
            msg = parse_agent_message(message)
        except RemoteProtocolError as exc:
            self._fail(CallOutcome.ERROR, f"agent broke the protocol: {exc}")
            return
        playout = self.playout
        if playout is None:
            return
        if isinstance(msg, AgentMedia):
            try:
                playout.push(msg.payload, t)
            except PlayoutOverflow as exc:
                self._fail(CallOutcome.ERROR, str(exc))
        elif isinstance(msg, AgentMark):
            try:
                playout.mark(msg.name, t)
            except PlayoutOverflow as exc:
                self._fail(CallOutcome.ERROR, str(exc))
        elif isinstance(msg, AgentClear):
            # audio whose playout began before the clear was heard: keep it for heard()
            frames, marks = playout.cut(t)
            self._before_clear += frames
            for name in marks:
                self._send(self.stream.mark(name))

    def _on_close_frame(self) -> None:
        rcvd = self.ws.close_rcvd
        code = rcvd.code if rcvd is not None else 1005
        if self._stopping:
            return
        if code in (1000, 1001):
            self._end(CallOutcome.AGENT_HANGUP, f"agent closed the websocket ({code})")
        else:
            reason = rcvd.reason if rcvd is not None else ""
            why = f"agent closed the websocket with code {code} {reason}".strip()
            self._end(CallOutcome.DROPPED, why)

    def _on_eof(self) -> None:
        if self._head:  # a response's head cut short: websockets says what it lacks
            head, self._head = bytes(self._head), bytearray()
            self.ws.receive_data(head)
        self.ws.receive_eof()
        self._flush()

    def _on_lost(self, exc: Exception | None) -> None:
        if not self._handshake.done():
            self._handshake.set_exception(
                SetupFailed(f"connection closed during upgrade: {exc or 'EOF'}")
            )
        if self._stopping:
            self._end(CallOutcome.COMPLETED, "caller hung up")
        else:
            why = f"connection lost: {exc or 'closed without a close frame'}"
            self._end(CallOutcome.DROPPED, why)
        self._tcp = None

    # ---- plumbing ------------------------------------------------------------

    def _send(self, text: str) -> None:
        if self.ws.state is not State.OPEN or self._tcp is None:
            return
        self.ws.send_text(text.encode())
        self._flush()

    def _flush(self) -> None:
        tcp = self._tcp
        if tcp is None:
            return
        for data in self.ws.data_to_send():
            if data:
                tcp.write(data)
            elif tcp.can_write_eof():
                tcp.write_eof()
        if self._unread:
            self._not_reading(tcp)

    def _broken(self, exc: Exception) -> None:
        log.debug("receive path failed", exc_info=exc)
        self._end(CallOutcome.ERROR, f"local: {type(exc).__name__} reading the agent: {exc}")
        self._abort()

    def _not_reading(self, tcp: asyncio.Transport) -> None:
        """The agent has left ``max_unsent`` bytes unread: end the call, drop the backlog."""
        unsent = tcp.get_write_buffer_size()
        self._end(CallOutcome.ERROR,
                  f"agent not reading: {unsent / MIB:.1f} MiB sent to it unread "
                  f"(limit {self.max_unsent / MIB:g} MiB, target.max_unsent)")
        self._abort()  # a close frame would only join the queue it does not read

    def _fail(self, outcome: CallOutcome, reason: str) -> None:
        self._end(outcome, reason)
        if self.ws.state is State.OPEN:
            self.ws.send_close(1000, "")
            self._flush()
        self._abort()

    def _abort(self) -> None:
        if not self._handshake.done():  # nobody waits for it any more: no late exception
            self._handshake.cancel()
        if self._tcp is not None:
            self._tcp.abort()
            self._tcp = None
