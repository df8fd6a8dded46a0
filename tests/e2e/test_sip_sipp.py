"""`loadcaller run` over SIP against SIPp as the far end, one behaviour per test.

SIPp plays the agent's side from the scenarios in tests/e2e/sipp/ (or its
built-in ``uas``); each test asserts on both sides: our calls.jsonl, turns.jsonl
and summary.json, and what SIPp received, its statistics and its exit code (0:
every SIPp call went through its scenario; an unexpected or missing message
fails it).
"""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from .conftest import read_jsonl
from .sipp_peer import (
    ONE_TURN,
    PCAP_DIR,
    PCAP_G711A,
    SCENARIOS,
    TWO_TURNS,
    Sipp,
    free_udp_port,
    require_pcap,
    run_loadcaller,
    scenario_copy,
    sip_first_lines,
    sip_profile,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]


def results(out):
    summary = json.loads((out / "summary.json").read_text())
    return read_jsonl(out / "calls.jsonl"), read_jsonl(out / "turns.jsonl"), summary


def digest_params(value: str) -> dict[str, str]:
    assert value.startswith("Digest "), value
    return {k.lower(): v.strip('"') for k, v in
            re.findall(r'(\w+)=("[^"]*"|[^,\s]+)', value[len("Digest "):])}


async def test_echo_calls_complete_with_clean_media_and_measured_turns(tmp_path):
    async with Sipp(tmp_path / "sipp", "uas", calls=2, rtp_echo=True) as sipp:
        profile = sip_profile(tmp_path / "p.yaml", url=sipp.url, users=2)
        code, _, err = await run_loadcaller(profile, tmp_path / "r")
        sipp_rc = await sipp.wait(15)  # the built-in uas lingers 4 s after the BYE
    assert code == 0, err
    calls, turns, summary = results(tmp_path / "r")
    assert [c["outcome"] for c in calls] == ["completed", "completed"], calls
    for call in calls:
        media = call["media"]
        assert call["transport"] == "sip" and call["setup_ms"] > 0
        assert media["codec"] == "PCMU"  # first of our offer, SIPp's only one
        assert media["packets_sent"] > 100 and media["octets_sent"] == 160 * media[
            "packets_sent"]
        assert media["packets_received"] >= 0.9 * media["packets_sent"]
        assert media["lost"] == 0 and media["loss_ratio"] == 0.0
        assert media["malformed"] == 0 and "rtp_foreign_source" not in media
        assert media["early_media_packets"] == 0
        assert media["bye"] == "local_bye"  # our BYE got its 200
        assert media["mos"] > 4.0
    # the echo of our own speech comes back while we speak: answered, overlapping turns
    assert len(turns) == 4
    assert all(t["outcome"] == "answered" and t["overlap"] for t in turns), turns
    assert {t["remote_id"] for t in turns} == {c["remote_id"] for c in calls}
    assert summary["calls"]["completed"] == 2 and summary["calls"]["failed"] == 0
    assert summary["turns"]["answered"] == summary["turns"]["count"] == 4
    # SIPp's side: two calls through its scenario, none failed
    assert sipp_rc == 0, sipp.report()
    stats = sipp.stats()
    assert stats["SuccessfulCall(C)"] == "2" and stats["FailedCall(C)"] == "0", sipp.report()
    invite = sipp.received("INVITE")[0]
    assert "m=audio " in invite.body and "PCMU/8000" in invite.body
    assert ";rport" in (invite.header("Via") or "")
    assert len(sipp.received("BYE")) == 2
    # remote_id is the SIP Call-ID, as SIPp saw it
    assert {i.header("Call-ID") for i in sipp.received("INVITE")} == {
        c["remote_id"] for c in calls}


