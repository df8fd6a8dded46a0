"""Fuzzing: the parser raises only ParseError; receive() never raises at all."""

from __future__ import annotations

import contextlib
import os
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loadcaller.sip.digest import Challenge, parse_auth, verify
from loadcaller.sip.errors import ParseError, SipError
from loadcaller.sip.headers import NameAddr, Uri, Via
from loadcaller.sip.message import Request, StreamFramer, parse_message
from loadcaller.sip.sdp import Sdp, negotiate

from .fixtures import ALL, SDP
from .pair import Pair, agent_answer

SEEDS = list(ALL.values())
TOKENS = [b"", b"0", b"-1", b"4294967296", b"<", b">", b'"', b"\\", b";", b",", b"=", b":",
          b"\r\n", b"\r\n ", b"\n\n", b"\x00", b"\xff", b"sip:", b"z9hG4bK", b"SIP/2.0",
          b"Content-Length: 99", b"l: 0", b"[::1]", b"tag=", b"INVITE", b"ACK"]  # fmt: skip
# SIP_FUZZ_EXAMPLES=5000 for a deeper search than CI's.
EXAMPLES = int(os.environ.get("SIP_FUZZ_EXAMPLES", "400"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes] = SEEDS) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        j = draw(st.integers(i, min(len(data), i + 12)))
        op = draw(st.sampled_from(["replace", "delete", "insert", "flip", "truncate"]))
        if op == "replace":
            data[i:j] = draw(st.sampled_from(TOKENS))
        elif op == "delete":
            del data[i:j]
        elif op == "insert":
            data[i:i] = draw(st.sampled_from(TOKENS) | st.binary(max_size=6))
        elif op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        else:
            del data[i:]
    return bytes(data)


def touch_everything(msg: object) -> None:
    """Every lazy accessor: only our own errors may come out."""
    assert isinstance(msg, Request | type(msg))
    for name in ("call_id", "cseq", "vias", "top_via", "from_", "to"):
        with contextlib.suppress(SipError):
            getattr(msg, name)
    for header in ("Contact", "Route", "Record-Route"):
        for value in msg.header_list(header):  # type: ignore[attr-defined]
            with contextlib.suppress(SipError):
                NameAddr.parse(value).parsed_uri()


@FUZZ
@given(st.binary(max_size=300) | mutated())
def test_parser_raises_only_parse_error(data: bytes) -> None:
    try:
        msg = parse_message(data)
    except ParseError:
        return
    touch_everything(msg)
    # What we accept, we can write and read back (serialize adds a missing Content-Length).
    again = parse_message(msg.serialize())
    assert again.body == msg.body and type(again) is type(msg)
    assert [h for h in again.headers if h[0] != "Content-Length"] == [
        h for h in msg.headers if h[0] != "Content-Length"
    ]
    assert again.serialize() == msg.serialize()


@FUZZ
@given(mutated(), st.lists(st.integers(1, 64), min_size=1, max_size=8))
def test_stream_framer_raises_only_parse_error(data: bytes, cuts: list[int]) -> None:
    framer = StreamFramer()
    pos = 0
    try:
        for cut in cuts * 50:
            if pos >= len(data):
                break
            framer.feed(data[pos : pos + cut])
            pos += cut
    except ParseError:
        pass


@FUZZ
@given(st.text(max_size=80))
def test_header_values_raise_only_parse_error(text: str) -> None:
    for parse in (Uri.parse, Via.parse, NameAddr.parse, Challenge.parse, parse_auth):
        with contextlib.suppress(SipError):
            parse(text)
    assert verify(text, method="INVITE", username="u", password="p", realm="r") is None


@FUZZ
@given(st.binary(max_size=200) | mutated([SDP.encode(), agent_answer()]))
def test_sdp_raises_only_parse_error(body: bytes) -> None:
    try:
        sdp = Sdp.parse(body)
    except ParseError:
        return
    negotiate(["PCMU", "PCMA"], sdp)


def _wire_of_a_call() -> list[bytes]:
    """Every message of a call with a re-INVITE, both directions, serialised."""
    pair = Pair(seed=7)
    pair.start()
    call_id = pair.incoming()
    pair.server.ring(call_id, pair.now, status=183, sdp=agent_answer())
    pair.server.answer(call_id, agent_answer(), pair.now)
    pair.run(0.1)
    pair.server.reinvite(call_id, agent_answer(), pair.now)
    pair.run(0.1)
    pair.call.hangup(pair.now)
    pair.run(0.1)
    return [msg.serialize() for _, _, msg in pair.wire]


WIRE = _wire_of_a_call()


@settings(
    max_examples=max(150, EXAMPLES // 3),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    st.lists(st.sampled_from(WIRE) | mutated(WIRE) | st.binary(max_size=60), max_size=12),
    st.sampled_from(["udp", "tcp"]),
    st.integers(0, 3),
)
def test_receive_never_raises(junk: list[bytes], transport: str, stage: int) -> None:
    """Garbage and mangled copies of a real call's messages, at every stage of a call."""
    pair = Pair(seed=7, transport=transport)
    pair.start()
    call_id = pair.incoming()
    if stage >= 1:
        pair.server.ring(call_id, pair.now)
    if stage >= 2:
        pair.server.answer(call_id, agent_answer(), pair.now)
    if stage >= 3:
        pair.run(0.1)
        if call_id in pair.server.calls:
            pair.call.hangup(pair.now)
    pair.pump()
    rng = random.Random(len(junk))
    for data in junk:
        pair.call.receive(data, ("10.0.0.2", 5080), pair.now)
        pair.server.receive(data, ("10.0.0.1", 5060), pair.now)
        pair.now += rng.choice([0.0, 0.3, 2.0])
        for ep in (pair.call, pair.server):
            t = ep.get_timer()
            if t is not None and t <= pair.now:
                ep.handle_timer(pair.now)
        pair.call.datagrams_to_send()
        pair.server.datagrams_to_send()
    pair.run(70)  # and every timer still runs out cleanly
    assert pair.call.get_timer() is None and pair.server.get_timer() is None
