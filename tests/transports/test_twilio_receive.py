"""The receive fast path: what an agent sends reaches the call exactly as it did when
websockets parsed every frame, however the bytes are cut into reads.

The agent's side is websockets' own ``ServerProtocol`` (its upgrade response and its
frames, fragments, pings and closes); frames a server must not send (masked, RSV
bits, over ``max_size``) are built by hand. The reference is the same transport with
every byte fed to websockets, as before the fast path.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.frames import Frame
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.streams import StreamReader

from loadcaller.transports.twilio_stream import (
    MAX_MESSAGE_BYTES,
    TwilioStreamTransport,
    TwilioTarget,
    _Wire,
)
from loadcaller.transports.wsframe import BINARY, OTHER, TEXT, ServerFrames
from loadcaller.twilio.caller import TwilioCallerStream
from loadcaller.twilio.playout import Playout

SID = "MZ" + "0" * 32
_LOOP = asyncio.new_event_loop()


def teardown_module() -> None:
    _LOOP.close()


class FakeTcp:
    """What the transport writes (the agent would read it)."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.written.append(b"<eof>")

    def abort(self) -> None:
        self.aborted = True

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int) -> None:
        pass


def _media(payload: bytes) -> str:
    return json.dumps({"event": "media", "streamSid": SID,
                       "media": {"payload": base64.b64encode(payload).decode()}})


def _server_frames(server: ServerProtocol, kind: str) -> bytes:
    """The bytes of one thing an agent sends (a hostile one goes on after its close)."""
    server.state = State.OPEN
    if kind == "media":
        server.send_text(_media(bytes(range(160))).encode())
    elif kind == "media_odd":
        server.send_text(_media(b"\x7f" * 33).encode())
    elif kind == "mark":
        server.send_text(json.dumps({"event": "mark", "streamSid": SID,
                                     "mark": {"name": "m"}}).encode())
    elif kind == "clear":
        server.send_text(json.dumps({"event": "clear", "streamSid": SID}).encode())
    elif kind == "long_media":  # a 16-bit length
        server.send_text(_media(bytes(4000)).encode())
    elif kind == "binary":
        server.send_binary(b"\x00\x01")
    elif kind == "ping":
        server.send_ping(b"hi")
    elif kind == "pong":
        server.send_pong(b"")
    elif kind == "fragmented":
        text = _media(bytes(range(160))).encode()
        server.send_text(text[:50], fin=False)
        server.send_continuation(text[50:120], fin=False)
        server.send_continuation(text[120:], fin=True)
    elif kind == "unfinished":  # a message begun and never continued: what follows
        server.send_text(b'{"event":', fin=False)  # must be a continuation
    elif kind == "close":
        server.send_close(1000, "bye")
    elif kind == "close_error":
        server.send_close(1011, "oops")
    elif kind == "bad_json":
        server.send_text(b"{nope")
    elif kind == "not_utf8":
        return b"\x81\x02\xff\xfe"
    elif kind == "masked":
        return b"\x81\x82" + b"abcd" + bytes(x ^ k for x, k in zip(b"{}", b"ab", strict=True))
    elif kind == "rsv":
        return b"\xc1\x02{}"
    elif kind == "too_big":
        return b"\x81\x7f" + struct.pack("!Q", MAX_MESSAGE_BYTES + 1) + b"xx"
    elif kind == "empty_text":
        return b"\x81\x00"
    else:  # pragma: no cover
        raise AssertionError(kind)
    return b"".join(server.data_to_send())


KINDS = ["media", "media_odd", "mark", "clear", "long_media", "binary", "ping", "pong",
         "unfinished",
         "fragmented", "close", "close_error", "bad_json", "not_utf8", "masked", "rsv",
         "too_big", "empty_text"]
COMMON = ["media", "media", "media", "mark", "clear", "ping", "fragmented", "long_media",
          "unfinished"]


