"""The reference agent's SIP side: a UAS on one UDP port, G.711 over RTP per call.

``loadcaller agent --transport sip --port 5080`` runs it. Every INVITE is
answered (100, then 200 with an SDP answer choosing the caller's first codec
we know, PCMU or PCMA, and telephone-event when offered); each call gets its
own RTP port and one :class:`~loadcaller.agent.session.AgentSession`, the same
behaviour and ground-truth log as over Twilio Media Streams. The greeting starts
when the ACK arrives. The agent sends RTP only while it speaks (silence
suppression), as many SIP agents do; the callers hear the gaps as silence, and
so does the agent when a caller pauses its RTP (every 20 ms, a caller quiet for
longer than the receive window is fed silence frames, so its turn can end).
Its ground truth is keyed by the SIP Call-ID, which the callers record as the
call's ``remote_id``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field

from loadcaller.agent.server import ReferenceAgent
from loadcaller.agent.session import AgentSession
from loadcaller.media.frames import FRAME_NS, SILENCE_FRAME, PlayedFrame, SilenceGrid
from loadcaller.sip import events as ev
from loadcaller.sip.errors import ParseError, SipError
from loadcaller.sip.rtp import Codec, RtpReceiver, RtpSender
from loadcaller.sip.sdp import NoCommonCodec, Sdp, build_answer
from loadcaller.sip.uas import SipServer
from loadcaller.timebase import NS_PER_S, now_ns

GAP_NS = 60_000_000  # RTP quiet this long (past the receive window) is heard as silence

log = logging.getLogger(__name__)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, on_data: object) -> None:
        self.on_data = on_data

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.on_data(data, addr, now_ns())  # type: ignore[operator]


class SipLine:
    """A session's outbound side as RTP packets to the caller."""

    def __init__(self, sock: asyncio.DatagramTransport, sender: RtpSender,
                 remote: tuple[str, int]) -> None:
        self.sock, self.sender, self.remote = sock, sender, remote
        self._first = True

    async def send_audio(self, frame: bytes) -> None:
        self.sock.sendto(self.sender.audio(frame, spurt_start=self._first), self.remote)
        self._first = False

    async def clear(self) -> None:
        self._first = True  # the next frame starts a talk spurt

    async def mark(self, name: str) -> None:
        self._first = True


@dataclass
class _Leg:
    rtp: asyncio.DatagramTransport
    receiver: RtpReceiver
    session: AgentSession
    silence: SilenceGrid = field(default_factory=lambda: SilenceGrid(GAP_NS))

    def hear(self, frames: list[PlayedFrame]) -> None:
        for frame in frames:
            if frame.audio:
                self.session.on_audio(frame.audio, frame.t_ns)
        self.silence.heard(frames)
        for digit in self.receiver.take_dtmf():
            self.session.on_dtmf(digit.digit, digit.t_ns, digit.duration_ms)

    def fill_silence(self, now: int) -> None:
        """A caller that stops sending RTP (silence suppression) is heard as silence."""
        for frame in self.silence.fill(now, SILENCE_FRAME):
            self.session.on_audio(frame.audio, frame.t_ns)


