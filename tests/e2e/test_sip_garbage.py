"""Garbage at the caller's SIP and RTP ports during real calls: nothing breaks.

The far end here is a small asyncio SIP answerer written for these tests (its
messages follow what SIPp sends in tests/e2e/sipp/): it learns the caller's SIP
and RTP ports from the INVITE, answers it, echoes the caller's RTP, and sprays
datagrams a load tester meets in the wild (empty, random, truncated, oversized,
stray responses, requests for other calls or with wrong tags, malformed RTP,
RTCP, RTP from an address the SDP never named). A third socket plays a host that
is not the one the SDP names.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import struct

import pytest

from .conftest import read_jsonl
from .sipp_peer import ONE_TURN, TWO_TURNS, run_loadcaller, sip_profile

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

Addr = tuple[str, int]
RNG = random.Random(7)


def sip_garbage(caller: Addr, call_id: str, caller_tag: str, *,
                forged_bye: bool = True) -> list[bytes]:
    """Datagrams for the caller's SIP port: none of them may end or break the call.
    ``forged_bye``: include a BYE with the call's Call-ID and our tag but a From tag
    that is not the far end's (see test_forged_bye_while_ringing_...)."""
    host, port = caller
    stray_response = (
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKnope\r\n"
        "From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>;tag=2\r\n"
        "Call-ID: not-a-call\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")

    def request(method: str, cid: str, from_tag: str, to_tag: str | None, branch: str) -> bytes:
        to = f"<sip:loadcaller@{host}>" + (f";tag={to_tag}" if to_tag else "")
        return (
            f"{method} sip:loadcaller@{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{branch}\r\n"
            f"From: <sip:mallory@127.0.0.1>;tag={from_tag}\r\nTo: {to}\r\n"
            f"Call-ID: {cid}\r\nCSeq: 7 {method}\r\nMax-Forwards: 70\r\n"
            "Content-Length: 0\r\n\r\n").encode()

    return [
        b"",
        b"\r\n\r\n",  # a keep-alive
        RNG.randbytes(300),
        b"\xff" * 1400,
        b"SIP/2.0 200",  # truncated
        b"INVITE sip:x SIP/2.0\r\nVia: garbage\r\n\r\n",  # no From, To, Call-ID, CSeq
        b"BYE sip:x SIP/2.0\r\nthis line has no colon\r\n\r\n",
        stray_response.encode(),
        stray_response.replace("Content-Length: 0", "Content-Length: 500").encode() + b"short",
        stray_response.replace("CSeq: 1 INVITE", "CSeq: banana").encode(),
        b"OPTIONS sip:x SIP/2.0\r\nVia: \xc3\x28\xa0\xa1\r\n\r\n",  # not UTF-8
        b"A" * 60000,
        # well-formed, but not for this dialog: answered, and the call goes on
        request("BYE", "not-a-call", "m1", "x", "garbage1"),  # -> 481
        request("OPTIONS", "probe", "m2", None, "garbage3"),  # -> 200
    ] + ([request("BYE", call_id, "wrong-tag", caller_tag, "garbage2")]  # -> 481
         if forged_bye else [])


def rtp_malformed() -> list[bytes]:
    """Datagrams that are not RTP (or not audio) but come from the SDP's address."""
    v0 = bytes([0x00, 0x00]) + RNG.randbytes(170)  # version 0
    v1 = bytes([0x40, 0x00]) + RNG.randbytes(170)  # version 1
    pad = bytes([0xA0, 0x00]) + RNG.randbytes(10) + b"\x00" * 20 + b"\xff"  # padding > payload
    ext = bytes([0x90, 0x00]) + RNG.randbytes(10) + b"\xbe\xde\xff\xff"  # extension too long
    csrc = bytes([0x8F, 0x00]) + RNG.randbytes(18)  # 15 CSRCs announced, 2 present
    return [b"", b"\x80", RNG.randbytes(11), v0, v1, pad, ext, csrc, b"hello, RTP"]


def rtcp_report() -> bytes:
    """A receiver report: RTCP, not audio."""
    return struct.pack("!BBHI", 0x80, 201, 1, 0x1234)


def parse_message(data: bytes) -> tuple[str, dict[str, str], str]:
    head, _, body = data.decode(errors="replace").partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    return lines[0], headers, body


