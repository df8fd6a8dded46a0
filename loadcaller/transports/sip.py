"""Calls placed over SIP with G.711 over RTP: thin asyncio glue around sans-I/O cores.

:class:`~loadcaller.sip.uac.SipCall` keeps the SIP dialog and its timers,
:class:`~loadcaller.sip.rtp.RtpSender` / :class:`~loadcaller.sip.rtp.RtpReceiver`
the media; this file moves their bytes and arms one timer per call.

- Signalling over UDP (a socket per call, from ``sip_ports`` or ephemeral), TCP,
  or TLS (``sips:`` or ``;transport=tls``; certificates verified unless
  ``tls_verify: false``).
- One RTP port per call from ``rtp_ports`` (even ports), symmetric: we send
  from the port we receive on, to the address the far end's SDP gave (a host
  name there is resolved once; an IPv6 address fails the call, saying so).
- What the caller hears is each RTP packet's audio stamped with its arrival
  instant (no jitter buffer delay is added: the onset is when sound first
  reaches the caller's socket); packets held by the small reorder window keep
  their order. When packets stop (an agent with silence suppression), silence
  frames are heard on the 20 ms grid so the caller's VAD sees time pass.
- Early media (a 183 with SDP) is heard like any other audio: its packets are
  counted in the call's media figures.
- Outcomes: a SIP failure is ``failed_setup`` with the status and its class in
  the reason (``busy: SIP 486 Busy Here``); a far-end BYE is ``agent_hangup``;
  no RTP at all within ``no_media_timeout`` of the answer is ``no_media``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import random
import re
import socket
import ssl
from collections import deque
from typing import Any, Literal

from pydantic import Field, field_validator

from chaos.packet import Impairment
from loadcaller.config import PositiveDuration, Secret
from loadcaller.errors import SetupFailed
from loadcaller.media.frames import FRAME_NS, SILENCE_FRAME, PlayedFrame, SilenceGrid
from loadcaller.media.impair import Held
from loadcaller.media.outcomes import CallOutcome
from loadcaller.printable import printable
from loadcaller.sip import events as ev
from loadcaller.sip.dtmf import DtmfSender
from loadcaller.sip.errors import ParseError, SipError
from loadcaller.sip.headers import Uri
from loadcaller.sip.rtp import Codec, RtpReceiver, RtpSender, media_stats
from loadcaller.sip.sdp import Negotiated, build_offer
from loadcaller.sip.uac import SipCall
from loadcaller.timebase import NS_PER_S, now_ns
from loadcaller.transports.base import CallTransport, Target
from loadcaller.transports.ports import PortPool, PortRange

log = logging.getLogger(__name__)

HOLD_NS = 60 * 1_000_000  # the receiver's reorder window: no silence is made up inside it
BYE_WAIT_S = 2.0  # how long a hangup waits for the BYE's answer before giving up
DIGIT_GAP_FRAMES = 3  # 60 ms of audio between two DTMF tones
LINGER_S = 4.0  # signalling kept open after a call for the core's last transactions
# RTP is real time: an agent whose audio runs this far ahead of the clock sends unpaced
# (TTS written to the socket as fast as it is made); the call ends as its error, and
# what it sent is no longer piled up for the listener (an early-media flood was held
# in full until the answer). A real phone's jitter buffer holds well under a second.
MAX_AHEAD_NS = 10 * NS_PER_S
QUIET_NOTE_S = 2.0  # RTP silent this long at the end is worth a word in a no_response reason
RESOLVE_S = 5.0  # at most this long to resolve a host name an agent's SDP gives for RTP
_LINGERING: set[asyncio.Future[None]] = set()
_CORE_HEADERS = {"via", "from", "to", "call-id", "cseq", "contact", "content-length",
                 "content-type", "max-forwards", "route", "record-route", "authorization",
                 "proxy-authorization"}
_TOKEN = re.compile(r"^[A-Za-z0-9.!%*_+`'~-]+$")
_POOLS: dict[tuple[str, int, int], PortPool] = {}

# SIP calls one process carries with media-clock lag p99 < 5 ms through `loadcaller run`
# (benchmarks/sip_scale.py, 12 s calls against SIPp's UAS echoing every RTP packet, a
# quiet 2-core machine): 300 reached 5.2 ms, 400 did not hold. Each call also receives
# 50 packets a second, so it costs about 1.4 ms of CPU per second against a Twilio
# stream's 0.95. Set below what held
CALLS_PER_PROCESS = 200


class SipTarget(Target):
    """An agent reached by a SIP URI (``target.transport: sip``)."""

    schemes = ("sip", "sips")

    transport: Literal["sip"] = "sip"
    url: str = Field("sip:agent@127.0.0.1:5080",
                     description="sip: or sips: URI; ;transport=tcp|tls picks the signalling")
    from_user: str = "loadcaller"
    display_name: str = "loadcaller"
    auth_username: str | None = Field(None, description="for 401/407 digest challenges")
    auth_password: Secret | None = Field(None, description="${VAR} or {file: PATH}")
    codecs: list[Literal["PCMU", "PCMA"]] = Field(["PCMU", "PCMA"], min_length=1,
                                                  description="offered, in preference order")
    headers: dict[str, str] = Field(default_factory=dict,
                                    description="extra headers on every INVITE (X-...)")
    signalling: Literal["udp", "tcp", "tls"] | None = Field(
        None, description="default: the URI's transport= (sips: means tls, else udp)")
    local_ip: str | None = Field(None, description="address for SDP/Contact (default: route)")
    sip_ports: PortRange | None = Field(None, description="local SIP ports (default ephemeral)")
    rtp_ports: PortRange = Field((16384, 32767), description="local RTP ports, one per call")
    tls_verify: bool = True
    ca_file: str | None = None
    setup_timeout: PositiveDuration = Field(40.0, description="dial to answer, at most")
    no_media_timeout: PositiveDuration = Field(5.0, description="answer to first RTP, at most")

    @field_validator("url")
    @classmethod
    def _sip_uri(cls, v: str) -> str:
        try:
            uri = Uri.parse(v)
        except ParseError as exc:
            raise ValueError(f"{v!r} is not a sip: or sips: URI ({exc})") from None
        if uri.transport not in ("udp", "tcp", "tls"):
            raise ValueError(f"unsupported SIP transport {uri.transport!r} in {v!r}")
        return v

    @field_validator("headers")
    @classmethod
    def _extra_headers(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not _TOKEN.match(name) or name.lower() in _CORE_HEADERS:
                raise ValueError(f"{name!r} cannot be set as an extra header")
            if "\r" in value or "\n" in value:
                raise ValueError(f"header {name!r} has a line break in its value")
        return v

    def new_transport(self, *, call_id: str) -> SipTransport:
        return SipTransport(self, call_id=call_id)

    def per_process(self) -> tuple[int, str]:
        return CALLS_PER_PROCESS, "SIP"


def _pool(host: str, ports: tuple[int, int], step: int) -> PortPool:
    key = (host, *ports)
    if key not in _POOLS:
        first = ports[0] + (ports[0] % step)  # RTP on even ports
        _POOLS[key] = PortPool(first, ports[1], step=step)
    return _POOLS[key]


def _route_ip(host: str) -> str:
    """The local address the system would send to ``host`` from (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((host, 9))
        return str(s.getsockname()[0])


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, on_data: Any) -> None:
        self.on_data = on_data

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.on_data(data, addr, now_ns())


