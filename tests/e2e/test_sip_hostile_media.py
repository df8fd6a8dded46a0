"""SIP agents whose SDP or RTP a caller can trip over, with SIPp as the agent.

Each agent here answers in a way a real one may (a host name in ``c=``, RTP
over IPv6, a payload type the answer never named, a codec change in a
re-INVITE); every call must end with a classified outcome and a reason that
says what the agent did, without a traceback, and the figures measured on
the way stay in calls.jsonl.
"""

from __future__ import annotations

import json

import pytest

from .conftest import read_jsonl
from .sipp_peer import (
    ONE_TURN,
    PCAP_G711A,
    Sipp,
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