@pytest.mark.parametrize("password", ["s3cret", "wrong"])
async def test_digest_challenge_is_answered_and_a_wrong_password_fails_setup(
        tmp_path, password):
    async with Sipp(tmp_path / "sipp", "uas_auth", calls=1, rtp_echo=True) as sipp:
        profile = sip_profile(tmp_path / "p.yaml", url=sipp.url, steps=ONE_TURN,
                              target='auth_username: alice, auth_password: "${SIPP_PW}"')
        code, _, err = await run_loadcaller(profile, tmp_path / "r",
                                            env={"SIPP_PW": password})
        sipp_rc = await sipp.wait(10)
    assert code == (1 if password == "wrong" else 0), err  # a run whose calls all fail exits 1
    assert password not in err  # a secret is never printed
    calls, _, summary = results(tmp_path / "r")
    invites = sipp.received("INVITE")
    assert len(invites) == 2, list(sip_first_lines(sipp.messages()))
    first, retry = invites
    assert first.header("Authorization") is None
    auth = digest_params(retry.header("Authorization") or "")
    assert auth["username"] == "alice" and auth["realm"] == "sipp.test"
    assert auth["uri"] == sipp.url and auth["nonce"].endswith("a1")
    assert auth["qop"] == "auth" and auth["nc"] == "00000001" and auth["cnonce"]
    assert auth["opaque"] == "5ccc069c403ebaf9" and len(auth["response"]) == 32
    assert retry.header("Call-ID") == first.header("Call-ID")
    assert retry.header("From") == first.header("From")
    assert retry.header("CSeq") == "2 INVITE" and first.header("CSeq") == "1 INVITE"
    assert retry.header("Via") != first.header("Via")  # a new transaction, a new branch
    # the 401 is ACKed inside its transaction: its CSeq number, the INVITE's branch
    ack = sipp.received("ACK")[0]
    assert ack.header("CSeq") == "1 ACK" and ack.header("Via") == first.header("Via")
    statuses = [m.status for m in sipp.messages()
                if m.sent and (m.header("CSeq") or "").endswith("INVITE")]
    assert sipp_rc == 0, sipp.report()
    if password == "s3cret":  # SIPp's verifyauth accepted it: 180, 200
        assert statuses == [401, 180, 200], statuses
        assert [c["outcome"] for c in calls] == ["completed"], calls
        assert calls[0]["media"]["packets_received"] > 0
        assert len(sipp.received("BYE")) == 1
    else:  # challenged again
        assert statuses == [401, 401], statuses
        assert len(calls) == 1 and calls[0]["outcome"] == "failed_setup", calls
        reason = calls[0]["reason"]
        assert "auth" in reason and "401" in reason, reason
        assert "our credentials were refused" in reason, reason
        assert summary["calls"]["failed"] == 1
        assert len(sipp.received("ACK")) == 2 and not sipp.received("BYE")


async def test_early_media_from_a_183_is_heard_before_the_answer(tmp_path):
    require_pcap(PCAP_G711A)
    keys = {"pcap": str(PCAP_G711A)}
    async with Sipp(tmp_path / "sipp", "uas_early_media", calls=1, keys=keys) as sipp:
        profile = sip_profile(tmp_path / "p.yaml", url=sipp.url, steps=ONE_TURN)
        code, _, err = await run_loadcaller(profile, tmp_path / "r")
        sipp_rc = await sipp.wait(10)
    assert code == 0, err
    calls, _, _ = results(tmp_path / "r")
    assert [c["outcome"] for c in calls] == ["completed"], calls
    media = calls[0]["media"]
    # our offer has PCMA; the 183 and the 200 answered with it only
    invite = sipp.received("INVITE")[0]
    assert "a=rtpmap:8 PCMA/8000" in invite.body
    assert media["codec"] == "PCMA"
    # 1.5 s of the pcap (236 packets in 7 s) before the 200, the rest after it
    assert 25 <= media["early_media_packets"] <= 80, media
    assert media["packets_received"] > media["early_media_packets"]
    assert media["lost"] == 0 and media["malformed"] == 0
    assert "rtp_foreign_source" not in media
    assert calls[0]["setup_ms"] >= 1400  # setup ends at the 200, not at the 183
    assert sipp_rc == 0, sipp.report()


