"""The reference agent's WebRTC side: Pipecat's SmallWebRTC signalling, and WHIP.

``loadcaller agent --transport webrtc --port 7860`` runs it, so that both
flavours of the WebRTC caller have a reference peer:

- ``POST /api/offer`` ``{sdp, type: "offer", pc_id?, restart_pc?}`` answers
  ``{sdp, type: "answer", pc_id}`` as Pipecat's ``SmallWebRTCRequestHandler``
  does; a known ``pc_id`` renegotiates that call (with ``restart_pc`` on a new
  peer connection, the call and its id kept). ``PATCH /api/offer``
  ``{pc_id, candidates: [{candidate, sdp_mid, sdp_mline_index}]}`` applies
  trickled ICE candidates (camelCase accepted too; an empty candidate is the
  end of candidates).
- ``POST /whip`` (``application/sdp``) answers ``201`` with the SDP answer and
  ``Location: /whip/<id>``; ``PATCH /whip/<id>`` takes a trickle-ice-sdpfrag,
  ``DELETE /whip/<id>`` ends the call.

Each call is one aiortc ``RTCPeerConnection`` (``iceServers=[]``: host
candidates only, nothing leaves the machine) and one
:class:`~loadcaller.agent.session.AgentSession`, the same behaviour and ground
truth as over Twilio and SIP, keyed by the call's id (the ``pc_id``, or the WHIP
resource id), which the callers record as the call's ``remote_id``. The codec
is the offer's first of PCMU and Opus. The session speaks through a
:class:`~loadcaller.webrtc.media.ClockTrack` (it paces its speech itself and
sends nothing between replies, like the SIP agent's silence suppression) and
hears through a :class:`~loadcaller.webrtc.media.TrackTap` drained every 20 ms
for all calls by one timer; a caller whose audio pauses is heard as silence.
Its ground-truth instants are read at the socket on both sides
(:mod:`loadcaller.agent.webrtc_stamps`).
The greeting starts when the connection is up; the call ends when the caller
closes its peer connection (DTLS close), its track ends, ICE fails, or it
never connects within ``connect_timeout_s`` (:data:`CONNECT_TIMEOUT_S`). At
most ``max_calls`` calls at once: an offer beyond them is answered ``503``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.sdp import SessionDescription, candidate_from_sdp

from loadcaller import peerjson
from loadcaller.agent.server import ReferenceAgent
from loadcaller.agent.session import AgentSession
from loadcaller.agent.webrtc_stamps import SentTrack, WebRtcLine, stamp_arrivals
from loadcaller.media.frames import FRAME_NS, SILENCE_FRAME, SilenceGrid
from loadcaller.timebase import NS_PER_S, now_ns
from loadcaller.webrtc.media import AudioCodec, TrackTap
from loadcaller.webrtc.rtpsend import DirectRtp

log = logging.getLogger(__name__)

DEFAULT_MAX_CALLS: Final = 200
CONNECT_TIMEOUT_S: Final = 30.0  # an answered offer whose caller never connects is dropped
GAP_NS: Final = 60_000_000  # a caller's audio quiet this long is heard as silence
MAX_CANDIDATES: Final = 64  # per PATCH
_MIME: Final[dict[str, AudioCodec]] = {"audio/pcmu": "PCMU", "audio/opus": "opus"}


class OfferError(Exception):
    """A signalling request we refuse; ``status`` is the HTTP answer, the message its reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass
class _Call:
    id: str
    session: AgentSession
    line: WebRtcLine
    pc: RTCPeerConnection | None = None
    tap: TrackTap | None = None
    silence: SilenceGrid = field(default_factory=lambda: SilenceGrid(GAP_NS))
    connected: bool = False
    exact_arrivals: bool = False  # packets stamped at the socket (webrtc_stamps)
    ended: bool = False
    deadline: float = 0.0  # loop time by which it must have connected


