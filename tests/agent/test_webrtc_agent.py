"""The reference agent over WebRTC, talked to by a real aiortc peer and a real HTTP client.

Both signalling flavours (Pipecat's JSON ``/api/offer`` and WHIP), PCMU and
Opus as the offer prefers, the ground truth keyed by the id the caller gets
back, the call ending when the caller closes its peer connection or DELETEs
its WHIP resource, renegotiation and trickled candidates, and every malformed
request answered with a status and a reason.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
import pytest_asyncio
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription

from loadcaller.agent.dist import parse_distribution
from loadcaller.agent.server import ReferenceAgent
from loadcaller.agent.session import AgentConfig
from loadcaller.agent.webrtc import WebRtcAgent
from loadcaller.agent.webrtc_stamps import SentTrack, WebRtcLine
from loadcaller.audio.pack import load_pack_audio
from loadcaller.audio.vad import ulaw_frame_dbfs
from loadcaller.media.frames import SILENCE_FRAME, PlayedFrame
from loadcaller.timebase import now_ns
from loadcaller.webrtc.media import ClockTrack, TrackTap

pytestmark = pytest.mark.timeout(60)


@dataclass
class Served:
    rtc: WebRtcAgent
    base: str
    truth: io.StringIO
    http: aiohttp.ClientSession


@pytest_asyncio.fixture
async def served() -> AsyncIterator[Served]:
    truth = io.StringIO()
    config = AgentConfig(think=parse_distribution("100ms"),
                         greeting_delay=parse_distribution("50ms"))
    rtc = WebRtcAgent(ReferenceAgent(config, truth=truth, seed=1), host="127.0.0.1",
                      max_calls=3)
    port = await rtc.start(0)
    async with aiohttp.ClientSession() as http:
        yield Served(rtc, f"http://127.0.0.1:{port}", truth, http)
    await rtc.close()


@dataclass
class Caller:
    """A plain aiortc caller: one audio transceiver, the codecs in the order given."""

    codecs: tuple[str, ...] = ("PCMU", "opus")
    pc: RTCPeerConnection = field(
        default_factory=lambda: RTCPeerConnection(RTCConfiguration(iceServers=[])))
    heard: list[PlayedFrame] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.track = ClockTrack("opus" if self.codecs[0] == "opus" else "PCMU")
        self.transceiver = self.pc.addTransceiver(self.track, direction="sendrecv")
        caps = {c.mimeType.lower(): c for c in RTCRtpSender.getCapabilities("audio").codecs}
        self.transceiver.setCodecPreferences([caps[f"audio/{c.lower()}"] for c in self.codecs])
        self.tap: TrackTap | None = None

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def answered(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        self.tap = TrackTap(self.transceiver.receiver.track, self.transceiver.receiver,
                            {0: "PCMU", 96: "opus", 111: "opus"})

    async def talk(self, seconds: float, phrase: str | None = None,
                   after_s: float = 0.0) -> int:
        """Send 20 ms frames for ``seconds`` (``phrase`` from ``after_s``), hearing the
        agent meanwhile; return when the phrase's last frame went out (0 without one)."""
        frames = []
        if phrase is not None:
            audio = load_pack_audio(phrase)
            frames = [audio[i:i + 160] for i in range(0, len(audio) - 159, 160)]
        first = round(after_s / 0.02)
        start, t_end = time.monotonic(), 0
        for k in range(round(seconds / 0.02)):
            i = k - first
            self.track.push(frames[i] if 0 <= i < len(frames) else SILENCE_FRAME)
            if i == len(frames) - 1:
                t_end = now_ns()
            assert self.tap is not None
            self.heard += self.tap.drain(now_ns())
            await asyncio.sleep(max(0.0, start + (k + 1) * 0.02 - time.monotonic()))
        return t_end

    def loud(self, after_ns: int = 0) -> list[PlayedFrame]:
        return [f for f in self.heard if f.t_ns > after_ns and ulaw_frame_dbfs(f.audio) > -40]


def first_codec(sdp: str) -> str:
    """The codec an SDP's audio m-line lists first (the one its sender uses)."""
    lines = sdp.splitlines()
    pt = next(x for x in lines if x.startswith("m=audio")).split()[3]
    return next(x.split()[1] for x in lines if x.startswith(f"a=rtpmap:{pt} "))


def truth_lines(served: Served) -> list[dict[str, object]]:
    return [json.loads(line) for line in served.truth.getvalue().splitlines()]


