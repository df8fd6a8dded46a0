"""SIPp as the caller against the reference agent's SIP side (`loadcaller agent --transport sip`).

The other SIP tests point our callers at SIPp; these point SIPp at our answering
side (loadcaller/sip/uas.py under loadcaller/agent/sip.py), so both halves of our
SIP code meet an implementation someone else wrote. SIPp fails a call on any
message its scenario does not expect and counts its calls itself: its exit code
and its final statistics (``-trace_stat``) are the assertions, with its message
trace (``-trace_msg``) for the details. The scenarios are tests/e2e/sipp/uac_*.xml.

The caller's speech is the RTP of SIPp's own g711a.pcap (A-law, 30 ms packets):
its first 3.6 s of speech, then 1.5 s of A-law silence written after it, because
the full recording ends in speech and then its RTP simply stops, and the agent
ends a caller's turn on silence it hears; a caller whose RTP stops is heard as silence
(tested below too).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import re
import shutil
import struct
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests.peers import missing_peer, require_binary

from .conftest import Proc, read_jsonl, start
from .ports import free_port, free_span

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

SCENARIOS = Path(__file__).resolve().parent / "sipp"
PCAP_DIRS = (Path("/usr/share/sip-tester"), Path("/usr/share/doc/sip-tester/examples/pcap"))
SIPP_CALL_ID = re.compile(r"^\d+-\d+@127\.0\.0\.1$")  # SIPp's [call_id]: number-pid@ip
ALAW_SILENCE = 0xD5


# ---- ports and pcaps ----------------------------------------------------------------


def g711a_pcap() -> Path:
    """SIPp's sample recording of speech (Debian package sip-tester)."""
    for d in PCAP_DIRS:
        if (d / "g711a.pcap").exists():
            return d / "g711a.pcap"
    missing_peer("SIPp's g711a.pcap is not installed: install the Debian package sip-tester")


