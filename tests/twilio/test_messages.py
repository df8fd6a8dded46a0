"""Twilio Media Streams messages: what the caller sends, what it accepts."""

import base64
import json

import pytest

from loadcaller.errors import RemoteProtocolError
from loadcaller.twilio import messages as tw
from loadcaller.twilio.caller import TwilioCallerStream


def test_caller_stream_speaks_twilios_wire_format():
    s = TwilioCallerStream(custom_parameters={"tenant": "acme"})
    connected = json.loads(s.connected())
    assert connected == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    start = json.loads(s.start())
    assert start["event"] == "start" and start["sequenceNumber"] == "1"
    body = start["start"]
    assert body["streamSid"] == start["streamSid"] == s.stream_sid
    assert body["callSid"].startswith("CA") and len(body["callSid"]) == 34
    assert body["accountSid"].startswith("AC") and len(body["accountSid"]) == 34
    assert body["tracks"] == ["inbound"]
    assert body["customParameters"] == {"tenant": "acme"}
    assert body["mediaFormat"] == {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}

    payload = base64.b64encode(b"\xff" * 160).decode()
    m1, m2 = json.loads(s.media(payload)), json.loads(s.media(payload))
    assert m1["sequenceNumber"] == "2" and m2["sequenceNumber"] == "3"
    assert m1["media"] == {"track": "inbound", "chunk": "1", "timestamp": "0", "payload": payload}
    assert m2["media"]["chunk"] == "2" and m2["media"]["timestamp"] == "20"
    assert m1["streamSid"] == s.stream_sid
    # the hot path's bytes are the same message, counted on
    m3 = json.loads(s.media_bytes(payload.encode()))
    media = m3["media"]
    assert (m3["sequenceNumber"], media["chunk"], media["timestamp"]) == ("4", "3", "40")
    odd = TwilioCallerStream(stream_sid="MZ%d%s")  # a SID is never formatted as a template
    assert json.loads(odd.media_bytes(payload.encode()))["streamSid"] == "MZ%d%s"

    dtmf = json.loads(s.dtmf("5"))
    assert dtmf["dtmf"] == {"track": "inbound_track", "digit": "5"}
    mark = json.loads(s.mark("reply-1"))
    assert mark["mark"] == {"name": "reply-1"} and mark["sequenceNumber"] == "6"
    stop = json.loads(s.stop())
    assert stop["stop"] == {"accountSid": s.account_sid, "callSid": s.call_sid}
    assert stop["sequenceNumber"] == "7"


def test_agent_side_parser_reads_what_the_caller_sends():
    s = TwilioCallerStream()
    start = tw.parse_twilio_message(s.start())
    assert isinstance(start, tw.Start) and start.call_sid == s.call_sid
    media = tw.parse_twilio_message(s.media(base64.b64encode(b"\x01\x02").decode()))
    assert media == tw.Media(s.stream_sid, b"\x01\x02", 1, 0)
    assert isinstance(tw.parse_twilio_message(s.stop()), tw.Stop)


def test_agent_messages_round_trip():
    assert tw.parse_agent_message(tw.agent_media("MZ1", b"\x00\x7f")) == tw.AgentMedia(b"\x00\x7f")
    assert tw.parse_agent_message(tw.agent_mark("MZ1", "x")) == tw.AgentMark("x")
    assert tw.parse_agent_message(tw.agent_clear("MZ1")) == tw.AgentClear()


@pytest.mark.parametrize(
    ("message", "says"),
    [
        ("{not json", "malformed JSON"),
        (b"\x00\x01binary", "binary"),
        ("[1, 2]", "not a JSON object"),
        ('{"event": "media"}', "without a media object"),
        ('{"event": "media", "media": {"payload": "!!!"}}', "not base64"),
        ('{"event": "media", "media": {"payload": 5}}', "not a string"),
        ('{"event": "mark", "mark": {}}', "mark.name"),
        ('{"event": "speak"}', "unknown event"),
    ],
)
def test_what_an_agent_gets_wrong_is_a_remote_protocol_error(message, says):
    with pytest.raises(RemoteProtocolError, match=says):
        tw.parse_agent_message(message)


@pytest.mark.parametrize("parse", [tw.parse_agent_message, tw.parse_twilio_message])
def test_json_nested_past_the_recursion_limit_is_the_peer_s_protocol_error(parse):
    deep = '{"event": "media", "x": ' + "[" * 5000 + "]" * 5000 + "}"
    with pytest.raises(RemoteProtocolError, match="nested too deeply"):
        parse(deep)
