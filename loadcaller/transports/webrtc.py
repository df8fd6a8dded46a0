"""Calls placed over WebRTC with aiortc: HTTP offer/answer, audio on the media clock.

- ``webrtc+http(s)://host/api/offer`` speaks Pipecat SmallWebRTC's JSON offer/answer,
  ``whip+http(s)://host/whip`` WHIP's raw SDP (``signalling:`` may say which).
- One audio transceiver, sendrecv, offering only the profile's codec (PCMU or
  Opus). Once connected, each frame leaves as RTP from the media clock's tick
  (:class:`~loadcaller.webrtc.rtpsend.DirectRtp`); until then, or where that
  cannot attach, through a :class:`~loadcaller.webrtc.media.ClockTrack` and
  aiortc's sender. The agent's audio is read by a
  :class:`~loadcaller.webrtc.media.TrackTap`, each packet decrypted and stamped
  as its datagram arrives.
- A data channel is opened for Pipecat (its bot sends RTVI messages on it and asks
  for renegotiation there); its messages are counted and the bot's text is kept
  for turns.jsonl.
- ICE uses no STUN or TURN server unless the profile names some: host candidates
  only, as on 127.0.0.1 or a LAN. aiortc gathers every candidate before the offer
  is sent, so nothing is trickled.
- Outcomes: an HTTP error or a bad answer is ``failed_setup: signalling: ...``; an
  answer without audio, ICE or DTLS failing are ``failed_setup`` saying which; the
  agent's track ending or the connection failing or closing mid-call is ``dropped``
  (Pipecat's ``peerLeft`` first makes it ``agent_hangup``); no audio within
  ``no_media_timeout`` of the connection is ``no_media``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Literal

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.sdp import SessionDescription
from pydantic import BaseModel, ConfigDict, Field, field_validator

from loadcaller.config import PositiveDuration, Secret
from loadcaller.errors import SetupFailed
from loadcaller.media.frames import FRAME_NS, PlayedFrame
from loadcaller.media.outcomes import CallOutcome
from loadcaller.media.quality import MediaStats
from loadcaller.timebase import NS_PER_S, now_ns
from loadcaller.transports.base import CallTransport, Target
from loadcaller.webrtc.datachannel import DataChannelLog, Signal
from loadcaller.webrtc.media import AudioCodec, ClockTrack, TrackTap
from loadcaller.webrtc.rtpsend import DirectRtp
from loadcaller.webrtc.signalling import PipecatSignalling, Signalling, WhipSignalling

log = logging.getLogger(__name__)

HOLD_NS = 60 * 1_000_000  # silence is heard only this long after the last packet's slot
# WebRTC calls one process carries with media-clock lag p99 < 10 ms (benchmarks/webrtc_scale.py
# on a quiet 2-core machine, the answering peer on the same cores: PCMU held at 80 calls, lag
# p99 1.0 ms; Opus held at 30 and not at 60, encoding and decoding in the tick). Set below
# what held, so a busier machine still holds
CALLS_PER_PROCESS = {"PCMU": 60, "opus": 30}
CLOSE_WAIT_S = 3.0  # a hang-up waits this long for the peer connection and the DELETE
_SCHEME_FLAVOUR = {"webrtc+http": "pipecat", "webrtc+https": "pipecat",
                   "whip+http": "whip", "whip+https": "whip"}


class IceServer(BaseModel):
    """A STUN or TURN server for ICE (none by default: no traffic leaves for a public one)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    urls: list[str] = Field(min_length=1, description="stun:host:port or turn:host:port...")
    username: str | None = None
    credential: Secret | None = None

    @field_validator("urls", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("urls")
    @classmethod
    def _ice_urls(cls, v: list[str]) -> list[str]:
        for url in v:
            if not url.startswith(("stun:", "stuns:", "turn:", "turns:")):
                raise ValueError(f"{url!r} is not a stun: or turn: URL")
        return v


class WebRtcTarget(Target):
    """An agent reached over WebRTC (``target.transport: webrtc``)."""

    schemes = tuple(_SCHEME_FLAVOUR)

    transport: Literal["webrtc"] = "webrtc"
    url: str = Field("webrtc+http://127.0.0.1:7860/api/offer",
                     description="webrtc+http(s):// (Pipecat JSON) or whip+http(s):// (WHIP)")
    signalling: Literal["pipecat", "whip"] | None = Field(
        None, description="default: from the URL's scheme")
    codec: Literal["PCMU", "opus"] = "PCMU"
    auth_token: Secret | None = Field(None, description="sent as Authorization: Bearer")
    headers: dict[str, Secret] = Field(default_factory=dict,
                                       description="extra headers on signalling requests")
    ice_servers: list[IceServer] = Field(default_factory=list,
                                         description="STUN/TURN servers (default none)")
    data_channel: bool = Field(True, description="open one (Pipecat's bots talk on it)")
    direct_rtp: bool = Field(True, description="send RTP from the media clock's tick, not "
                             "from aiortc's sender task (false: aiortc's own path)")
    setup_timeout: PositiveDuration = Field(20.0, description="offer to connected media, at most")
    no_media_timeout: PositiveDuration = Field(5.0, description="connected to first audio, at most")

    @field_validator("url")
    @classmethod
    def _webrtc_url(cls, v: str) -> str:
        scheme, sep, rest = v.partition("://")
        if not sep or scheme.lower() not in _SCHEME_FLAVOUR or not rest.split("/")[0]:
            raise ValueError(f"{v!r} is not a webrtc+http(s):// or whip+http(s):// URL")
        return v

    @field_validator("headers")
    @classmethod
    def _header_names(cls, v: dict[str, Any]) -> dict[str, Any]:
        for name in v:
            if not name or any(c in name for c in " :\r\n\t") or name.lower() in (
                    "content-type", "content-length", "host"):
                raise ValueError(f"{name!r} cannot be set as an extra header")
        return v

    @property
    def http_url(self) -> str:
        """The signalling URL as HTTP sees it (the ``webrtc+``/``whip+`` prefix removed)."""
        return self.url.split("+", 1)[1]

    @property
    def flavour(self) -> str:
        return self.signalling or _SCHEME_FLAVOUR[self.url.partition("://")[0].lower()]

    def new_transport(self, *, call_id: str) -> WebRtcTransport:
        return WebRtcTransport(self, call_id=call_id)

    def per_process(self) -> tuple[int, str]:
        # aiortc costs far more CPU per call than our own RTP (SRTP, its sender and
        # receiver tasks)
        per = CALLS_PER_PROCESS.get(self.codec, min(CALLS_PER_PROCESS.values()))
        return per, f"WebRTC {self.codec}"


def answer_audio_problem(sdp: str) -> str | None:
    """Why the answer ``sdp`` carries no audio to us, or None if it does."""
    try:
        desc = SessionDescription.parse(sdp)
    except (ValueError, IndexError, KeyError) as exc:
        return f"signalling: the answer's SDP does not parse ({exc})"
    audio = [m for m in desc.media if m.kind == "audio"]
    if not audio:
        return "answer without audio: no audio m-line"
    m = audio[0]
    if m.port == 0:
        return "answer without audio: the audio m-line was rejected (port 0)"
    if m.direction in ("recvonly", "inactive"):
        return f"answer without audio: the agent's audio is {m.direction}"
    if not m.rtp.codecs:
        return "answer without audio: no codec in common"
    return None


class WebRtcTransport(CallTransport):
    """One call over WebRTC (see the module docstring)."""

    name = "webrtc"

    def __init__(self, target: WebRtcTarget, *, call_id: str) -> None:
        super().__init__()
        self.target = target
        self.call_id = call_id
        kwargs: dict[str, Any] = {"token": target.auth_token, "headers": target.headers,
                                  "timeout_s": min(10.0, target.setup_timeout)}
        self.signalling: Signalling = (
            WhipSignalling(target.http_url, **kwargs) if target.flavour == "whip"
            else PipecatSignalling(target.http_url, **kwargs))
        self.pc: RTCPeerConnection | None = None
        self.track = ClockTrack(target.codec)
        self.tap: TrackTap | None = None
        self.channel_log = DataChannelLog()
        self._connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._t_connected = 0
        self._grid = 0
        self._closing = False
        self._renegotiations = 0
        self._dtmf_unsent = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._transceiver: Any = None
        self._direct: DirectRtp | None = None

    @property
    def remote_id(self) -> str:
        return self.signalling.session_id

    @property
    def transcripts(self) -> list[tuple[int, str]] | None:
        return self.channel_log.transcripts or None

    # ---- setup ----------------------------------------------------------------------

    async def connect(self) -> None:
        t = self.target
        servers = [RTCIceServer(urls=s.urls, username=s.username,
                                credential=s.credential.get_secret_value()
                                if s.credential else None) for s in t.ice_servers]
        pc = self.pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        transceiver = self._transceiver = pc.addTransceiver(self.track, direction="sendrecv")
        caps = RTCRtpSender.getCapabilities("audio").codecs
        transceiver.setCodecPreferences([c for c in caps if c.name.lower() == t.codec.lower()])
        if t.data_channel:
            channel = pc.createDataChannel("loadcaller")
            channel.on("message", self._on_message)
        pc.on("track", self._on_track)
        pc.on("connectionstatechange", self._on_state)
        try:
            async with asyncio.timeout(t.setup_timeout):
                await self._negotiate()
                await asyncio.shield(self._connected)
        except TimeoutError:
            why = self._setup_timeout_reason()
            await self._close()
            raise SetupFailed(why) from None
        except BaseException:
            await self._close()
            raise
        self._t_connected = self._grid = now_ns()
        if self.target.direct_rtp:
            self._direct = DirectRtp.attach(self._transceiver)

    async def _negotiate(self) -> None:
        pc = self.pc
        assert pc is not None
        await pc.setLocalDescription(await pc.createOffer())  # gathers every candidate
        answer = await self.signalling.offer(pc.localDescription.sdp)
        problem = answer_audio_problem(answer.sdp)
        if problem is not None:
            raise SetupFailed(problem)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(answer.sdp, "answer"))
        except (ValueError, KeyError, IndexError) as exc:
            raise SetupFailed(f"signalling: the answer was refused by aiortc: {exc}") from None

    def _setup_timeout_reason(self) -> str:
        pc, limit = self.pc, f"{self.target.setup_timeout:g}s"
        if pc is None or pc.signalingState != "stable":
            return f"signalling: no answer within {limit}"
        if pc.iceConnectionState in ("new", "checking"):
            return f"ICE failed: no candidate pair connected within {limit}"
        return f"DTLS failed: no DTLS connection within {limit} (ICE {pc.iceConnectionState})"

    def _on_track(self, track: Any) -> None:
        pc = self.pc
        if pc is None or track.kind != "audio" or self.tap is not None:
            return
        for tr in pc.getTransceivers():
            if tr.receiver.track is track:
                pts: dict[int, AudioCodec] = {
                    c.payloadType: ("PCMU" if c.name.upper() == "PCMU" else "opus")
                    for c in tr._codecs
                    if c.payloadType is not None and c.name.upper() in ("PCMU", "OPUS")}
                self.tap = TrackTap(track, tr.receiver, pts)
                return

    def _on_state(self) -> None:
        pc = self.pc
        if pc is None or self._closing:
            return
        state = pc.connectionState
        if state == "connected" and not self._connected.done():
            self.answered_ns = now_ns()
            self._connected.set_result(None)
        elif state == "failed":
            ice_failed = pc.iceConnectionState == "failed"
            why = ("ICE failed: no candidate pair answered connectivity checks" if ice_failed
                   else "DTLS failed: handshake or fingerprint check failed")
            if not self._connected.done():
                self._connected.set_exception(SetupFailed(why))
            else:
                self._end(CallOutcome.DROPPED, f"connection failed mid-call ({why})")
        elif state == "closed":
            if not self._connected.done():
                self._connected.set_exception(SetupFailed("the agent closed the connection "
                                                          "during setup"))
            else:
                self._end(CallOutcome.DROPPED, "the agent closed the connection (DTLS close)")

    def _on_message(self, message: str | bytes) -> None:
        signal = self.channel_log.receive(message, now_ns())
        if signal is Signal.RENEGOTIATE:
            self._spawn(self._renegotiate())
        elif signal is Signal.PEER_LEFT:
            self._end(CallOutcome.AGENT_HANGUP, "the agent left (peerLeft)")

    async def _renegotiate(self) -> None:
        pc = self.pc
        if pc is None or self._closing:
            return
        self._renegotiations += 1
        try:
            await pc.setLocalDescription(await pc.createOffer())
            answer = await self.signalling.renegotiate(pc.localDescription.sdp)
            await pc.setRemoteDescription(RTCSessionDescription(answer.sdp, "answer"))
        except (SetupFailed, ValueError, KeyError) as exc:
            self._end(CallOutcome.DROPPED, f"renegotiation failed: {exc}")

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- the media clock's side --------------------------------------------------------

    def send_audio(self, frame: bytes) -> None:
        direct = self._direct
        if direct is None:
            self.track.push(frame)
            return
        for payload, samples in self.track.payloads(frame):
            if not direct.send(payload, samples):
                self._direct = None  # aiortc's own sender from the next frame on

    def heard(self, now: int) -> list[PlayedFrame]:
        tap = self.tap
        frames = tap.drain(now) if tap is not None else []
        if frames:
            self._grid = max(self._grid, frames[-1].t_ns + FRAME_NS)
            return frames
        if self._t_connected:
            # no packet for a while: the caller hears silence pass (silence suppression)
            while self._grid + FRAME_NS + HOLD_NS <= now:
                frames.append(PlayedFrame(self._grid, b""))
                self._grid += FRAME_NS
            if tap is not None and tap.ended:
                self._end(CallOutcome.DROPPED, "the agent's audio track ended")
            elif ((tap is None or tap.stats.received == 0)
                  and now - self._t_connected > self.target.no_media_timeout * NS_PER_S):
                self._end(CallOutcome.NO_MEDIA, f"no audio within "
                          f"{self.target.no_media_timeout:g}s of the connection")
        return frames

    def send_dtmf(self, digit: str) -> None:
        self._dtmf_unsent += 1  # aiortc has no DTMF sender (RFC 4733 over SRTP)
        log.warning("call %s: DTMF %r not sent: WebRTC calls do not send DTMF yet",
                    self.call_id, digit)

    # ---- ending -----------------------------------------------------------------------------

    async def hangup(self) -> None:
        """Close the peer connection (RTCP BYE, DTLS close) and end the signalling session."""
        await self._close()
        self._end(CallOutcome.COMPLETED, "caller hung up")

    async def _close(self) -> None:
        self._closing = True
        self.track.stop()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception, TimeoutError):
            async with asyncio.timeout(CLOSE_WAIT_S):
                if self.pc is not None:
                    await self.pc.close()
        with contextlib.suppress(Exception, TimeoutError):
            async with asyncio.timeout(CLOSE_WAIT_S):
                await self.signalling.close()

    @property
    def media_stats(self) -> dict[str, Any] | None:
        if self.pc is None:
            return None
        tap = self.tap
        st = tap.stats if tap is not None else None
        out: dict[str, Any] = MediaStats.build(
            packets_sent=self.track.frames_pushed,
            octets_sent=self.track.octets_sent,
            packets_received=st.received if st else 0,
            packets_expected=st.expected if st else 0,
            lost=st.lost if st else 0,
            duplicates=st.duplicates_or_late if st else 0,
            jitter_ms=st.jitter_ms if st else 0.0,
        ).to_json()
        out["codec"] = self.target.codec
        out["signalling"] = self.target.flavour
        out["rtp_sender"] = "direct" if self._direct is not None else "aiortc"
        out.update(self.channel_log.stats())
        if self._renegotiations:
            out["renegotiations"] = self._renegotiations
        if self._dtmf_unsent:
            out["dtmf_unsent"] = self._dtmf_unsent
        return out