def _call(everything_to_websockets: bool) -> tuple[TwilioStreamTransport, FakeTcp, bytes]:
    """A transport mid-upgrade, and the agent's upgrade response (its head and the
    101 from websockets' server)."""
    async def make() -> TwilioStreamTransport:  # its futures belong to a loop
        return TwilioStreamTransport(TwilioTarget(url="ws://127.0.0.1:9/media"))

    t = _LOOP.run_until_complete(make())
    t.stream = TwilioCallerStream(account_sid="AC1", call_sid="CA1", stream_sid=SID)
    tcp = FakeTcp()
    t._tcp = tcp  # type: ignore[assignment]
    request = t.ws.connect()
    t.ws.send_request(request)
    t.ws.data_to_send()
    server = ServerProtocol()
    server.receive_data(request.serialize())
    (req,) = server.events_received()
    assert isinstance(req, Request)
    server.send_response(server.accept(req))
    response = b"".join(server.data_to_send())
    t.playout = Playout(0, max_bytes=10**7)
    if everything_to_websockets:
        t._upgrading = False
    return t, tcp, response


def _stream(kinds: list[str]) -> bytes:
    return b"".join(_server_frames(ServerProtocol(), k) for k in kinds)


def _frames_written(tcp: FakeTcp) -> list[tuple[str, bytes]]:
    reader = StreamReader()
    out = []
    for chunk in tcp.written:
        if chunk == b"<eof>":
            out.append(("eof", b""))
            continue
        if chunk.startswith(b"GET "):
            continue
        reader.feed_data(chunk)
    reader.feed_eof()
    while True:
        parser = Frame.parse(reader.read_exact, mask=True)
        try:
            next(parser)
        except StopIteration as done:
            frame: Frame = done.value
            out.append((frame.opcode.name, bytes(frame.data)))
            continue
        except EOFError:  # every frame read
            return out
        raise AssertionError("the caller wrote part of a frame")


def _observe(everything_to_websockets: bool, cuts: list[int], kinds: list[str],
             eof: bool) -> dict[str, Any]:
    t, tcp, response = _call(everything_to_websockets)
    frames = _stream(kinds)
    data = response + frames
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    for i, (a, b) in enumerate(pairwise(points)):
        t._on_data(data[a:b], 1_000_000 * (i + 1))
    if eof:
        t._on_eof()
    playout = t.playout
    assert playout is not None
    frames_heard, marks = playout.advance(10**12)
    ended = t.ended.result() if t.ended.done() else None
    return {"handshake": t._handshake.done() and t._handshake.exception() is None,
            "heard": [(f.t_ns, f.audio) for f in frames_heard if f.audio], "marks": marks,
            "ended": ended and (ended.outcome, ended.reason), "wrote": _frames_written(tcp),
            "aborted": tcp.aborted}


@settings(max_examples=100, deadline=None)
@given(kinds=st.lists(st.sampled_from(COMMON) | st.sampled_from(KINDS), max_size=12),
       cuts=st.lists(st.integers(min_value=0, max_value=20_000), max_size=8), eof=st.booleans())
def test_the_fast_path_hears_what_websockets_alone_would(kinds, cuts, eof):
    fast = _observe(False, cuts, kinds, eof)
    slow = _observe(True, cuts, kinds, eof)
    for seen in (fast, slow):
        # websockets alone answered a read's pings before the messages ahead of them
        seen["pongs"] = [w for w in seen["wrote"] if w[0] == "PONG"]
        seen["wrote"] = [w for w in seen["wrote"] if w[0] != "PONG"]
    if fast["ended"] is not None:
        # The call ended on a close or on something it could not read. websockets alone
        # had parsed that whole read first: it may have answered a ping behind the end,
        # or closed before the messages ahead of the end were answered (a clear's mark
        # echoes), which the fast path answers in order. The outcome, its reason and
        # all that was heard are the same; what left differs only by those answers.
        fast_wrote, slow_wrote = fast.pop("wrote"), slow.pop("wrote")
        rest = iter(fast_wrote)
        assert all(w in rest for w in slow_wrote)  # in order, within the fast path's
        extra = [w for w in fast_wrote if w not in slow_wrote]
        assert all(op == "CLOSE" or json.loads(data)["event"] == "mark" for op, data in extra)
        if fast["ended"][0] == "error":
            del fast["pongs"], slow["pongs"]
    assert fast == slow
    assert fast["handshake"]