async def until(condition: object, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_pipecat_offer_pcmu_greets_answers_and_logs_truth_by_pc_id(served: Served) -> None:
    caller = Caller(("PCMU", "opus"))
    async with served.http.post(f"{served.base}/api/offer",
                                json={"sdp": await caller.offer(), "type": "offer"}) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["type"] == "answer" and body["pc_id"] in served.rtc.calls
    # the ground truth's receive instants are read at the socket (aiortc's insides as expected)
    assert served.rtc.calls[body["pc_id"]].exact_arrivals
    assert first_codec(body["sdp"]) == "PCMU/8000"  # as offered
    await caller.answered(body["sdp"])
    t_end = await caller.talk(8.0, "order_number", after_s=4.0)  # after the 3.6 s greeting
    assert caller.loud(0), "no greeting heard"
    # its replies left in the session's own step (sendto), as over SIP
    assert served.rtc.calls[body["pc_id"]].line.direct is not None
    assert caller.loud(t_end), "no reply heard after the caller spoke"
    truth = truth_lines(served)
    assert [r["call_sid"] for r in truth if r.get("turn") == "greeting"] == [body["pc_id"]]
    turns = [r for r in truth if r.get("turn") == 0 and "latency_ms" in r]
    assert len(turns) == 1 and turns[0]["call_sid"] == body["pc_id"]
    assert not turns[0].get("interrupted")
    # the caller hangs up: the agent's side ends too
    await caller.pc.close()
    await until(lambda: not served.rtc.calls)


async def test_whip_opus_first_answered_in_opus_and_delete_ends_the_call(served: Served) -> None:
    caller = Caller(("opus", "PCMU"))
    async with served.http.post(f"{served.base}/whip", data=await caller.offer(),
                                headers={"Content-Type": "application/sdp"}) as resp:
        assert resp.status == 201
        assert resp.content_type == "application/sdp"
        location = resp.headers["Location"]
        answer = await resp.text()
    call_id = location.rsplit("/", 1)[1]
    assert location == f"/whip/{call_id}" and call_id in served.rtc.calls
    assert first_codec(answer) == "opus/48000/2"  # as offered
    await caller.answered(answer)
    t_end = await caller.talk(5.0, "order_number", after_s=1.5)
    assert caller.loud(t_end), "no reply heard in Opus"
    assert [r["call_sid"] for r in truth_lines(served)
            if r.get("turn") == 0 and "latency_ms" in r] == [call_id]
    # a trickled candidate (WHIP's PATCH of an SDP fragment) is applied
    offer = caller.pc.localDescription.sdp
    frag = "a=mid:0\r\n" + next(x for x in offer.splitlines() if x.startswith("a=candidate:"))
    async with served.http.patch(f"{served.base}{location}", data=frag + "\r\n",
                                 headers={"Content-Type": "application/trickle-ice-sdpfrag"}
                                 ) as resp:
        assert resp.status == 204, await resp.text()
    async with served.http.patch(f"{served.base}/whip/nope", data=frag) as resp:
        assert resp.status == 404
    async with served.http.delete(f"{served.base}{location}") as resp:
        assert resp.status == 200
    assert call_id not in served.rtc.calls
    async with served.http.delete(f"{served.base}{location}") as resp:
        assert resp.status == 404
    await until(lambda: caller.pc.connectionState == "closed")


async def test_renegotiation_keeps_the_call_and_trickled_candidates_apply(served: Served) -> None:
    caller = Caller()
    async with served.http.post(f"{served.base}/api/offer",
                                json={"sdp": await caller.offer(), "type": "offer"}) as resp:
        body = await resp.json()
    await caller.answered(body["sdp"])
    pc_id = body["pc_id"]
    await caller.talk(1.0)
    await until(lambda: served.rtc.calls[pc_id].connected)
    async with served.http.post(f"{served.base}/api/offer", json={
            "sdp": await caller.offer(), "type": "offer", "pc_id": pc_id}) as resp:
        again = await resp.json()
    assert resp.status == 200 and again["pc_id"] == pc_id
    await caller.pc.setRemoteDescription(RTCSessionDescription(again["sdp"], "answer"))
    host = next(x[2:] for x in body["sdp"].splitlines() if x.startswith("a=candidate:"))
    patch = {"pc_id": pc_id, "candidates": [
        {"candidate": host, "sdp_mid": "0", "sdp_mline_index": 0},
        {"candidate": "", "sdpMid": "0", "sdpMLineIndex": 0}]}  # camelCase, end of candidates
    async with served.http.patch(f"{served.base}/api/offer", json=patch) as resp:
        assert resp.status == 200, await resp.text()
    t_end = await caller.talk(4.0, "order_number", after_s=0.5)
    assert caller.loud(t_end), "no reply after renegotiation"
    assert len(served.rtc.calls) == 1
    await caller.pc.close()


SDP_VIDEO_ONLY = """v=0\r
o=- 1 1 IN IP4 127.0.0.1\r
s=-\r
t=0 0\r
m=video 9 UDP/TLS/RTP/SAVPF 96\r
c=IN IP4 127.0.0.1\r
a=rtpmap:96 VP8/90000\r
"""


@pytest.mark.parametrize(("body", "status", "reason"), [
    (b"not json", 400, "JSON object"),
    (b"[1, 2]", 400, "JSON object"),
    (b'{"type": "offer"}', 400, "field sdp"),
    (b'{"sdp": "v=0", "type": "answer"}', 400, "field type"),
    (b'{"sdp": "garbage", "type": "offer"}', 400, "no audio"),
    (json.dumps({"sdp": SDP_VIDEO_ONLY, "type": "offer"}).encode(), 400, "no audio"),
    (b'{"sdp": "v=0", "type": "offer", "pc_id": 7}', 400, "field pc_id"),
])
async def test_malformed_offers_get_400_with_a_reason(served: Served, body: bytes, status: int,
                                                      reason: str) -> None:
    async with served.http.post(f"{served.base}/api/offer", data=body,
                                headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == status
        assert reason in (await resp.json())["error"]
    assert not served.rtc.calls


async def test_offers_the_agent_cannot_speak_or_hold_are_refused(served: Served) -> None:
    pcma = Caller(("PCMA",))
    offer = await pcma.offer()
    async with served.http.post(f"{served.base}/api/offer",
                                json={"sdp": offer, "type": "offer"}) as resp:
        assert resp.status == 400
        assert "no common audio codec" in (await resp.json())["error"]
    async with served.http.post(f"{served.base}/whip", data=offer,
                                headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 415
    async with served.http.post(f"{served.base}/whip", data=b"v=0\r\nm=audio\xff",
                                headers={"Content-Type": "application/sdp"}) as resp:
        assert resp.status == 400
    await pcma.pc.close()
    callers = [Caller() for _ in range(4)]  # max_calls is 3
    statuses = []
    for c in callers:
        async with served.http.post(f"{served.base}/api/offer",
                                    json={"sdp": await c.offer(), "type": "offer"}) as resp:
            statuses.append(resp.status)
            if resp.status == 503:
                assert "busy" in (await resp.json())["error"]
    assert statuses == [200, 200, 200, 503]
    for patch, status in [({"pc_id": "nope", "candidates": []}, 404),
                          ({"pc_id": ["not", "a", "string"], "candidates": []}, 404),
                          ({"pc_id": next(iter(served.rtc.calls)), "candidates": "x"}, 400),
                          ({"pc_id": next(iter(served.rtc.calls)),
                            "candidates": [{"candidate": "candidate:garbage"}]}, 400)]:
        async with served.http.patch(f"{served.base}/api/offer", json=patch) as resp:
            assert resp.status == status, await resp.text()
    for c in callers:
        await c.pc.close()


async def test_a_reply_frame_counts_as_sent_once_the_sender_has_taken_it() -> None:
    track = SentTrack("PCMU")
    line = WebRtcLine(track)
    await asyncio.wait_for(line.send_audio(SILENCE_FRAME), 1)  # no sender yet: no wait
    order: list[str] = []

    async def sender() -> None:  # aiortc's RTCRtpSender loop, as far as the track sees it
        for _ in range(2):
            await track.recv()
            order.append("sent")

    task = asyncio.ensure_future(sender())
    await asyncio.sleep(0)  # the sender takes the queued frame and waits for the next
    await asyncio.wait_for(line.send_audio(b"\x00" * 160), 1)
    order.append("stamped")
    assert order == ["sent", "sent", "stamped"]
    await asyncio.wait_for(task, 1)
    track.stop()


async def test_an_answered_caller_that_never_connects_is_dropped(served: Served) -> None:
    served.rtc.connect_timeout_s = 0.5
    caller = Caller()
    async with served.http.post(f"{served.base}/api/offer",
                                json={"sdp": await caller.offer(), "type": "offer"}) as resp:
        pc_id = (await resp.json())["pc_id"]
    assert pc_id in served.rtc.calls  # the caller never applies the answer: no ICE, no DTLS
    await until(lambda: pc_id not in served.rtc.calls)
    assert not [r for r in truth_lines(served) if r.get("call_sid") == pc_id]  # never greeted
    await caller.pc.close()