class _Stream(asyncio.Protocol):
    def __init__(self, owner: SipTransport) -> None:
        self.owner = owner
        self.peer: tuple[str, int] = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.peer = transport.get_extra_info("peername")[:2]

    def data_received(self, data: bytes) -> None:
        self.owner._on_sip(data, self.peer, now_ns())

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._on_signalling_lost(exc)


class SipTransport(CallTransport):
    """One call to ``target.url`` (see the module docstring)."""

    name = "sip"

    def __init__(self, target: SipTarget, *, call_id: str) -> None:
        super().__init__()
        self.target = target
        self.call_id = call_id
        self.uri = Uri.parse(target.url)
        self.signalling = target.signalling or self.uri.transport
        self.rng = random.Random()
        self.core: SipCall | None = None
        self._sip_udp: asyncio.DatagramTransport | None = None
        self._sip_stream: asyncio.Transport | None = None
        self._rtp: asyncio.DatagramTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._answered: asyncio.Future[Negotiated] = asyncio.get_running_loop().create_future()
        self._bye: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._media: Negotiated | None = None
        self._early: Negotiated | None = None
        self._adopting = 0  # media changes seen (see _adopt)
        self._last_rtp_ns = 0  # arrival of the agent's latest datagram on the RTP port
        self._first_audio_ns = 0  # arrival of its first audio frame
        self._audio_ns = 0  # audio heard from it in all, in time
        self._flooded = False  # its audio ran MAX_AHEAD_NS ahead of the clock
        self._hangup_ns = 0  # when our hangup began
        self._sender: RtpSender | None = None
        self._receiver: RtpReceiver | None = None
        self._dtmf: DtmfSender | None = None
        self._heard: list[PlayedFrame] = []
        self._silence = SilenceGrid(HOLD_NS)
        self._awaiting_media = True  # no RTP heard yet (checked against no_media_timeout)
        self._t_answer = 0
        self._prev_silent = True
        self._early_packets = 0
        self._foreign = 0
        self._foreign_from: tuple[str, int] | None = None
        self._bye_result = ""
        self._dtmf_unsent = 0
        self._digits: deque[str] = deque()
        self._digit_gap = 0
        self._impair_out: Impairment | None = None
        self._impair_in: Impairment | None = None
        self._held_out: Held[bytes] = Held()  # RTP the outbound model holds back
        self._held_in: Held[tuple[bytes, tuple[str, int]]] = Held()
        self._core_closed: asyncio.Future[None] | None = None  # set while lingering

    def with_impairment(self, *, outbound: Impairment | None,
                        inbound: Impairment | None) -> SipTransport:
        """Impair RTP datagrams themselves: the far end's and our own RTP figures see it."""
        self._impair_out, self._impair_in = outbound, inbound
        return self

    @property
    def remote_id(self) -> str:
        return self.core.call_id if self.core is not None else ""

    # ---- setup ----------------------------------------------------------------------

    async def connect(self) -> None:
        t = self.target
        loop = asyncio.get_running_loop()
        port = self.uri.port or (5061 if self.signalling == "tls" else 5060)
        try:
            infos = await loop.getaddrinfo(self.uri.host, port, family=socket.AF_INET,
                                           type=socket.SOCK_DGRAM)
            remote = (str(infos[0][4][0]), port)
            local_ip = t.local_ip or _route_ip(remote[0])
        except OSError as exc:
            raise SetupFailed(f"cannot resolve {self.uri.host}: {exc}") from None
        self._rtp, _ = await _pool(local_ip, t.rtp_ports, 2).bind(
            local_ip, lambda: _Datagrams(self._on_rtp), "RTP")
        rtp_port = self._rtp.get_extra_info("sockname")[1]
        local = await self._open_signalling(local_ip, remote)
        offer = build_offer(ip=local_ip, port=rtp_port, session_id=self.rng.getrandbits(31),
                            codecs=t.codecs)
        password = t.auth_password.get_secret_value() if t.auth_password else None
        self.core = SipCall(t.url, local, remote, sdp_offer=offer, rng=self.rng,
                            transport=self.signalling, from_user=t.from_user,
                            display_name=t.display_name, auth_username=t.auth_username,
                            auth_password=password, extra_headers=tuple(t.headers.items()),
                            user_agent="loadcaller")
        self.core.start(loop.time())
        self._pump()
        try:
            async with asyncio.timeout(t.setup_timeout):
                media = await asyncio.shield(self._answered)
        except TimeoutError:
            with contextlib.suppress(SipError):  # CANCEL (or BYE if a 200 just came)
                self.core.hangup(loop.time())
            self._pump()
            self._finish_signalling()
            raise SetupFailed(f"no answer within {t.setup_timeout:g}s") from None
        except SetupFailed:
            with contextlib.suppress(SipError):  # still ringing (an early-media flood)
                self.core.hangup(loop.time())  # (a no-op once the core has failed)
            self._pump()
            self._finish_signalling()  # e.g. the ACK and BYE of a 200 without SDP
            raise
        resolved = await self._rtp_address(media)
        if isinstance(resolved, str):  # answered, but its RTP cannot be reached: hang up
            with contextlib.suppress(SipError):
                self.core.hangup(loop.time())
            self._pump()
            self._finish_signalling()
            raise SetupFailed(resolved)
        self._start_media(resolved)

    async def _open_signalling(self, local_ip: str,
                               remote: tuple[str, int]) -> tuple[str, int]:
        t, loop = self.target, asyncio.get_running_loop()
        if self.signalling == "udp":
            if t.sip_ports is not None:
                self._sip_udp, _ = await _pool(local_ip, t.sip_ports, 1).bind(
                    local_ip, lambda: _Datagrams(self._on_sip), "SIP")
            else:
                self._sip_udp, _ = await loop.create_datagram_endpoint(
                    lambda: _Datagrams(self._on_sip), local_addr=(local_ip, 0))
            return tuple(self._sip_udp.get_extra_info("sockname")[:2])  # type: ignore[return-value]
        ctx = None
        if self.signalling == "tls":
            ctx = ssl.create_default_context(cafile=t.ca_file)
            if not t.tls_verify:
                ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        try:
            async with asyncio.timeout(min(10.0, t.setup_timeout)):
                stream, _ = await loop.create_connection(
                    lambda: _Stream(self), remote[0], remote[1], ssl=ctx,
                    server_hostname=self.uri.host if ctx else None)
        except (OSError, TimeoutError) as exc:
            self._close_sockets()
            what = "TLS" if ctx else "TCP"
            raise SetupFailed(f"{what} connect to {remote[0]}:{remote[1]} failed: "
                              f"{exc or 'timed out'}") from None
        self._sip_stream = stream
        return tuple(stream.get_extra_info("sockname")[:2])  # type: ignore[return-value]

    def _start_media(self, media: Negotiated) -> None:
        self._media = media
        self._t_answer = self._silence.grid = now_ns()
        self._sender = RtpSender.random(self.rng, media.payload_type, Codec(media.codec))
        if media.telephone_event is not None:
            self._dtmf = DtmfSender(self._sender, media.telephone_event)
        if self._receiver is not None:  # made for early media: the answer may differ
            self._receiver.accept(media.payload_type, Codec(media.codec),
                                  dtmf_payload_type=media.telephone_event)

    async def _rtp_address(self, media: Negotiated) -> Negotiated | str:
        """``media`` with an IPv4 address to send RTP to, or why there is none.

        RFC 4566 allows a host name in ``c=``; uvloop's ``sendto`` takes only an
        address (a name raised ValueError out of the media clock's tick, every
        20 ms, as the caller's own error). The name is resolved once, here.
        """
        host, port = media.remote_rtp
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = None
        if ip is not None:
            if ip.version == 4 or media.on_hold:
                return media
            return (f"the agent's SDP puts its RTP at the IPv6 address {host} "
                    "(we offered IPv4): this caller sends RTP over IPv4 only")
        try:
            async with asyncio.timeout(RESOLVE_S):
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, port, family=socket.AF_INET, type=socket.SOCK_DGRAM)
        except (OSError, TimeoutError) as exc:
            return (f"the agent's SDP names RTP host {host!r}, which does not resolve "
                    f"to an IPv4 address: {exc or 'timed out'}")
        return dataclasses.replace(media, remote_rtp=(str(infos[0][4][0]), port))

    def _adopt(self, media: Negotiated, early: bool) -> None:
        """Take the media of a 183 or a re-INVITE/UPDATE once its RTP address is known."""
        self._adopting += 1
        ticket = self._adopting  # a later change wins over a slower lookup

        async def resolve() -> None:
            resolved = await self._rtp_address(media)
            if ticket != self._adopting:
                return
            if isinstance(resolved, str):
                if early:
                    log.info("call %s: early media ignored: %s", self.call_id, resolved)
                else:
                    self._end(CallOutcome.ERROR, resolved)
            elif early:
                self._early = resolved
            elif self._media is not None:
                self._change_media(resolved)

        host = media.remote_rtp[0]
        with contextlib.suppress(ValueError):
            if ipaddress.ip_address(host).version == 4:
                if early:
                    self._early = media
                else:
                    self._change_media(media)
                return
        task = asyncio.ensure_future(resolve())
        _LINGERING.add(task)
        task.add_done_callback(_LINGERING.discard)

    def _change_media(self, media: Negotiated) -> None:
        """A re-INVITE/UPDATE moved the RTP, put us on hold, or changed the codec.

        A new codec is sent and heard from now on: the sender kept the first
        answer's payload type and the receiver counted the agent's new one as
        unknown, so a codec change was silence both ways.
        """
        self._media = media
        sender = self._sender
        if sender is not None and (sender.payload_type != media.payload_type
                                   or sender.codec != media.codec):
            sender.switch(media.payload_type, Codec(media.codec))
        if sender is not None and (self._dtmf is None or self._dtmf.payload_type
                                   != media.telephone_event) and not self._busy_dtmf():
            self._dtmf = (None if media.telephone_event is None
                          else DtmfSender(sender, media.telephone_event))
        if self._receiver is not None:
            self._receiver.accept(media.payload_type, Codec(media.codec),
                                  dtmf_payload_type=media.telephone_event)

    def _busy_dtmf(self) -> bool:
        return self._dtmf is not None and self._dtmf.busy

    def _receiver_for(self, media: Negotiated) -> RtpReceiver:
        if self._receiver is None:
            self._receiver = RtpReceiver({media.payload_type: Codec(media.codec)},
                                         dtmf_payload_type=media.telephone_event)
        return self._receiver

    # ---- the media clock's side --------------------------------------------------------

    def send_audio(self, frame: bytes) -> None:
        sock, media, sender = self._rtp, self._media, self._sender
        if sock is None or media is None or sender is None or media.on_hold:
            return
        dtmf = self._dtmf
        if dtmf is not None and not dtmf.busy and self._digits:
            if self._digit_gap > 0:  # audio between two digits' tones
                self._digit_gap -= 1
            else:
                dtmf.start(self._digits.popleft())
                self._digit_gap = DIGIT_GAP_FRAMES
        packet = dtmf.tick() if dtmf is not None and dtmf.busy else None
        if packet is None:
            silent = frame is SILENCE_FRAME
            packet = sender.audio(frame, spurt_start=self._prev_silent and not silent)
            self._prev_silent = silent
        if self._impair_out is None:
            sock.sendto(packet, media.remote_rtp)
            return
        now = now_ns() / NS_PER_S
        for at, data in self._impair_out.process(packet, now):
            self._held_out.add(at, data)
        for _, data in self._held_out.due(now):
            sock.sendto(data, media.remote_rtp)

    def heard(self, now: int) -> list[PlayedFrame]:
        if self._held_in:
            self._release_inbound(now)
        frames, self._heard = self._heard, []
        receiver = self._receiver
        if receiver is not None:
            frames += receiver.flush(now)
        if frames:
            self._silence.heard(frames)
            self._awaiting_media = False
        elif self._media is not None:
            # no packet for a while: the caller hears silence pass (silence suppression)
            frames = self._silence.fill(now)
            if (self._awaiting_media
                    and now - self._t_answer > self.target.no_media_timeout * NS_PER_S):
                # checked once: RTP without audio yet (DTMF only, held packets) is media,
                # RTP of payload types the answer never named is not
                if receiver is not None and (receiver.stats().received
                                             > receiver.unknown_payload_type):
                    self._awaiting_media = False
                else:
                    self._no_media()
        return frames

    def send_dtmf(self, digit: str) -> None:
        if self._dtmf is None:
            self._dtmf_unsent += 1
            log.warning("call %s: the far end did not accept telephone-event; DTMF %r not "
                        "sent", self.call_id, digit)
            return
        self._digits.append(digit)  # sent one after another from the media clock's ticks

    # ---- receive paths -------------------------------------------------------------------

    def _on_rtp(self, data: bytes, addr: tuple[str, int], t: int) -> None:
        media = self._media
        if media is None:
            media = self._early  # early media: negotiated from the 183
            if media is None:
                return
            self._early_packets += 1
        if addr[:2] != media.remote_rtp:
            self._foreign += 1
            self._foreign_from = addr[:2]
            return
        self._last_rtp_ns = t
        if self._flooded:  # counted still, no longer heard
            self._receiver_for(media).receive(data, addr, t)
            return
        if self._impair_in is not None:  # the network's share: delivered by heard()
            for at, out in self._impair_in.process(data, t / NS_PER_S):
                self._held_in.add(at, (out, addr[:2]))
            return
        frames = self._receiver_for(media).receive(data, addr, t)
        if frames:
            self._heard += frames
            self._pace(len(frames), t)

    def _release_inbound(self, now: int) -> None:
        media = self._media or self._early
        for at, (data, addr) in self._held_in.due(now / NS_PER_S):
            if media is not None and not self._flooded:
                frames = self._receiver_for(media).receive(data, addr, int(at * NS_PER_S))
                self._heard += frames
                self._pace(len(frames), int(at * NS_PER_S))

    def _pace(self, frames: int, t: int) -> None:
        """Count audio heard; end the call when it runs MAX_AHEAD_NS ahead of real time."""
        if not self._first_audio_ns:
            self._first_audio_ns = t
        self._audio_ns += frames * FRAME_NS
        if self._audio_ns - (t - self._first_audio_ns) <= MAX_AHEAD_NS:
            return
        self._flooded = True
        self._heard = []
        why = (f"the agent sent RTP faster than real time: its audio ran more than "
               f"{MAX_AHEAD_NS // NS_PER_S} s ahead of the clock")
        if not self._answered.done():
            self._answered.set_exception(SetupFailed(why))  # early media: CANCEL it
        self._end(CallOutcome.ERROR, why)

    def _on_sip(self, data: bytes, addr: tuple[str, int], t: int) -> None:
        if self.core is None:
            return
        self.core.receive(data, addr[:2], asyncio.get_running_loop().time())
        self._pump()

    def _on_signalling_lost(self, exc: Exception | None) -> None:
        if self._sip_stream is None:
            return
        self._sip_stream = None
        if not self._answered.done():
            self._answered.set_exception(SetupFailed(f"SIP connection closed: {exc or 'EOF'}"))
        self._end(CallOutcome.DROPPED, f"SIP connection lost: {exc or 'closed by the far end'}")

    def _no_media(self) -> None:
        why = f"no RTP within {self.target.no_media_timeout:g}s of the answer"
        receiver, media = self._receiver, self._media
        if receiver is not None and receiver.unknown_payload_type and media is not None:
            types = ", ".join(map(str, sorted(receiver.unknown_payload_types)))
            why = (f"no audio within {self.target.no_media_timeout:g}s of the answer: "
                   f"its RTP came with payload type {types}, but the agent's SDP answer "
                   f"chose {media.payload_type} ({media.codec})")
        if self._foreign and self._foreign_from is not None:
            host, port = self._foreign_from
            why += "; " if receiver is not None and receiver.unknown_payload_type else (
                " from the SDP's address; ")
            why += f"{self._foreign} packets came from {host}:{port} instead"
        self._end(CallOutcome.NO_MEDIA, why)

    # ---- the SIP core: bytes, events, one timer ---------------------------------------------

    def _pump(self) -> None:
        core = self.core
        if core is None:
            return
        for data, addr in core.datagrams_to_send():
            if self._sip_udp is not None:
                self._sip_udp.sendto(data, addr)
            elif self._sip_stream is not None:
                self._sip_stream.write(data)
        while (event := core.next_event()) is not None:
            self._on_event(event)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if core.closed and self._core_closed is not None and not self._core_closed.done():
            self._core_closed.set_result(None)
        when = core.get_timer()
        if when is not None and not core.closed:
            self._timer = asyncio.get_running_loop().call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.core is not None:
            try:
                self.core.handle_timer(asyncio.get_running_loop().time())
            except SipError:
                log.exception("call %s: SIP timer", self.call_id)
            self._pump()

    def _on_event(self, event: ev.SipEvent) -> None:
        if isinstance(event, ev.EarlyMedia):
            self._adopt(event.media, early=True)
        elif isinstance(event, ev.Answered):
            if not self._answered.done():
                self.answered_ns = now_ns()
                self._answered.set_result(event.media)
        elif isinstance(event, ev.Failed):
            # the reason phrase is the far end's bytes (surrogateescape'd): the results
            # keep them as \xNN, not as lone surrogates a strict JSON reader refuses
            phrase = printable(event.reason, one_line=True)
            why = f"{event.outcome}: SIP {event.status} {phrase}".strip()
            if event.status == 0:
                why = f"{event.outcome}: {phrase}"
            if not self._answered.done():
                self._answered.set_exception(SetupFailed(why))
            else:
                self._end(CallOutcome.DROPPED, why)
        elif isinstance(event, ev.MediaChanged) and self._media is not None:
            self._adopt(event.media, early=False)
        elif isinstance(event, ev.RemoteBye):
            self._end(CallOutcome.AGENT_HANGUP, "the agent hung up (BYE)")
            if not self._bye.done():
                self._bye.set_result("remote_bye")
        elif isinstance(event, ev.Ended) and not self._bye.done():
            self._bye.set_result(event.reason)

    # ---- ending -----------------------------------------------------------------------------

    async def hangup(self) -> None:
        """BYE (or CANCEL while ringing); wait briefly for its answer; close the sockets."""
        core = self.core
        self._hangup_ns = self._hangup_ns or now_ns()
        if core is not None and not self._bye.done():
            with contextlib.suppress(SipError):
                core.hangup(asyncio.get_running_loop().time())
            self._pump()
            try:
                async with asyncio.timeout(BYE_WAIT_S):
                    self._bye_result = await asyncio.shield(self._bye)
            except TimeoutError:
                self._bye_result = "bye_unanswered"
                log.info("call %s: our BYE was not answered within %gs", self.call_id,
                         BYE_WAIT_S)
        elif self._bye.done():
            self._bye_result = self._bye.result()
        self._finish_signalling()
        self._end(CallOutcome.COMPLETED, "caller hung up")

    def silence_note(self) -> str:
        """How long the agent's RTP had stopped when we hung up, and whether our BYE was
        answered: an agent that vanished stops both (RTP pauses alone are normal: many
        agents suppress silence, so a pause never ends a call by itself)."""
        quiet_s = self._quiet_at_end_s()
        notes = []
        if quiet_s is not None and quiet_s >= QUIET_NOTE_S:
            # how long goes in calls.jsonl's media (rtp_quiet_at_end_s): a reason stays
            # the same text for every call it describes, so that the summary groups them
            notes.append(f"the agent's RTP had stopped over {QUIET_NOTE_S:g}s before we hung up"
                         if self._last_rtp_ns else "no RTP from the agent at all")
        if self._bye_result in ("bye_unanswered", "cancel_unanswered"):
            notes.append("our BYE went unanswered")
        if len(notes) == 2:
            notes.append("the agent seems to have vanished")
        return "; ".join(notes)

    def _quiet_at_end_s(self) -> float | None:
        """Seconds from the agent's last RTP (or the answer) to our hangup, once answered."""
        if self._media is None:
            return None
        end = self._hangup_ns or now_ns()
        return (end - (self._last_rtp_ns or self._t_answer)) / NS_PER_S

    def _finish_signalling(self) -> None:
        """Close RTP now; keep signalling open while the core still has work.

        A CANCEL's 487 must be ACKed, a BYE retransmitted until it is answered:
        the core's transactions run on for up to LINGER_S after the call is over.
        """
        if self._rtp is not None:
            self._rtp.close()
            self._rtp = None
        core = self.core
        if core is None or core.closed or (self._sip_udp is None and self._sip_stream is None):
            self._close_sockets()
            return
        task = asyncio.ensure_future(self._linger(core))
        _LINGERING.add(task)
        task.add_done_callback(_LINGERING.discard)

    async def _linger(self, core: SipCall) -> None:
        self._core_closed = asyncio.get_running_loop().create_future()
        try:
            if not core.closed:
                async with asyncio.timeout(LINGER_S):
                    await self._core_closed  # resolved by _pump when the core closes
        except TimeoutError:
            pass
        finally:
            self._close_sockets()

    def _close_sockets(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for sock in (self._sip_udp, self._sip_stream, self._rtp):
            if sock is not None:
                sock.close()
        self._sip_udp = self._sip_stream = self._rtp = None

    @property
    def media_stats(self) -> dict[str, Any] | None:
        if self._receiver is None and self._sender is None:
            return None
        receiver = self._receiver or RtpReceiver({0: Codec.PCMU})  # no RTP ever came
        out: dict[str, Any] = media_stats(self._sender, receiver).to_json()
        if self._media is not None:
            out["codec"] = self._media.codec
        out["early_media_packets"] = self._early_packets
        if self._foreign:
            out["rtp_foreign_source"] = self._foreign
        if receiver.unknown_payload_type:  # e.g. PCMA sent on a call that agreed PCMU
            out["unknown_payload_type"] = receiver.unknown_payload_type
            out["unknown_payload_types"] = ",".join(
                map(str, sorted(receiver.unknown_payload_types)))
        for name in ("ssrc_changes", "addr_changes", "seq_jumps"):
            if count := getattr(receiver, name):
                out[name] = count
        if self._dtmf_unsent:
            out["dtmf_unsent"] = self._dtmf_unsent
        if self._bye_result:
            out["bye"] = self._bye_result
        quiet_s = self._quiet_at_end_s()
        if quiet_s is not None and self._hangup_ns:
            out["rtp_quiet_at_end_s"] = round(max(0.0, quiet_s), 3)
        if self.core is not None and self.core.garbage:
            out["sip_garbage"] = self.core.garbage
        return out