async def test_far_end_bye_mid_call_is_agent_hangup_and_classifies_the_pending_turn(
        tmp_path):
    # SIPp answers, sends one DTMF event and no speech, and hangs up 3 s after the ACK,
    # while the caller waits for a reply to its first sentence (about 1.9 s long). (The DTMF event
    # works around the media_stats defect of test_answered_call_without_any_rtp_...)
    keys = {"pcap": str(require_pcap(PCAP_DIR / "dtmf_2833_1.pcap"))}
    async with Sipp(tmp_path / "sipp", "uas_remote_bye", calls=1, keys=keys) as sipp:
        profile = sip_profile(tmp_path / "p.yaml", url=sipp.url, steps=TWO_TURNS,
                              turn_timeout="5s")
        code, _, err = await run_loadcaller(profile, tmp_path / "r")
        sipp_rc = await sipp.wait(10)
    assert code == 1, err  # its only call failed: the run says so (exit 1)
    calls, turns, summary = results(tmp_path / "r")
    assert len(calls) == 1 and calls[0]["outcome"] == "agent_hangup", calls
    assert "BYE" in calls[0]["reason"]
    assert [t["outcome"] for t in turns] == ["agent_hangup"], turns
    assert turns[0]["latency_ms"] is None
    assert calls[0]["turns"] == 1 and calls[0]["turns_answered"] == 0
    assert summary["calls"]["outcomes"] == {"agent_hangup": 1}
    assert calls[0]["media"]["bye"] == "remote_bye"
    # SIPp got our 200 for its BYE (else its scenario fails), and we sent no BYE of ours
    assert sipp_rc == 0, sipp.report()
    assert len(sipp.received(status=200)) == 1 and not sipp.received("BYE")


async def test_answered_call_without_any_rtp_ends_no_media_and_is_recorded(tmp_path):
    async with Sipp(tmp_path / "sipp", "uas") as sipp:  # built-in uas, no -rtp_echo
        profile = sip_profile(tmp_path / "p.yaml", url=sipp.url, steps=ONE_TURN,
                              no_media_timeout="1.5s")
        code, _, err = await run_loadcaller(profile, tmp_path / "r")
    assert code == 1, err  # its only call failed: the run says so (exit 1)
    calls, _, summary = results(tmp_path / "r")
    assert "Traceback" not in err, err[-2000:]
    assert len(calls) == 1 and calls[0]["outcome"] == "no_media", (calls, summary["calls"])
    assert "no RTP within 1.5s" in calls[0]["reason"]
    assert calls[0]["media"]["packets_received"] == 0
    assert calls[0]["media"]["packets_sent"] > 0
    assert len(sipp.received("BYE")) == 1  # we hung up


async def test_reinvite_hold_and_moved_port_are_answered_and_the_call_carries_on(tmp_path):
    keys = {"deadport": str(free_udp_port())}  # the first SDP's RTP port: nobody there
    async with Sipp(tmp_path / "sipp", "uas_reinvite", calls=1, rtp_echo=True,
                    keys=keys) as sipp:
        profile = sip_profile(tmp_path / "p.yaml", url=sipp.url, steps=TWO_TURNS)
        code, _, err = await run_loadcaller(profile, tmp_path / "r")
        sipp_rc = await sipp.wait(10)
    assert code == 0, err
    # SIPp checked both 200s (SDP, PCMU, recvonly then sendrecv) and got its ACKs
    assert sipp_rc == 0, sipp.report()
    stats = sipp.stats()
    assert stats["SuccessfulCall(C)"] == "1" and stats["FailedCall(C)"] == "0", sipp.report()
    answers = [m for m in sipp.received(status=200) if m.header("CSeq") in
               ("1 INVITE", "2 INVITE")]
    assert [a.header("CSeq") for a in answers] == ["1 INVITE", "2 INVITE"]
    hold, resume = (a.body for a in answers)
    assert "a=recvonly" in hold and "a=sendrecv" in resume
    versions = [int(b.split("o=", 1)[1].split()[2]) for b in (hold, resume)]
    offer_version = int(sipp.received("INVITE")[0].body.split("o=", 1)[1].split()[2])
    assert offer_version < versions[0] < versions[1]  # RFC 3264 8: a changed SDP, a new version
    calls, turns, _ = results(tmp_path / "r")
    assert [c["outcome"] for c in calls] == ["completed"], calls
    media = calls[0]["media"]
    # only the moved port echoes: audio came back, so we followed the move
    assert media["packets_received"] > 50, media
    assert "rtp_foreign_source" not in media and media["malformed"] == 0
    assert len(turns) == 2 and any(t["outcome"] == "answered" for t in turns), turns
    assert len(sipp.received("BYE")) == 1


async def one_failed_setup(tmp_path, scenario) -> tuple[Sipp, int, list, list, dict]:
    """One call to SIPp running ``scenario``; the run exits 1 and the call failed setup."""
    async with Sipp(tmp_path / "sipp", scenario, calls=1) as sipp:
        profile = sip_profile(tmp_path / "p.yaml", url=sipp.url, steps=ONE_TURN)
        code, _, err = await run_loadcaller(profile, tmp_path / "r")
        sipp_rc = await sipp.wait(10)
    assert code == 1, err  # its only call failed: the run says so (exit 1)
    calls, turns, summary = results(tmp_path / "r")
    assert calls and calls[0]["outcome"] == "failed_setup", calls
    return sipp, sipp_rc, calls, turns, summary