class SipAgent:
    """The reference agent answering SIP (see the module docstring)."""

    def __init__(self, agent: ReferenceAgent, *, host: str, seed: int | None = None) -> None:
        self.agent = agent
        self.host = host
        self.rng = random.Random(seed)
        self.core: SipServer | None = None
        self._sock: asyncio.DatagramTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._legs: dict[str, _Leg] = {}
        self._tasks: set[asyncio.Future[None]] = set()
        self._gaps: asyncio.TimerHandle | None = None

    async def start(self, port: int) -> int:
        """Listen on ``host:port`` (0: a free port); return the bound port."""
        loop = asyncio.get_running_loop()
        self._sock, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(self._on_sip), local_addr=(self.host, port))
        bound = int(self._sock.get_extra_info("sockname")[1])
        self.core = SipServer((self.host, bound), self.rng)
        return bound

    def close(self) -> None:
        for call_id in list(self._legs):
            self._drop(call_id)
        for handle in (self._timer, self._gaps):
            if handle is not None:
                handle.cancel()
        if self._sock is not None:
            self._sock.close()

    # ---- signalling ----------------------------------------------------------------

    def _on_sip(self, data: bytes, addr: tuple[str, int], t: int) -> None:
        if self.core is None:
            return
        self.core.receive(data, addr[:2], asyncio.get_running_loop().time())
        self._pump()

    def _pump(self) -> None:
        core, sock = self.core, self._sock
        if core is None or sock is None:
            return
        for data, addr in core.datagrams_to_send():
            sock.sendto(data, addr)
        while (event := core.next_event()) is not None:
            try:
                self._on_event(event)
            except (SipError, OSError) as exc:
                log.warning("SIP agent: %s", exc)
        for data, addr in core.datagrams_to_send():
            sock.sendto(data, addr)
        if self._timer is not None:
            self._timer.cancel()
        when = core.get_timer()
        self._timer = (None if when is None
                       else asyncio.get_running_loop().call_at(when, self._on_timer))

    def _on_timer(self) -> None:
        self._timer = None
        if self.core is not None:
            self.core.handle_timer(asyncio.get_running_loop().time())
            self._pump()

    def _on_event(self, event: ev.ServerEvent) -> None:
        if isinstance(event, ev.IncomingCall):
            task = asyncio.ensure_future(self._answer_safely(event))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif isinstance(event, ev.CallConfirmed):
            leg = self._legs.get(event.call_id)
            if leg is not None:
                leg.session.on_start(event.call_id, now_ns())
        elif isinstance(event, ev.CallEnded):
            self._drop(event.call_id)

    async def _answer_safely(self, call: ev.IncomingCall) -> None:
        try:
            await self._answer(call)
        except (SipError, OSError) as exc:  # e.g. the caller cancelled meanwhile
            log.warning("SIP agent: call %s not answered: %s", call.call_id, exc)
            self._drop(call.call_id)

    async def _answer(self, call: ev.IncomingCall) -> None:
        core, loop = self.core, asyncio.get_running_loop()
        assert core is not None
        now = loop.time
        try:
            offer = Sdp.parse(call.sdp)
        except ParseError as exc:
            log.warning("SIP agent: call %s: bad SDP offer: %s", call.call_id, exc)
            core.reject(call.call_id, 488, now())
            self._pump()
            return
        leg: _Leg | None = None

        def on_rtp(data: bytes, addr: tuple[str, int], t: int) -> None:
            if leg is not None:
                leg.hear(leg.receiver.receive(data, addr, t))

        rtp, _ = await loop.create_datagram_endpoint(lambda: _Udp(on_rtp),
                                                     local_addr=(self.host, 0))
        port = rtp.get_extra_info("sockname")[1]
        answer = build_answer(offer, ip=self.host, port=port,
                              session_id=self.rng.getrandbits(31))
        if isinstance(answer, NoCommonCodec) or call.call_id not in core.calls:
            rtp.close()
            if call.call_id in core.calls:  # not cancelled meanwhile
                core.reject(call.call_id, 488, now(), reason="Not Acceptable Here")
                self._pump()
            return
        body, media = answer
        codec = Codec(media.codec)
        receiver = RtpReceiver({media.payload_type: codec},
                               dtmf_payload_type=media.telephone_event)
        sender = RtpSender.random(self.rng, media.payload_type, codec)
        a = self.agent
        session = AgentSession(line=SipLine(rtp, sender, media.remote_rtp), config=a.config,
                               voice=a.voice, http=a.http, truth=a.truth, rng=a.rng)
        leg = _Leg(rtp, receiver, session)
        self._legs[call.call_id] = leg
        if self._gaps is None:
            self._gaps = loop.call_later(FRAME_NS / NS_PER_S, self._fill_gaps)
        core.answer(call.call_id, body, now())
        self._pump()

    def _fill_gaps(self) -> None:
        """Every 20 ms while calls are up: silence for callers whose RTP has paused."""
        self._gaps = None
        if not self._legs:
            return
        now = now_ns()
        for leg in self._legs.values():
            leg.hear(leg.receiver.flush(now))
            leg.fill_silence(now)
        self._gaps = asyncio.get_running_loop().call_later(FRAME_NS / NS_PER_S, self._fill_gaps)

    def _drop(self, call_id: str) -> None:
        leg = self._legs.pop(call_id, None)
        if leg is not None:
            leg.session.close()
            leg.rtp.close()