class FarEnd(asyncio.DatagramProtocol):
    """Answers one call (see the module docstring); ``mode`` is "echo" (RTP back from
    the address the SDP names, plus garbage) or "foreign" (RTP back from another one)."""

    def __init__(self, mode: str, *, stray: bool = True, early_forged_bye: bool = False) -> None:
        self.mode = mode
        self.stray = stray  # foreign mode: one non-RTP datagram from the SDP's address
        self.early_forged_bye = early_forged_bye  # while ringing, too
        self.sip: asyncio.DatagramTransport | None = None
        self.rtp: asyncio.DatagramTransport | None = None
        self.foreign: asyncio.DatagramTransport | None = None
        self.caller_sip: Addr | None = None
        self.caller_rtp: Addr | None = None
        self.invite: tuple[str, dict[str, str], str] | None = None
        self.last_response = b""
        self.acked = asyncio.Event()
        self.bye = asyncio.Event()
        self.from_caller: list[tuple[str, dict[str, str]]] = []
        self.foreign_sent = 0
        self.malformed_sent = 0
        self.rtp_in = 0
        self.tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> FarEnd:
        loop = asyncio.get_running_loop()
        self.sip, _ = await loop.create_datagram_endpoint(lambda: self,
                                                          local_addr=("127.0.0.1", 0))
        self.rtp, _ = await loop.create_datagram_endpoint(
            lambda: _Rtp(self), local_addr=("127.0.0.1", 0))
        self.foreign, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for sock in (self.sip, self.rtp, self.foreign):
            if sock is not None:
                sock.close()

    def port(self, sock: asyncio.DatagramTransport | None) -> int:
        assert sock is not None
        return int(sock.get_extra_info("sockname")[1])

    @property
    def url(self) -> str:
        return f"sip:agent@127.0.0.1:{self.port(self.sip)}"

    # ---- SIP ---------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        first, headers, body = parse_message(data)
        self.from_caller.append((first, headers))
        method = first.split(" ", 1)[0]
        if method == "INVITE" and self.invite is None:
            self.invite = (first, headers, body)
            self.caller_sip = addr
            ip = re.search(r"c=IN IP4 (\S+)", body)
            port = re.search(r"m=audio (\d+)", body)
            assert ip and port, body
            self.caller_rtp = (ip.group(1), int(port.group(1)))
            self.tasks.append(asyncio.create_task(self._answer()))
        elif method == "INVITE":  # a retransmission
            self._send_sip(self.last_response)
        elif method == "ACK" and headers.get("cseq", "").endswith("ACK"):
            if not self.acked.is_set():
                self.acked.set()
                self.tasks.append(asyncio.create_task(self._spray_during_call()))
        elif method == "BYE":
            self._send_sip(self._response(headers, "200 OK"))
            self.bye.set()

    def _response(self, req: dict[str, str], status: str, *, tag: bool = True,
                  sdp: str = "") -> bytes:
        to = req["to"] + (";tag=farend1" if tag and "tag=" not in req["to"] else "")
        lines = [f"SIP/2.0 {status}", f"Via: {req['via']}", f"From: {req['from']}",
                 f"To: {to}", f"Call-ID: {req['call-id']}", f"CSeq: {req['cseq']}",
                 f"Contact: <sip:agent@127.0.0.1:{self.port(self.sip)}>"]
        if sdp:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(sdp)}")
        return ("\r\n".join(lines) + "\r\n\r\n" + sdp).encode()

    def _send_sip(self, data: bytes) -> None:
        assert self.sip is not None and self.caller_sip is not None
        self.sip.sendto(data, self.caller_sip)

    async def _answer(self) -> None:
        assert self.invite is not None and self.caller_sip is not None
        _, req, _ = self.invite
        self._send_sip(self._response(req, "100 Trying", tag=False))
        self._spray_sip(forged_bye=self.early_forged_bye)
        self.last_response = self._response(req, "180 Ringing")
        self._send_sip(self.last_response)
        await asyncio.sleep(0.2)
        sdp = ("v=0\r\no=farend 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
               f"t=0 0\r\nm=audio {self.port(self.rtp)} RTP/AVP 0\r\n"
               "a=rtpmap:0 PCMU/8000\r\n")
        self.last_response = self._response(req, "200 OK", sdp=sdp)
        for _ in range(6):  # timer G, bounded
            self._send_sip(self.last_response)
            try:
                await asyncio.wait_for(self.acked.wait(), 0.5)
                return
            except TimeoutError:
                continue

    def _spray_sip(self, *, forged_bye: bool = True) -> None:
        assert self.invite is not None and self.caller_sip is not None
        _, req, _ = self.invite
        tag = re.search(r"tag=([^;>\s]+)", req["from"])
        for data in sip_garbage(self.caller_sip, req["call-id"], tag.group(1) if tag else "",
                                forged_bye=forged_bye):
            self._send_sip(data)

    # ---- RTP ---------------------------------------------------------------------

    def on_rtp(self, data: bytes, addr: Addr) -> None:
        self.rtp_in += 1
        if self.mode == "echo":
            assert self.rtp is not None
            self.rtp.sendto(data, addr)
        else:
            assert self.foreign is not None
            self.foreign.sendto(data, addr)
            self.foreign_sent += 1

    async def _spray_during_call(self) -> None:
        assert self.rtp is not None and self.foreign is not None
        assert self.caller_rtp is not None and self.caller_sip is not None
        await asyncio.sleep(0.1)  # the caller has taken the answer by now
        if self.mode == "foreign":
            if self.stray:  # one datagram from the SDP's address that is not RTP at all
                self.rtp.sendto(b"not RTP", self.caller_rtp)
                self.malformed_sent += 1
            return
        for _ in range(3):
            # (an empty datagram counts nowhere: the event loop does not hand it up)
            for data in rtp_malformed():
                self.rtp.sendto(data, self.caller_rtp)
                self.malformed_sent += bool(data)
            self.rtp.sendto(rtcp_report(), self.caller_rtp)
            for data in [*rtp_malformed(), rtcp_report(), RNG.randbytes(172)]:
                self.foreign.sendto(data, self.caller_rtp)
                self.foreign_sent += bool(data)
            # SIP where RTP is expected, and RTP-looking bytes where SIP is
            self.foreign.sendto(b"OPTIONS sip:x SIP/2.0\r\n\r\n", self.caller_rtp)
            self.foreign_sent += 1
            self.foreign.sendto(bytes([0x80, 0x00]) + RNG.randbytes(170), self.caller_sip)
            self._spray_sip()
            await asyncio.sleep(0.3)