@pytest.mark.parametrize(("status", "text", "kind"), [
    (486, "Busy Here", "busy"),
    (503, "Service Unavailable", "unavailable"),
    (404, "Not Found", "not_found"),
])
async def test_rejections_are_failed_setup_with_status_and_class(tmp_path, status, text,
                                                                 kind):
    xml = scenario_copy(tmp_path, "uas_reject", {"486 Busy Here": f"{status} {text}"})
    sipp, sipp_rc, calls, turns, summary = await one_failed_setup(tmp_path, xml)
    reason = calls[0]["reason"]
    assert kind in reason and str(status) in reason and text in reason, reason
    assert not turns and "media" not in calls[0]
    assert summary["calls"]["failed"] >= 1
    assert summary["calls"]["top_failure_reasons"]
    # the ACK of a non-2xx: same transaction (the INVITE's branch), CSeq number, To tag
    assert sipp_rc == 0, sipp.report()
    invite, ack = sipp.received("INVITE")[0], sipp.received("ACK")[0]
    assert ack.header("Via") == invite.header("Via")
    assert ack.header("CSeq") == "1 ACK"
    assert "tag=" in (ack.header("To") or "")
    assert not sipp.received("BYE") and not sipp.received("CANCEL")


async def test_a_latin1_reason_phrase_reaches_report_junit_and_console_intact(tmp_path):
    """An old gateway's reason phrase in Latin-1 (``Occupé``, byte 0xe9: not UTF-8) with
    markup in it: the run still writes its report and a JUnit file every XML parser
    reads, and prints no raw byte; each shows it as ``\\xe9``. Before, the report was
    lost (UnicodeEncodeError) and the JUnit file held ``&#56553;``, which no parser reads."""
    junitparser = pytest.importorskip("junitparser")
    import xml.etree.ElementTree as ET

    phrase = "Occup\u00e9 <script>alert(1)</script>"
    text = (SCENARIOS / "uas_reject.xml").read_text()
    assert "486 Busy Here" in text
    xml = tmp_path / "uas_reject.xml"  # the file declares ISO-8859-1: SIPp sends its bytes
    xml.write_bytes(text.replace("486 Busy Here", f"486 {phrase}").encode("latin-1"))
    async with Sipp(tmp_path / "sipp", xml, calls=1) as sipp:
        profile = sip_profile(tmp_path / "p.yaml", url=sipp.url, steps=ONE_TURN)
        code, out, err = await run_loadcaller(
            profile, tmp_path / "r", "--junit", str(tmp_path / "junit.xml"),
            "--gate", "answered_ratio > 0.5")
        await sipp.wait(10)
    assert code == 1, err
    shown = "Occup\\xe9 "
    # the results hold text (no lone surrogate, which a strict JSON reader refuses)
    lines = (tmp_path / "r" / "calls.jsonl").read_text() + (
        tmp_path / "r" / "summary.json").read_text()
    assert "\\udc" not in lines, lines
    reason = read_jsonl(tmp_path / "r" / "calls.jsonl")[0]["reason"]
    assert reason.startswith(f"busy: SIP 486 {shown}<script>"), reason
    assert shown in out and shown in err, (out, err)
    assert "could not write the report" not in err, err
    assert sorted(p.name for p in (tmp_path / "r").iterdir() if p.name.startswith(".")) == []
    page = (tmp_path / "r" / "report.html").read_text(encoding="utf-8")
    assert f"{shown}&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("<script") == 1  # the page's own
    ET.parse(tmp_path / "junit.xml")  # well-formed, to a strict parser
    suite = next(iter(junitparser.JUnitXml.fromfile(str(tmp_path / "junit.xml"))))
    run = {case.name: case for case in suite}["run"]
    assert shown in run.result[0].message, run.result[0].message