def test_byte_by_byte_reads_are_heard_the_same():
    kinds = ["media", "ping", "mark", "fragmented", "long_media", "clear", "media", "close"]
    cuts = list(range(0, 20_000))
    fast = _observe(False, cuts, kinds, False)
    assert fast == _observe(True, cuts, kinds, False)
    assert fast["heard"] == [(fast["heard"][0][0], bytes(range(160)))]  # after the clear
    assert ("PONG", b"hi") in fast["wrote"]
    echoes = [json.loads(data) for op, data in fast["wrote"] if op == "TEXT"]
    assert [e["mark"]["name"] for e in echoes if e["event"] == "mark"] == ["m"]
    assert fast["ended"] == ("agent_hangup", "agent closed the websocket (1000)")


def test_a_message_right_behind_the_101_is_heard():
    t, _, response = _call(False)
    frames = _stream(["media"])
    t._on_data(response + frames, 5)
    assert t._frames is not None and t._frames.pending == 0
    assert t.playout is not None and t.playout.queued_bytes == 160


@pytest.mark.parametrize("status", [b"HTTP/1.1 500 Oops\r\nContent-Length: 4\r\n\r\nboom",
                                    b"HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\nmoved"])
def test_a_refused_upgrade_is_still_websockets_to_judge(status):
    for cut in range(1, len(status)):
        said = []
        for everything_to_websockets in (False, True):
            t, _, _ = _call(everything_to_websockets)
            t._on_data(status[:cut], 1)
            t._on_data(status[cut:], 2)
            t._on_eof()  # a body without a length ends at EOF
            t._on_lost(None)
            assert t._frames is None
            said.append(str(t._handshake.exception()))
        assert said[0] == said[1]
        if b"Content-Length" in status:
            assert said[0] == "websocket upgrade rejected: HTTP 500"


def test_a_head_cut_short_by_eof_says_so():
    t, _, response = _call(False)
    t._on_data(response[:30], 1)
    t._on_eof()
    t._on_lost(None)
    assert "connection closed during upgrade" in str(t._handshake.exception())


def test_the_splitter_cuts_whole_frames_and_holds_the_rest():
    frames = ServerFrames(max_size=1000)
    text = b"\x81\x05hello"
    binary = b"\x82\x7e\x00\x02ab"
    ping = b"\x89\x00"
    data = text + binary + ping + text
    assert frames.feed(data[:3]) == []
    assert frames.pending == 3
    assert frames.feed(data[3:9]) == [(TEXT, b"hello")]
    assert frames.feed(data[9:]) == [(BINARY, b"ab"), (OTHER, ping), (TEXT, b"hello")]
    assert frames.pending == 0
    over = b"\x81\x7e\x03\xe9" + b"x" * 10  # 1001 bytes announced: websockets refuses it
    assert frames.feed(over) == [(OTHER, over)]


def test_a_bug_in_the_receive_path_ends_that_call_as_a_local_error(monkeypatch):
    t, tcp, response = _call(False)
    wire = _Wire(t)
    wire.data_received(response)

    def broken(message: str | bytes, t_ns: int) -> None:
        raise KeyError("oops")

    monkeypatch.setattr(t, "_on_message", broken)
    wire.data_received(_stream(["media"]))  # raised out of data_received: a traceback per read
    assert t.ended.done() and tcp.aborted
    end = t.ended.result()
    assert (end.outcome, end.reason) == ("error", "local: KeyError reading the agent: 'oops'")
