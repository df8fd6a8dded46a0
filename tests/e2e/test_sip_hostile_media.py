"""SIP agents whose SDP or RTP a caller can trip over, with SIPp as the agent.

Each agent here answers in a way a real one may (a host name in ``c=``, RTP
over IPv6, a payload type the answer never named, a codec change in a
re-INVITE); every call must end with a classified outcome and a reason that
says what the agent did, without a traceback, and the figures measured on
the way stay in calls.jsonl.
"""

from __future__ import annotations

import asyncio
import json
import struct

import pytest

from loadcaller.audio.pack import load_pack_audio
from loadcaller.sip.rtp import ULAW_TO_ALAW

from .conftest import read_jsonl
from .sipp_peer import (
    ONE_TURN,
    PCAP_G711A,
    SCENARIOS,
    TWO_TURNS,
    Sipp,
    free_udp_port,
    require_pcap,
    run_loadcaller,
    scenario_copy,
    sip_profile,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

G729_SDP = ("m=audio [media_port] RTP/AVP 18\n      a=rtpmap:18 G729/8000\n"
            "      a=fmtp:18 annexb=no")
PCMU_SDP = "m=audio [media_port] RTP/AVP 0\n      a=rtpmap:0 PCMU/8000"


def answering_with(directory, connection: str):
    """uas_g729_only.xml answering PCMU with ``c=`` ``connection`` instead."""
    return scenario_copy(directory, "uas_g729_only", {
        G729_SDP: PCMU_SDP, "c=IN IP[media_ip_type] [media_ip]": f"c={connection}"})


async def test_a_host_name_in_the_answers_c_line_is_resolved_and_media_flows(tmp_path):
    xml = answering_with(tmp_path, "IN IP4 localhost")  # RFC 4566 allows a name
    async with Sipp(tmp_path / "sipp", xml, calls=1, rtp_echo=True) as sipp:
        profile = sip_profile(tmp_path / "p.yaml", url=sipp.url, steps=ONE_TURN)
        code, _, err = await run_loadcaller(profile, tmp_path / "r")
        sipp_rc = await sipp.wait(10)
    assert "Traceback" not in err, err[-3000:]
    assert code == 0, err[-3000:]
    calls = read_jsonl(tmp_path / "r" / "calls.jsonl")
    assert [c["outcome"] for c in calls] == ["completed"], calls
    media = calls[0]["media"]
    # SIPp echoed what we sent to localhost's address, and we took it as the agent's RTP
    assert media["packets_sent"] > 20 and media["packets_received"] > 20, media
    assert "rtp_foreign_source" not in media, media
    assert sipp_rc == 0, sipp.report()


async def test_rtp_over_ipv6_in_the_answer_fails_setup_saying_so_and_hangs_up(tmp_path):
    xml = answering_with(tmp_path, "IN IP6 ::1")
    async with Sipp(tmp_path / "sipp", xml, calls=1) as sipp:
        profile = sip_profile(tmp_path / "p.yaml", url=sipp.url, steps=ONE_TURN)
        code, _, err = await run_loadcaller(profile, tmp_path / "r")
        sipp_rc = await sipp.wait(10)
    assert "Traceback" not in err, err[-3000:]
    assert code == 1, err[-3000:]  # its only call failed
    calls = read_jsonl(tmp_path / "r" / "calls.jsonl")
    assert len(calls) == 1 and calls[0]["outcome"] == "failed_setup", calls
    assert "IPv6 address ::1" in calls[0]["reason"], calls
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["calls"]["failed"] == 1
    # the answered dialog was ACKed and then ended with our BYE (SIPp's scenario checks it)
    assert sipp_rc == 0, sipp.report()
    assert len(sipp.received("ACK")) == 1 and len(sipp.received("BYE")) == 1


async def test_rtp_of_a_payload_type_the_answer_never_named_is_no_media_naming_it(tmp_path):
    # the answer chooses PCMU (0), then the agent plays A-law (8): a bridge misconfigured
    # on one side. The caller hears nothing; its record must say why, not "never spoke"
    pcap = require_pcap(PCAP_G711A)
    play = '<nop><action><exec play_pcap_audio="[pcap]"/></action></nop>'
    xml = scenario_copy(tmp_path, "uas_g729_only", {
        G729_SDP: PCMU_SDP, '<recv request="ACK"/>': f'<recv request="ACK"/>\n{play}'})
    async with Sipp(tmp_path / "sipp", xml, calls=1, keys={"pcap": str(pcap)}) as sipp:
        profile = sip_profile(tmp_path / "p.yaml", url=sipp.url, steps=ONE_TURN,
                              no_media_timeout="1.5s")
        code, _, err = await run_loadcaller(profile, tmp_path / "r")
        sipp_rc = await sipp.wait(15)
    assert "Traceback" not in err, err[-3000:]
    assert code == 1, err[-3000:]
    calls = read_jsonl(tmp_path / "r" / "calls.jsonl")
    assert len(calls) == 1 and calls[0]["outcome"] == "no_media", calls
    reason = calls[0]["reason"]
    assert "payload type 8" in reason and "chose 0 (PCMU)" in reason, reason
    media = calls[0]["media"]
    assert media["codec"] == "PCMU"
    assert media["unknown_payload_type"] == media["packets_received"] > 20, media
    assert media["unknown_payload_types"] == "8", media
    assert sipp_rc == 0, sipp.report()


class AgentRtp(asyncio.DatagramProtocol):
    """The agent's RTP for the codec-change test: records each packet's payload type
    and SSRC from the caller, and 1.5 s after the first one (the re-INVITE to PCMA is
    answered by then) plays the greeting as A-law, payload type 8, every 20 ms."""

    def __init__(self) -> None:
        self.got: list[tuple[int, int]] = []  # (payload type, SSRC)
        self.sock: asyncio.DatagramTransport | None = None
        self.task: asyncio.Task[None] | None = None

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) >= 12:
            self.got.append((data[1] & 0x7F, struct.unpack_from("!I", data, 8)[0]))
        if self.task is None:
            self.task = asyncio.ensure_future(self.play(addr))

    async def play(self, to: tuple[str, int]) -> None:
        await asyncio.sleep(1.5)
        alaw = load_pack_audio("agent_greeting").translate(ULAW_TO_ALAW)
        for i in range(min(len(alaw) // 160, 200)):  # bounded: at most 4 s
            header = struct.pack("!BBHII", 0x80, 8, i, 160 * i, 0xA6E47)
            assert self.sock is not None
            self.sock.sendto(header + alaw[160 * i:160 * (i + 1)], to)
            await asyncio.sleep(0.02)


async def test_a_codec_change_by_re_invite_is_sent_and_heard(tmp_path):
    loop = asyncio.get_running_loop()
    port = free_udp_port(even_pair=True)
    agent = AgentRtp()
    agent.sock, _ = await loop.create_datagram_endpoint(lambda: agent,
                                                        local_addr=("127.0.0.1", port))
    try:
        async with Sipp(tmp_path / "sipp", "uas_reinvite_codec", calls=1,
                        keys={"rtpport": str(port)}) as sipp:
            profile = sip_profile(tmp_path / "p.yaml", url=sipp.url, steps=ONE_TURN)
            code, _, err = await run_loadcaller(profile, tmp_path / "r")
            sipp_rc = await sipp.wait(10)
    finally:
        if agent.task is not None:
            agent.task.cancel()
        agent.sock.close()
    assert "Traceback" not in err, err[-3000:]
    assert code == 0, err[-3000:]
    assert sipp_rc == 0, sipp.report()  # our 200 to the re-INVITE chose PCMA
    # we sent PCMU, then PCMA from the re-INVITE on: one stream, one SSRC
    types = [pt for pt, _ in agent.got]
    assert types[0] == 0 and set(types[-20:]) == {8}, types
    assert len({ssrc for _, ssrc in agent.got}) == 1
    # and heard the agent's A-law as audio
    calls = read_jsonl(tmp_path / "r" / "calls.jsonl")
    assert [c["outcome"] for c in calls] == ["completed"], calls
    media = calls[0]["media"]
    assert media["codec"] == "PCMA" and media["packets_received"] > 50, media
    assert "unknown_payload_type" not in media, media


async def test_an_agent_that_vanishes_mid_call_is_named_so_in_the_no_response_reason(
        tmp_path):
    # SIPp echoes our RTP, and is killed a second after it got our ACK: RTP stops, our
    # BYE is never answered. A slow agent and a dead one must not read the same
    sipp = Sipp(tmp_path / "sipp", "uas", calls=1, rtp_echo=True)
    await sipp.start()
    profile = sip_profile(tmp_path / "p.yaml", url=sipp.url, steps=TWO_TURNS,
                          turn_timeout="2s")

    async def kill_after_the_ack() -> None:
        for _ in range(300):  # 30 s at most
            if sipp.received("ACK"):
                await asyncio.sleep(1.0)
                break
            await asyncio.sleep(0.1)
        await sipp.stop(now=True)

    killer = asyncio.ensure_future(kill_after_the_ack())
    try:
        code, _, err = await run_loadcaller(profile, tmp_path / "r")
    finally:
        await killer
        await sipp.stop(now=True)
    assert "Traceback" not in err, err[-3000:]
    assert code == 1, err[-3000:]
    calls = read_jsonl(tmp_path / "r" / "calls.jsonl")
    assert len(calls) == 1 and calls[0]["outcome"] == "no_response", calls
    reason = calls[0]["reason"]
    assert "RTP had stopped" in reason and "BYE went unanswered" in reason, reason
    assert "vanished" in reason, reason
    media = calls[0]["media"]
    assert media["packets_received"] > 10 and media["bye"] == "bye_unanswered", media
    assert media["rtp_quiet_at_end_s"] > 2, media


@pytest.mark.parametrize("header", [
    pytest.param("Contact: <>", id="empty-contact"),
    pytest.param("Contact: <sip:[local_ip]:[local_port]>\n      Record-Route: <sip:proxy",
                 id="unterminated-record-route"),
])
async def test_a_200_whose_contact_or_route_cannot_be_read_is_acked_byed_and_named(
        tmp_path, header):
    # dropped as garbage, the 200 was never ACKed: the call "rang" until setup_timeout
    # and was then CANCELled although the agent had answered it
    xml = scenario_copy(tmp_path, "uas_g729_only", {
        G729_SDP: PCMU_SDP,
        "Contact: <sip:[local_ip]:[local_port];transport=[transport]>": header})
    async with Sipp(tmp_path / "sipp", xml, calls=1) as sipp:
        profile = sip_profile(tmp_path / "p.yaml", url=sipp.url, steps=ONE_TURN,
                              setup_timeout="20s")
        code, _, err = await run_loadcaller(profile, tmp_path / "r")
        sipp_rc = await sipp.wait(10)
    assert "Traceback" not in err, err[-3000:]
    assert code == 1, err[-3000:]
    calls = read_jsonl(tmp_path / "r" / "calls.jsonl")
    assert len(calls) == 1 and calls[0]["outcome"] == "failed_setup", calls
    reason = calls[0]["reason"]
    assert reason.startswith("bad_answer: SIP 200 OK") and "cannot be read" in reason, reason
    assert calls[0]["setup_ms"] is None or calls[0]["setup_ms"] < 10_000, calls
    assert sipp_rc == 0, sipp.report()  # its scenario: the 200 ACKed, then our BYE
    assert not sipp.received("CANCEL")
    assert len(sipp.received("ACK")) == 1 and len(sipp.received("BYE")) == 1


class FloodingRtp(asyncio.DatagramProtocol):
    """The agent's RTP: on the caller's first packet, 20,000 packets of audio (400 s)
    back to back, yielding to the loop every 200; bounded."""

    def __init__(self) -> None:
        self.sock: asyncio.DatagramTransport | None = None
        self.task: asyncio.Task[None] | None = None
        self.sent = 0

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.task is None:
            self.task = asyncio.ensure_future(self.flood(addr))

    async def flood(self, to: tuple[str, int]) -> None:
        audio = load_pack_audio("agent_greeting")
        frames = len(audio) // 160
        for i in range(20_000):
            j = i % frames
            header = struct.pack("!BBHII", 0x80, 0, i & 0xFFFF, 160 * i, 0xF100D)
            assert self.sock is not None
            self.sock.sendto(header + audio[160 * j:160 * (j + 1)], to)
            self.sent += 1
            if i % 200 == 0:
                await asyncio.sleep(0)


async def test_an_rtp_flood_ends_the_call_as_the_agents_error(tmp_path):
    loop = asyncio.get_running_loop()
    port = free_udp_port(even_pair=True)
    agent = FloodingRtp()
    agent.sock, _ = await loop.create_datagram_endpoint(lambda: agent,
                                                        local_addr=("127.0.0.1", port))
    xml = scenario_copy(tmp_path, "uas_g729_only", {
        G729_SDP: PCMU_SDP.replace("[media_port]", str(port))})
    try:
        async with Sipp(tmp_path / "sipp", xml, calls=1) as sipp:
            profile = sip_profile(tmp_path / "p.yaml", url=sipp.url, steps=ONE_TURN)
            code, _, err = await run_loadcaller(profile, tmp_path / "r")
            sipp_rc = await sipp.wait(10)
    finally:
        if agent.task is not None:
            agent.task.cancel()
        agent.sock.close()
    assert "Traceback" not in err, err[-3000:]
    assert code == 1, err[-3000:]
    calls = read_jsonl(tmp_path / "r" / "calls.jsonl")
    assert len(calls) == 1 and calls[0]["outcome"] == "error", calls
    assert "faster than real time" in calls[0]["reason"], calls
    assert calls[0]["media"]["packets_received"] > 500, calls  # more than 10 s of audio
    assert sipp_rc == 0, sipp.report()  # the call was hung up with a BYE


async def test_a_200_without_sdp_after_a_183_with_sdp_keeps_the_early_session(tmp_path):
    # without 100rel the 200 must repeat the 183's answer (RFC 3261 13.2.1); gateways
    # that do not are still connected by phones, so a load test must not fail them
    pcap = require_pcap(PCAP_G711A)
    text = (SCENARIOS / "uas_early_media.xml").read_text()
    ringing, sep, answer = text.partition('<send retrans="500">')
    head, _, tail = answer.partition("Content-Type: application/sdp")
    tail = tail.split("a=rtpmap:8 PCMA/8000", 1)[1]
    xml = tmp_path / "early_then_bare_200.xml"
    xml.write_text(ringing + sep + head + "Content-Length: 0\n" + tail)
    assert xml.read_text().count("m=audio") == 1
    async with Sipp(tmp_path / "sipp", xml, calls=1, keys={"pcap": str(pcap)}) as sipp:
        profile = sip_profile(tmp_path / "p.yaml", url=sipp.url, steps=ONE_TURN)
        code, _, err = await run_loadcaller(profile, tmp_path / "r")
        sipp_rc = await sipp.wait(10)
    assert "Traceback" not in err, err[-3000:]
    assert code == 0, err[-3000:]
    calls = read_jsonl(tmp_path / "r" / "calls.jsonl")
    assert [c["outcome"] for c in calls] == ["completed"], calls
    media = calls[0]["media"]
    assert media["codec"] == "PCMA" and media["packets_received"] > media[
        "early_media_packets"] > 0, media
    assert sipp_rc == 0, sipp.report()