async def test_no_answer_at_all_fails_setup_after_setup_timeout(tmp_path):
    async with Sipp(tmp_path / "sipp", "uas_silent", calls=1) as sipp:
        profile = sip_profile(tmp_path / "p.yaml", url=sipp.url, steps=ONE_TURN,
                              setup_timeout="3s")
        code, _, err = await run_loadcaller(profile, tmp_path / "r")
        await sipp.stop(now=True)  # its call lasts 5 s
    assert code == 1, err  # its only call failed: the run says so (exit 1)
    calls, _, _ = results(tmp_path / "r")
    assert calls and calls[0]["outcome"] == "failed_setup", calls
    assert "no answer within 3s" in calls[0]["reason"], calls[0]["reason"]
    assert 2900 <= calls[0]["duration_ms"] <= 4500
    # timer A: the INVITE went again at 0.5 s and 1.5 s (same branch); no CANCEL
    # without a provisional response (RFC 3261 9.1)
    invites = sipp.received("INVITE")
    assert len(invites) >= 3, list(sip_first_lines(sipp.messages()))
    assert len({i.header("Via") for i in invites}) == 1
    assert not sipp.received("CANCEL")


async def ring_and_give_up(tmp_path) -> tuple[Sipp, list[dict]]:
    """A call that rings (180) past setup_timeout 2s; SIPp is stopped 3 s later,
    or as soon as our ACK of its 487 arrives."""
    async with Sipp(tmp_path / "sipp", "uas_ring_no_answer", calls=1) as sipp:
        profile = sip_profile(tmp_path / "p.yaml", url=sipp.url, steps=ONE_TURN,
                              setup_timeout="2s")
        code, _, err = await run_loadcaller(profile, tmp_path / "r")
        for _ in range(30):
            if sipp.received("ACK"):
                break
            await asyncio.sleep(0.1)
        await sipp.stop(now=True)
    assert code == 1, err  # its only call failed: the run says so (exit 1)
    return sipp, read_jsonl(tmp_path / "r" / "calls.jsonl")


async def test_giving_up_on_a_ringing_call_sends_cancel(tmp_path):
    sipp, calls = await ring_and_give_up(tmp_path)
    assert calls and calls[0]["outcome"] == "failed_setup", calls
    assert "no answer within 2s" in calls[0]["reason"]
    assert 1900 <= calls[0]["duration_ms"] <= 3500
    # RFC 3261 9.1: CANCEL on the INVITE's branch, same Call-ID/From/To, CSeq number
    cancels = sipp.received("CANCEL")
    assert len(cancels) == 1, list(sip_first_lines(sipp.messages()))
    invite = sipp.received("INVITE")[0]
    for name in ("Via", "Call-ID", "From", "To"):
        assert cancels[0].header(name) == invite.header(name), name
    assert cancels[0].header("CSeq") == "1 CANCEL"
    assert cancels[0].first_line.split()[1] == invite.first_line.split()[1]


async def test_the_487_after_our_cancel_is_acked(tmp_path):
    sipp, _ = await ring_and_give_up(tmp_path)
    assert sipp.received("CANCEL")
    acks = sipp.received("ACK")
    assert acks, list(sip_first_lines(sipp.messages()))
    invite = sipp.received("INVITE")[0]
    assert acks[0].header("CSeq") == "1 ACK" and acks[0].header("Via") == invite.header("Via")
    assert "tag=" in (acks[0].header("To") or "")


@pytest.mark.parametrize(("scenario", "kind", "words"), [
    ("uas_no_sdp", "no_sdp", "no SDP"),
    ("uas_g729_only", "no_common_codec", "G729"),
])
async def test_unusable_answer_fails_setup_and_is_acked_then_hung_up(tmp_path, scenario,
                                                                     kind, words):
    sipp, sipp_rc, calls, turns, _ = await one_failed_setup(tmp_path, scenario)
    reason = calls[0]["reason"]
    assert kind in reason and words in reason and "200" in reason, reason
    assert not turns
    # SIPp saw the 2xx ACKed (a new request in the dialog), then a BYE, in that order
    assert sipp_rc == 0, sipp.report()
    ours = [m.first_line.split()[0] for m in sipp.messages() if not m.sent]
    assert ours == ["INVITE", "ACK", "BYE"], ours
    invite, ack, bye = (sipp.received(m)[0] for m in ("INVITE", "ACK", "BYE"))
    assert ack.header("CSeq") == "1 ACK" and bye.header("CSeq") == "2 BYE"
    assert ack.header("Via") != invite.header("Via")  # 2xx ACK: a transaction of its own
    assert ack.header("To") == bye.header("To") and "tag=" in (ack.header("To") or "")