def speech_then_silence(src: Path, dst: Path, *, speech_s: float, silence_s: float) -> None:
    """Copy the first ``speech_s`` of the RTP in pcap ``src`` to ``dst``, then add
    ``silence_s`` of A-law silence: packets like its last, with the next sequence
    numbers and timestamps, on the same packet clock."""
    data = src.read_bytes()
    order = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">"}.get(data[:4])
    assert order is not None, f"{src} is not a microsecond pcap file"
    record = struct.Struct(order + "IIII")  # seconds, microseconds, captured, length
    kept: list[tuple[int, bytes]] = []  # (time in us, frame)
    pos = 24
    while pos + record.size <= len(data):
        sec, usec, size, _ = record.unpack_from(data, pos)
        at = sec * 1_000_000 + usec
        if kept and at - kept[0][0] >= speech_s * 1e6:
            break
        kept.append((at, data[pos + record.size:pos + record.size + size]))
        pos += record.size + size
    assert len(kept) > 2, f"no RTP in {src}"
    (t_last, last), step = kept[-1], kept[-1][0] - kept[-2][0]
    rtp = 14 + (last[14] & 0x0F) * 4 + 8  # Ethernet, IPv4 (IHL words), UDP
    seq, stamp = struct.unpack_from("!HI", last, rtp + 2)
    samples = len(last) - rtp - 12
    for i in range(1, round(silence_s * 1e6 / step) + 1):
        frame = bytearray(last)
        struct.pack_into("!HI", frame, rtp + 2, (seq + i) & 0xFFFF,
                         (stamp + i * samples) & 0xFFFFFFFF)
        frame[rtp + 12:] = bytes([ALAW_SILENCE]) * samples
        kept.append((t_last + i * step, bytes(frame)))
    out = bytearray(data[:24])
    for at, frame in kept:
        out += record.pack(at // 1_000_000, at % 1_000_000, len(frame), len(frame)) + frame
    dst.write_bytes(bytes(out))


# ---- SIPp as a caller ---------------------------------------------------------------


class SippCaller:
    """One SIPp run placing calls at the agent, in its own directory, bounded in time."""

    def __init__(self, workdir: Path, scenario: str, agent: Proc, *, calls: int,
                 rate: int = 10, limit: int | None = None, life_s: int = 60,
                 pcap: Path | None = None, pause_ms: int | None = None) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.life_s = life_s
        xml = SCENARIOS / f"{scenario}.xml"
        if xml.exists():  # a copy, so that SIPp finds the pcap next to it
            text = xml.read_text()
            if pause_ms is not None:
                text, n = re.subn(r'<pause milliseconds="\d+"/>',
                                  f'<pause milliseconds="{pause_ms}"/>', text)
                assert n == 1, f"{xml} has no single <pause> to change"
            (self.dir / xml.name).write_text(text)
            where = ["-sf", xml.name]
        else:
            where = ["-sn", scenario]  # a built-in scenario (uac)
        if pcap is not None:
            shutil.copy(pcap, self.dir / "caller_speech.pcap")
        host_port = agent.url.split("@", 1)[1]
        self.args = [
            require_binary("sipp", "sip-tester"), host_port, *where, "-s", "agent",
            "-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", str(free_port()),
            "-mp", str(free_span(4 * calls + 8)), "-m", str(calls), "-r", str(rate),
            "-nostdin", "-timeout", f"{life_s}s", "-trace_err", "-error_file", "errors.log",
            "-trace_msg", "-message_file", "messages.log", "-trace_stat", "-stf", "stats.csv",
            "-fd", "1"]
        if limit is not None:
            self.args += ["-l", str(limit)]

    async def run(self) -> int:
        """Run SIPp to its end (``-m`` calls done); kill it if it outlives ``life_s``."""
        with (self.dir / "stdout.log").open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                *self.args, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT)
        try:
            return await asyncio.wait_for(proc.wait(), self.life_s + 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise AssertionError(f"sipp still running after {self.life_s + 10}s:\n"
                                 f"{self.report()}") from None

    def stats(self) -> dict[str, str]:
        """SIPp's final statistics: the last row of its ``-trace_stat`` file."""
        path = self.dir / "stats.csv"
        rows = list(csv.reader(path.read_text().splitlines(), delimiter=";")) \
            if path.exists() else []
        assert len(rows) >= 2, f"no statistics from sipp:\n{self.report()}"
        return dict(zip(rows[0], rows[-1], strict=False))

    def messages(self) -> list[tuple[bool, str]]:
        """Every SIP message in SIPp's trace as (sent by SIPp, text with LF line ends)."""
        path = self.dir / "messages.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        out = []
        for block in re.split(r"^-{47} [^\n]*\n", text, flags=re.MULTILINE)[1:]:
            what, _, body = block.partition("\n")
            out.append(("sent" in what, body.replace("\r\n", "\n").strip("\n")))
        return out

    def received(self) -> list[str]:
        """What SIPp received from the agent."""
        return [text for sent, text in self.messages() if not sent]

    def call_ids(self) -> set[str]:
        return {header(text, "Call-ID") or "" for sent, text in self.messages() if sent}

    def report(self) -> str:
        """What to print when an assertion about this run fails."""
        def tail(name: str) -> str:
            path = self.dir / name
            return path.read_text(errors="replace")[-3000:] if path.exists() else ""
        return f"--- sipp errors\n{tail('errors.log')}\n--- sipp output\n{tail('stdout.log')}"


def header(message: str, name: str) -> str | None:
    """The first header ``name`` of a message (case-insensitive), or None."""
    for line in message.split("\n\n", 1)[0].splitlines()[1:]:
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() == name.lower():
            return value.strip()
    return None


def first_line(message: str) -> str:
    return message.split("\n", 1)[0].strip()


def assert_all_succeeded(sipp: SippCaller, rc: int, calls: int) -> None:
    stats = sipp.stats()
    assert rc == 0, f"sipp exit {rc}\n{sipp.report()}"
    assert stats["SuccessfulCall(C)"] == str(calls), (stats, sipp.report())
    assert stats["FailedCall(C)"] == "0", (stats, sipp.report())
    assert stats["OutOfCallMsgs(C)"] == "0" and stats["DeadCallMsgs(C)"] == "0", stats


async def start_agent(services: list[Proc], truth: Path) -> Proc:
    agent = await start("agent", "--transport", "sip", "--port", "0", "--ground-truth",
                        str(truth))
    services.append(agent)
    assert agent.url.startswith("sip:agent@127.0.0.1:"), agent.url
    return agent


# ---- the tests ----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _sipp_installed() -> None:
    """Check for SIPp before an agent is started for nothing."""
    require_binary("sipp", "sip-tester")


async def test_twenty_sipp_callers_playing_speech_complete_and_the_agent_replies(
        tmp_path, services):
    truth = tmp_path / "truth.jsonl"
    agent = await start_agent(services, truth)
    pcap = tmp_path / "speech.pcap"
    speech_then_silence(g711a_pcap(), pcap, speech_s=3.6, silence_s=1.5)
    sipp = SippCaller(tmp_path / "sipp", "uac_pcap", agent, calls=20, rate=10, limit=10,
                      pcap=pcap)
    rc = await sipp.run()
    # SIPp's own count: 20 calls through INVITE, 200 with PCMA chosen, ACK, BYE, 200
    assert_all_succeeded(sipp, rc, 20)
    sipp_calls = sipp.call_ids()
    assert len(sipp_calls) == 20 and all(SIPP_CALL_ID.match(c) for c in sipp_calls)
    answers = [m for m in sipp.received() if first_line(m) == "SIP/2.0 200 OK"
               and (header(m, "CSeq") or "").endswith("INVITE")]
    assert len(answers) == 20
    assert all("a=rtpmap:8 PCMA/8000" in m and "c=IN IP4 127.0.0.1" in m for m in answers)

    # the agent heard the speech in the pcap: its VAD ended the turn on the silence
    # after it and it replied, keyed by SIPp's Call-ID
    turns = [r for r in read_jsonl(truth) if isinstance(r.get("turn"), int) and "latency_ms" in r]
    assert turns, f"no turn in the agent's ground truth:\n{truth.read_text()[-2000:]}"
    assert {r["call_sid"] for r in turns} <= sipp_calls, turns
    assert len({r["call_sid"] for r in turns}) >= 10, turns  # most calls, not a fluke
    assert all(0 < r["latency_ms"] < 3000 and r["t_first_reply_sent"] for r in turns), turns

    # still up and still answering: a second batch (SIPp's built-in uac: INVITE, ACK, BYE)
    assert agent.proc.returncode is None, "the agent exited"
    again = SippCaller(tmp_path / "sipp2", "uac", agent, calls=5, rate=20)
    assert_all_succeeded(again, await again.run(), 5)
    assert agent.proc.returncode is None, "the agent exited"


async def test_cancel_before_the_answer_gets_200_and_487(tmp_path, services):
    agent = await start_agent(services, tmp_path / "truth.jsonl")
    sipp = SippCaller(tmp_path / "sipp", "uac_cancel", agent, calls=10, rate=20)
    rc = await sipp.run()
    assert_all_succeeded(sipp, rc, 10)
    by_call: dict[str, list[str]] = {}
    for text in sipp.received():
        by_call.setdefault(header(text, "Call-ID") or "", []).append(
            f"{first_line(text)} / {header(text, 'CSeq')}")
    cancelled = [c for c, seen in by_call.items()
                 if "SIP/2.0 487 Request Terminated / 1 INVITE" in seen]
    # the agent answers within a millisecond or so, yet a CANCEL sent on its 100 Trying
    # usually arrives first: each such call saw 100, 200 to the CANCEL, one 487 (no
    # retransmission: SIPp's ACK matched the INVITE's transaction), and nothing else
    assert cancelled, by_call
    for call in cancelled:
        assert by_call[call] == ["SIP/2.0 100 Trying / 1 INVITE", "SIP/2.0 200 OK / 1 CANCEL",
                                 "SIP/2.0 487 Request Terminated / 1 INVITE"], by_call[call]
    # the agent is still up: a plain call goes through
    assert agent.proc.returncode is None, "the agent exited"
    again = SippCaller(tmp_path / "sipp2", "uac", agent, calls=2, rate=20)
    assert_all_succeeded(again, await again.run(), 2)


async def test_out_of_dialog_options_gets_200_with_allow_and_a_stray_bye_481(
        tmp_path, services):
    agent = await start_agent(services, tmp_path / "truth.jsonl")
    sipp = SippCaller(tmp_path / "sipp", "uac_options", agent, calls=3, rate=20)
    rc = await sipp.run()
    assert_all_succeeded(sipp, rc, 3)  # the scenario checks Allow: lists INVITE
    got = Counter(first_line(m) for m in sipp.received())
    assert got == {"SIP/2.0 200 OK": 3, "SIP/2.0 481 Call/Transaction Does Not Exist": 3}, got
    assert agent.proc.returncode is None, "the agent exited"


async def test_responses_to_requests_without_a_to_tag_add_one(tmp_path, services):
    agent = await start_agent(services, tmp_path / "truth.jsonl")
    options = SippCaller(tmp_path / "options", "uac_options", agent, calls=1, rate=20)
    cancel = SippCaller(tmp_path / "cancel", "uac_cancel", agent, calls=3, rate=20)
    assert_all_succeeded(options, await options.run(), 1)
    assert_all_succeeded(cancel, await cancel.run(), 3)
    for sipp, cseq in ((options, "1 OPTIONS"), (cancel, "1 CANCEL")):
        replies = [m for m in sipp.received() if header(m, "CSeq") == cseq]
        assert replies, cseq
        for reply in replies:
            assert ";tag=" in (header(reply, "To") or ""), reply
    for text in cancel.received():  # the CANCEL's 200 and the 487 share the tag
        if first_line(text).startswith("SIP/2.0 487"):
            call = header(text, "Call-ID")
            ok = next(m for m in cancel.received()
                      if header(m, "Call-ID") == call and header(m, "CSeq") == "1 CANCEL")
            assert header(ok, "To") == header(text, "To"), (ok, text)


async def test_agent_replies_when_the_callers_rtp_stops_after_speech(tmp_path, services):
    truth = tmp_path / "truth.jsonl"
    agent = await start_agent(services, truth)
    # the whole recording (7.05 s, speech to its end), then 2.5 s with no RTP at all
    sipp = SippCaller(tmp_path / "sipp", "uac_pcap", agent, calls=1, pcap=g711a_pcap(),
                      pause_ms=9500)
    assert_all_succeeded(sipp, await sipp.run(), 1)
    turns = [r for r in read_jsonl(truth) if isinstance(r.get("turn"), int) and "latency_ms" in r]
    assert turns, json.dumps(read_jsonl(truth))