def _audio_codecs(offer: SessionDescription) -> tuple[list[AudioCodec], dict[int, AudioCodec]]:
    """The offer's audio codecs we speak, in its order, and their payload types."""
    order: list[AudioCodec] = []
    payload_types: dict[int, AudioCodec] = {}
    for media in offer.media:
        if media.kind != "audio":
            continue
        for codec in media.rtp.codecs:
            name = _MIME.get(codec.mimeType.lower())
            if name is not None and codec.payloadType is not None:
                payload_types[codec.payloadType] = name
                if name not in order:
                    order.append(name)
    return order, payload_types


def _parse_offer(sdp: str) -> tuple[list[AudioCodec], dict[int, AudioCodec]]:
    try:
        offer = SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc's parser raises whatever a hostile SDP trips
        raise OfferError(400, f"unreadable SDP offer: {type(exc).__name__}: {exc}") from None
    if not any(m.kind == "audio" for m in offer.media):
        raise OfferError(400, "the SDP offer has no audio m-line")
    order, payload_types = _audio_codecs(offer)
    if not order:
        raise OfferError(400, "no common audio codec: the agent speaks PCMU and opus")
    return order, payload_types


class WebRtcAgent:
    """The reference agent answering WebRTC offers (see the module docstring)."""

    def __init__(self, agent: ReferenceAgent, *, host: str,
                 max_calls: int = DEFAULT_MAX_CALLS,
                 connect_timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        self.agent = agent
        self.host = host
        self.max_calls = max_calls
        self.connect_timeout_s = connect_timeout_s
        self.calls: dict[str, _Call] = {}
        self._runner: web.AppRunner | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Future[Any]] = set()

    async def start(self, port: int) -> int:
        """Listen on ``host:port`` (0: a free port); return the bound port."""
        app = web.Application(client_max_size=256 * 1024)
        app.router.add_post("/api/offer", self._post_offer)
        app.router.add_patch("/api/offer", self._patch_offer)
        app.router.add_post("/whip", self._post_whip)
        app.router.add_patch("/whip/{id}", self._patch_whip)
        app.router.add_delete("/whip/{id}", self._delete_whip)
        await self.agent.open()
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, port)
        await site.start()
        return int(self._runner.addresses[0][1])

    async def close(self) -> None:
        """End every call, stop listening."""
        for call in list(self.calls.values()):
            self._end(call, "agent stopped")
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        if self._timer is not None:
            self._timer.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    # ---- HTTP ------------------------------------------------------------------------

    async def _post_offer(self, request: web.Request) -> web.Response:
        try:
            body = await _json_object(request)
            sdp, kind = body.get("sdp"), body.get("type")
            pc_id, restart = body.get("pc_id"), body.get("restart_pc")
            if not isinstance(sdp, str) or not sdp.strip():
                raise OfferError(400, "field sdp: the SDP offer as a string is required")
            if kind != "offer":
                raise OfferError(400, f"field type: must be \"offer\", not {kind!r}")
            if pc_id is not None and not isinstance(pc_id, str):
                raise OfferError(400, "field pc_id: must be a string")
            if restart is not None and not isinstance(restart, bool):
                raise OfferError(400, "field restart_pc: must be true or false")
            call = self.calls.get(pc_id) if pc_id else None
            if call is not None:
                answer = await self._renegotiate(call, sdp, restart=bool(restart))
            else:
                call = self._new_call()
                answer = await self._answer(call, sdp)
        except OfferError as exc:
            return web.json_response({"error": str(exc)}, status=exc.status)
        return web.json_response({"sdp": answer, "type": "answer", "pc_id": call.id})

    async def _patch_offer(self, request: web.Request) -> web.Response:
        try:
            body = await _json_object(request)
            pc_id = body.get("pc_id")
            call = self.calls.get(pc_id) if isinstance(pc_id, str) else None
            if call is None or call.pc is None:
                raise OfferError(404, "no call with this pc_id")
            candidates = body.get("candidates")
            if not isinstance(candidates, list) or len(candidates) > MAX_CANDIDATES:
                raise OfferError(400, f"field candidates: a list of at most {MAX_CANDIDATES}")
            for item in candidates:
                await self._add_candidate(call.pc, item)
        except OfferError as exc:
            return web.json_response({"error": str(exc)}, status=exc.status)
        return web.json_response({"status": "success"})

    async def _post_whip(self, request: web.Request) -> web.Response:
        if request.content_type != "application/sdp":
            return web.Response(status=415, text="WHIP offers are application/sdp\n")
        try:
            sdp = await request.text()
            call = self._new_call()
            answer = await self._answer(call, sdp)
        except (OfferError, UnicodeDecodeError) as exc:
            status = exc.status if isinstance(exc, OfferError) else 400
            return web.Response(status=status, text=f"{exc}\n")
        return web.Response(status=201, text=answer, content_type="application/sdp",
                            headers={"Location": f"/whip/{call.id}"})

    async def _patch_whip(self, request: web.Request) -> web.Response:
        call = self.calls.get(request.match_info["id"])
        if call is None or call.pc is None:
            return web.Response(status=404, text="no such WHIP resource\n")
        mid = None
        try:
            for line in (await request.text()).splitlines()[:MAX_CANDIDATES * 2]:
                if line.startswith("a=mid:"):
                    mid = line[6:].strip()
                elif line.startswith("a=candidate:"):
                    await self._add_candidate(call.pc, {"candidate": line[2:], "sdpMid": mid})
                elif line.startswith("a=end-of-candidates"):
                    await call.pc.addIceCandidate(None)  # type: ignore[arg-type]
        except (OfferError, UnicodeDecodeError) as exc:
            return web.Response(status=400, text=f"{exc}\n")
        return web.Response(status=204)

    async def _delete_whip(self, request: web.Request) -> web.Response:
        call = self.calls.get(request.match_info["id"])
        if call is None:
            return web.Response(status=404, text="no such WHIP resource\n")
        self._end(call, "caller deleted the WHIP resource")
        return web.Response(status=200)

    # ---- calls -----------------------------------------------------------------------

    def _new_call(self) -> _Call:
        if len(self.calls) >= self.max_calls:
            raise OfferError(503, f"busy: {len(self.calls)} calls in progress "
                             f"(at most {self.max_calls})")
        call_id = uuid.uuid4().hex
        a = self.agent
        line = WebRtcLine(SentTrack("PCMU"))  # replaced once the codec is known
        session = AgentSession(line=line, config=a.config, voice=a.voice, http=a.http,
                               truth=a.truth, rng=a.rng)
        call = _Call(call_id, session, line)
        self.calls[call_id] = call  # counted while its offer is being answered
        return call

    async def _answer(self, call: _Call, sdp: str) -> str:
        try:
            return await self._connect(call, sdp)
        except BaseException:
            self._end(call, "offer refused")
            raise

    async def _renegotiate(self, call: _Call, sdp: str, *, restart: bool) -> str:
        if restart or call.pc is None:
            if call.pc is not None:
                old, call.pc, call.tap = call.pc, None, None
                old.remove_all_listeners()
                self._spawn(old.close())
            return await self._answer(call, sdp)
        _parse_offer(sdp)
        pc = call.pc
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:  # aiortc refuses an offer it cannot apply in many ways
            raise OfferError(400, f"renegotiation refused: {type(exc).__name__}: {exc}") from None
        return str(pc.localDescription.sdp)

    async def _connect(self, call: _Call, sdp: str) -> str:
        """A new peer connection for ``call`` answering ``sdp``; the answer's SDP."""
        order, payload_types = _parse_offer(sdp)
        codec = order[0]
        call.line.track.stop()
        call.line.track, call.line.direct = SentTrack(codec), None
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        call.pc = pc
        caps = {c.mimeType.lower(): c for c in RTCRtpSender.getCapabilities("audio").codecs}
        transceiver = pc.addTransceiver(call.line.track, direction="sendrecv")
        transceiver.setCodecPreferences([caps[f"audio/{name.lower()}"] for name in order])
        pc.on("connectionstatechange", lambda: self._on_state(call, pc))
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:  # aiortc refuses an offer it cannot apply in many ways
            raise OfferError(400, f"SDP offer refused: {type(exc).__name__}: {exc}") from None
        if call.ended or call.pc is not pc:
            raise OfferError(409, "the call ended while its offer was answered")
        audio = next((t for t in pc.getTransceivers()
                      if t.kind == "audio" and t.receiver.track is not None), None)
        if audio is not None:
            call.tap = TrackTap(audio.receiver.track, audio.receiver, payload_types)
            call.exact_arrivals = stamp_arrivals(audio, call.tap)
            if not call.exact_arrivals:
                log.warning("call %s: receive instants taken after decryption", call.id)
        loop = asyncio.get_running_loop()
        call.deadline = loop.time() + self.connect_timeout_s
        if self._timer is None:
            self._timer = loop.call_later(FRAME_NS / NS_PER_S, self._tick)
        return str(pc.localDescription.sdp)

    async def _add_candidate(self, pc: RTCPeerConnection, item: Any) -> None:
        if not isinstance(item, dict):
            raise OfferError(400, "a candidate is an object {candidate, sdp_mid, sdp_mline_index}")
        text = item.get("candidate")
        mid = item.get("sdp_mid", item.get("sdpMid"))
        index = item.get("sdp_mline_index", item.get("sdpMLineIndex"))
        if not text:
            await pc.addIceCandidate(None)  # type: ignore[arg-type]  # end of candidates
            return
        if not isinstance(text, str):
            raise OfferError(400, "field candidate: must be a string")
        try:
            candidate = candidate_from_sdp(text.removeprefix("candidate:"))
        except Exception:  # aiortc's parser asserts, indexes and converts without checks
            raise OfferError(400, f"unreadable ICE candidate {text[:80]!r}") from None
        candidate.sdpMid = mid if isinstance(mid, str) else None
        candidate.sdpMLineIndex = index if isinstance(index, int) else None
        if candidate.sdpMid is None and candidate.sdpMLineIndex is None:
            candidate.sdpMLineIndex = 0
        try:
            await pc.addIceCandidate(candidate)
        except Exception as exc:  # aiortc: no such mid, a closed connection, ...
            raise OfferError(400, f"ICE candidate refused: {type(exc).__name__}: {exc}") from None

    def _on_state(self, call: _Call, pc: RTCPeerConnection) -> None:
        if call.pc is not pc:
            return
        state = pc.connectionState
        if state == "connected":
            if call.line.direct is None:  # RTP from the session's step (webrtc_stamps)
                audio = next((t for t in pc.getTransceivers() if t.kind == "audio"), None)
                call.line.direct = DirectRtp.attach(audio) if audio is not None else None
            if not call.connected:
                call.connected = True
                call.session.on_start(call.id, now_ns())
        elif state in ("failed", "closed"):
            self._end(call, f"connection {state}")

    def _tick(self) -> None:
        """Every 20 ms while calls are up: what each caller said since the last tick."""
        self._timer = None
        if not self.calls:
            return
        now = now_ns()
        late = asyncio.get_running_loop().time()
        for call in list(self.calls.values()):
            tap = call.tap
            if tap is not None:
                frames = tap.drain(now)
                call.silence.heard(frames)
                frames += call.silence.fill(now, SILENCE_FRAME)
                for frame in frames:
                    call.session.on_audio(frame.audio, frame.t_ns)
                if tap.ended:
                    self._end(call, "the caller's track ended")
                    continue
            if not call.connected and call.deadline and late > call.deadline:
                self._end(call, f"not connected within {self.connect_timeout_s:g}s")
        self._timer = asyncio.get_running_loop().call_later(FRAME_NS / NS_PER_S, self._tick)

    def _end(self, call: _Call, why: str) -> None:
        if call.ended:
            return
        call.ended = True
        log.info("call %s ended: %s", call.id, why)
        self.calls.pop(call.id, None)
        call.session.close()
        call.line.track.stop()
        if call.pc is not None:
            self._spawn(call.pc.close())

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = peerjson.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        raise OfferError(400, "the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise OfferError(400, "the body must be a JSON object")
    return body
