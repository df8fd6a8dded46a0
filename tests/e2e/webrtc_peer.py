"""A real aiortc answering peer with aiohttp signalling, made to misbehave on request.

Used by tests/e2e/test_webrtc_outcomes.py in-process and by
benchmarks/webrtc_scale.py as a separate process (``python tests/e2e/webrtc_peer.py
--port P``). It answers Pipecat's JSON offer at ``/api/offer`` and WHIP at
``/whip`` (201 + Location, DELETE recorded), and echoes the caller's audio back
through loadcaller's own tap and clock track, pumped by one 20 ms loop for all
its calls (so that a benchmark measures the caller, not this peer).

``mode`` picks the misbehaviour: ``echo`` (none), ``silent`` (answers, sends no
audio), ``no_audio`` (answers recvonly), ``ice_fail`` (its candidates point at a
closed port and it runs no checks), ``dtls_fail`` (a wrong fingerprint),
``track_stop`` (stops sending after ``after_s``), ``close`` (closes the connection
after ``after_s``),
``http503``, ``garbage`` (a non-JSON answer), ``no_sdp`` (JSON without SDP),
``peer_left`` (sends Pipecat's peerLeft after ``after_s``), ``renegotiate`` (asks
for a new offer on the data channel after ``after_s``, as Pipecat does), ``rtvi`` (echo and an
RTVI bot-transcription on the data channel for every second of audio it echoes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import socket
import sys
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from loadcaller.audio.g711 import ulaw_decode
from loadcaller.media.frames import SILENCE_FRAME
from loadcaller.webrtc.media import ClockTrack, TrackTap


def closed_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Leg:
    pc: RTCPeerConnection
    out: ClockTrack
    tap: TrackTap | None = None
    channel: Any = None
    echoed: int = 0
    turns: int = 0
    quiet: int = 0
    greeted: bool = False
    speech: list[bytes] = field(default_factory=list)
    reply: deque[bytes] = field(default_factory=deque)


@dataclass
class Peer:
    mode: str = "echo"
    after_s: float = 1.0
    greeting: tuple[bytes, ...] = ()  # frames said once the caller's audio first arrives
    legs: dict[str, Leg] = field(default_factory=dict)
    offers: list[dict[str, Any]] = field(default_factory=list)  # headers and body seen
    deleted: list[str] = field(default_factory=list)
    patches: list[dict[str, Any]] = field(default_factory=list)
    renegotiated: int = 0
    _pump: asyncio.Task[None] | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/offer", self.pipecat_offer)
        app.router.add_patch("/api/offer", self.pipecat_patch)
        app.router.add_post("/whip", self.whip_offer)
        app.router.add_delete("/whip/{rid}", self.whip_delete)
        app.on_shutdown.append(self._shutdown)
        return app

    async def pipecat_offer(self, request: web.Request) -> web.Response:
        self.offers.append({"headers": dict(request.headers), "body": await request.text()})
        if self.mode == "http503":
            return web.Response(status=503, text="overloaded")
        if self.mode == "garbage":
            return web.Response(text="<html>not json</html>", content_type="text/html")
        if self.mode == "no_sdp":
            return web.json_response({"type": "answer", "pc_id": "x"})
        body = await request.json()
        pc_id = body.get("pc_id") or f"peer-{uuid.uuid4().hex[:12]}"
        sdp = await self._answer(pc_id, body["sdp"])
        return web.json_response({"sdp": sdp, "type": "answer", "pc_id": pc_id})

    async def pipecat_patch(self, request: web.Request) -> web.Response:
        self.patches.append(await request.json())
        return web.json_response({"status": "success"})

    async def whip_offer(self, request: web.Request) -> web.Response:
        self.offers.append({"headers": dict(request.headers), "body": await request.text()})
        rid = uuid.uuid4().hex[:12]
        sdp = await self._answer(rid, await request.text())
        return web.Response(status=201, text=sdp, content_type="application/sdp",
                            headers={"Location": f"/whip/{rid}"})

    async def whip_delete(self, request: web.Request) -> web.Response:
        rid = request.match_info["rid"]
        self.deleted.append(rid)
        leg = self.legs.pop(rid, None)
        if leg is not None:
            await leg.pc.close()
        return web.Response(status=200)

    async def _answer(self, key: str, offer_sdp: str) -> str:
        leg = self.legs.get(key)
        if leg is not None:  # a renegotiation of a session we have: the same connection
            self.renegotiated += 1
            await leg.pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
            await leg.pc.setLocalDescription(await leg.pc.createAnswer())
            return str(leg.pc.localDescription.sdp)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        codec = "opus" if "opus/48000" in offer_sdp else "PCMU"
        leg = self.legs[key] = Leg(pc, ClockTrack(codec))  # type: ignore[arg-type]

        @pc.on("datachannel")
        def _dc(channel: Any) -> None:
            leg.channel = channel

        @pc.on("track")
        def _track(track: Any) -> None:
            for tr in pc.getTransceivers():
                if tr.receiver.track is track:
                    pts = {c.payloadType: ("PCMU" if c.name == "PCMU" else "opus")
                           for c in tr._codecs if c.name in ("PCMU", "opus")}
                    leg.tap = TrackTap(track, tr.receiver, pts)  # type: ignore[arg-type]
                    if self.mode not in ("no_audio",):
                        tr.sender.replaceTrack(leg.out)
                        tr.direction = "sendrecv"
                    else:
                        tr.direction = "recvonly"

        await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        sdp = pc.localDescription.sdp
        if self.mode == "ice_fail":
            port = closed_udp_port()
            sdp = re.sub(r"(a=candidate:\S+ \d+ udp \d+ )(\S+) (\d+)",
                         lambda m: f"{m.group(1)}127.0.0.1 {port}", sdp)
            sdp = re.sub(r"a=candidate:.* tcp .*\r\n", "", sdp)
            await pc.close()  # and it never checks ours: no peer-reflexive rescue
        elif self.mode == "dtls_fail":
            sdp = re.sub(r"(a=fingerprint:sha-256 )(\S+)",
                         lambda m: m.group(1) + ":".join(["AB"] * 32), sdp)
        if self.mode in ("track_stop", "close", "peer_left", "renegotiate"):
            asyncio.get_running_loop().call_later(
                self.after_s, lambda: asyncio.ensure_future(self._misbehave(leg)))
        if self._pump is None:
            self._pump = asyncio.ensure_future(self._echo())
        return sdp

    async def _misbehave(self, leg: Leg) -> None:
        if self.mode == "track_stop":
            for tr in leg.pc.getTransceivers():
                await tr.sender.stop()  # RTCP BYE: the caller's remote track ends
        elif self.mode == "close":
            await leg.pc.close()
        elif self.mode in ("peer_left", "renegotiate") and leg.channel is not None:
            kind = "peerLeft" if self.mode == "peer_left" else "renegotiate"
            leg.channel.send(json.dumps({"type": "signalling", "message": {"type": kind}}))

    async def _echo(self) -> None:
        """Every 20 ms, for all calls in one loop: silence, or the caller's last words back.

        A caller's speech is recorded; 100 ms after it stops, it is played back (a
        turn with a reply that starts after the caller stopped, as an agent's does).
        """
        loop = asyncio.get_running_loop()
        t = loop.time()
        while True:
            t += 0.02
            await asyncio.sleep(max(0.0, t - loop.time()))
            for leg in list(self.legs.values()):
                if leg.tap is None:
                    continue
                if not leg.greeted and leg.tap.stats.received:
                    leg.greeted = True
                    leg.reply.extend(self.greeting)
                for frame in leg.tap.drain(0):
                    if frame.audio and int(np.abs(ulaw_decode(frame.audio)).max()) > 500:
                        leg.speech.append(frame.audio)
                        leg.quiet = 0
                    elif leg.speech:
                        leg.quiet += 1
                        if leg.quiet >= 5:
                            leg.reply.extend(leg.speech)
                            leg.speech.clear()
                            self._say(leg)
                if self.mode == "silent":
                    continue
                leg.out.push(leg.reply.popleft() if leg.reply else SILENCE_FRAME)
                leg.echoed += 1

    def _say(self, leg: Leg) -> None:
        leg.turns += 1
        if self.mode == "rtvi" and leg.channel is not None and leg.channel.readyState == "open":
            leg.channel.send(json.dumps({"label": "rtvi-ai", "type": "bot-transcription",
                                         "data": {"text": f"echo {leg.turns}"}}))

    async def _shutdown(self, app: web.Application) -> None:
        if self._pump is not None:
            self._pump.cancel()
        for leg in list(self.legs.values()):
            await leg.pc.close()
        self.legs.clear()


async def serve(peer: Peer, port: int = 0) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(peer.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    server = site._server
    assert server is not None
    return runner, int(server.sockets[0].getsockname()[1])  # type: ignore[union-attr]


async def _main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--mode", default="echo")
    args = ap.parse_args()
    runner, port = await serve(Peer(mode=args.mode), args.port)
    print(f"READY http://127.0.0.1:{port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_main())