class _Rtp(asyncio.DatagramProtocol):
    def __init__(self, far: FarEnd) -> None:
        self.far = far

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        self.far.on_rtp(data, addr)


def results(out):
    summary = json.loads((out / "summary.json").read_text())
    return read_jsonl(out / "calls.jsonl"), read_jsonl(out / "turns.jsonl"), summary


async def test_garbage_at_sip_and_rtp_ports_does_not_break_the_call(tmp_path):
    async with FarEnd("echo") as far:
        profile = sip_profile(tmp_path / "p.yaml", url=far.url, steps=TWO_TURNS)
        code, _, err = await run_loadcaller(profile, tmp_path / "r")
        bye_seen = far.bye.is_set()
    assert code == 0, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    calls, turns, summary = results(tmp_path / "r")
    assert [c["outcome"] for c in calls] == ["completed"], calls
    assert len(turns) == 2 and all(t["outcome"] == "answered" for t in turns), turns
    media = calls[0]["media"]
    assert media["packets_received"] > 100 and media["lost"] == 0, media
    assert media["malformed"] == far.malformed_sent > 0, media
    assert media["rtcp"] == 3
    assert media["rtp_foreign_source"] == far.foreign_sent > 0, media
    assert media["sip_garbage"] > 0, media
    assert media["bye"] == "local_bye"
    assert summary["calls"]["failed"] == 0
    # what the caller said back to the well-formed strays (once while ringing, three
    # times in the call): 200 to OPTIONS, 481 to a BYE for another call, and 481 to a
    # BYE for this call with a From tag that is not the far end's (in the call only)
    replies = [(first, h.get("call-id")) for first, h in far.from_caller
               if first.startswith("SIP/2.0")]
    no_such = "SIP/2.0 481 Call/Transaction Does Not Exist"
    assert replies.count(("SIP/2.0 200 OK", "probe")) == 4, replies
    assert replies.count((no_such, "not-a-call")) == 4, replies
    call_id = far.invite[1]["call-id"] if far.invite else ""
    assert replies.count((no_such, call_id)) == 3, replies
    assert bye_seen
    byes = [h for first, h in far.from_caller if first.startswith("BYE ")]
    assert len(byes) == 1 and byes[0]["call-id"] == call_id


@pytest.mark.parametrize("stray", [
    pytest.param(True, id="plus-one-non-rtp-datagram-from-the-sdp-address"),
    pytest.param(False, id="only-foreign-rtp"),
])
async def test_rtp_only_from_an_unexpected_address_is_no_media_naming_it(tmp_path, stray):
    async with FarEnd("foreign", stray=stray) as far:
        profile = sip_profile(tmp_path / "p.yaml", url=far.url, steps=ONE_TURN,
                              no_media_timeout="1.5s")
        code, _, err = await run_loadcaller(profile, tmp_path / "r")
        foreign_port = far.port(far.foreign)
    assert code == 1, err[-3000:]  # its only call failed (no_media): the run says so
    assert "Traceback" not in err, err[-3000:]
    calls, _, _ = results(tmp_path / "r")
    assert len(calls) == 1 and calls[0]["outcome"] == "no_media", calls
    reason = calls[0]["reason"]
    assert "no RTP within 1.5s" in reason and f"127.0.0.1:{foreign_port}" in reason, reason
    media = calls[0]["media"]
    assert media["rtp_foreign_source"] > 30 and media["packets_received"] == 0, media
    assert far.rtp_in > 30  # the caller did send its audio where the SDP said


async def test_forged_bye_while_ringing_is_refused_and_the_call_goes_on(tmp_path):
    async with FarEnd("echo", early_forged_bye=True) as far:
        profile = sip_profile(tmp_path / "p.yaml", url=far.url, steps=ONE_TURN)
        code, _, err = await run_loadcaller(profile, tmp_path / "r")
    assert code == 0, err[-3000:]
    call_id = far.invite[1]["call-id"] if far.invite else ""
    early = [first for first, h in far.from_caller
             if first.startswith("SIP/2.0") and h.get("call-id") == call_id]
    assert early == ["SIP/2.0 481 Call/Transaction Does Not Exist"] * 4, early
    calls, _, _ = results(tmp_path / "r")
    assert [c["outcome"] for c in calls] == ["completed"], calls
