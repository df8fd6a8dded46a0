"""The WebRTC target: URL schemes, flavours, secrets, ICE servers, --target."""

from __future__ import annotations

import pytest

from loadcaller.errors import ProfileError
from loadcaller.profile import parse_profile
from loadcaller.transports.registry import target_override, transport_for_url
from loadcaller.transports.twilio_stream import TwilioTarget
from loadcaller.transports.webrtc import WebRtcTarget, answer_audio_problem

BASE = "scenarios: [{name: s, steps: [{wait_for_agent: {}}]}]\n"


@pytest.mark.parametrize("url, flavour, http", [
    ("webrtc+http://127.0.0.1:7860/api/offer", "pipecat", "http://127.0.0.1:7860/api/offer"),
    ("webrtc+https://bot.local/api/offer", "pipecat", "https://bot.local/api/offer"),
    ("whip+http://127.0.0.1:8080/whip", "whip", "http://127.0.0.1:8080/whip"),
    ("WHIP+HTTPS://h/whip/endpoint", "whip", "HTTPS://h/whip/endpoint"),
])
def test_the_scheme_picks_the_transport_and_the_flavour(url, flavour, http):
    p = parse_profile(BASE + f"target: {{url: '{url}'}}")
    assert isinstance(p.target, WebRtcTarget)
    assert p.target.flavour == flavour and p.target.http_url == http
    assert p.target.codec == "PCMU" and p.target.ice_servers == []


def test_an_explicit_signalling_and_the_profile_fields(monkeypatch):
    monkeypatch.setenv("LC_TEST_TOKEN", "tok-s3cret")
    p = parse_profile(BASE + "target: {transport: webrtc, url: 'webrtc+http://h/x', "
                      "signalling: whip, codec: opus, auth_token: '${LC_TEST_TOKEN}', "
                      "headers: {X-Key: k}, ice_servers: [{urls: 'stun:127.0.0.1:3478'}], "
                      "setup_timeout: 3s, no_media_timeout: 500ms}")
    t = p.target
    assert isinstance(t, WebRtcTarget)
    assert t.flavour == "whip" and t.codec == "opus" and t.setup_timeout == 3.0
    assert t.auth_token is not None and t.auth_token.get_secret_value() == "tok-s3cret"
    assert t.ice_servers[0].urls == ["stun:127.0.0.1:3478"]
    assert "tok-s3cret" not in repr(t) and "tok-s3cret" not in t.model_dump_json()


@pytest.mark.parametrize("section, message", [
    ("{transport: webrtc, url: 'http://h/x'}", "not a webrtc\\+http\\(s\\):// or whip"),
    ("{transport: webrtc, url: 'webrtc+http://'}", "not a webrtc"),
    ("{transport: webrtc, url: 'webrtc+http://h/x', codec: G722}", r"target\.codec"),
    ("{transport: webrtc, url: 'webrtc+http://h/x', signalling: sip}", r"target\.signalling"),
    ("{transport: webrtc, url: 'webrtc+http://h/x', ice_servers: [{urls: 'http://x'}]}",
     "not a stun: or turn: URL"),
    ("{transport: webrtc, url: 'webrtc+http://h/x', headers: {Content-Type: x}}",
     "cannot be set as an extra header"),
    ("{transport: webrtc, url: 'webrtc+http://h/x', auth_token: '${LC_UNSET_VAR_X}'}",
     "LC_UNSET_VAR_X"),
])
def test_bad_webrtc_targets_are_profile_errors(section, message):
    with pytest.raises(ProfileError, match=message):
        parse_profile(BASE + f"target: {section}")


def test_target_override_moves_any_profile_to_webrtc_and_keeps_webrtc_fields():
    assert transport_for_url("webrtc+http://127.0.0.1:7860/api/offer") == "webrtc"
    assert transport_for_url("whip+https://h/whip") == "webrtc"
    text = BASE + "target: {url: 'ws://127.0.0.1:9/x', auth_token: t}"
    p = parse_profile(text, overrides={"target.url": "webrtc+http://127.0.0.1:7860/api/offer"})
    assert isinstance(p.target, WebRtcTarget) and p.target.auth_token is None
    section = target_override("whip+http://127.0.0.1:1/whip",
                              {"transport": "webrtc", "url": "webrtc+http://h/x",
                               "codec": "opus"})
    assert section == {"transport": "webrtc", "url": "whip+http://127.0.0.1:1/whip",
                       "codec": "opus"}
    p = parse_profile(BASE + "target: {url: 'webrtc+http://h/x'}",
                      overrides={"target.url": "ws://127.0.0.1:9/x"})
    assert isinstance(p.target, TwilioTarget)


AUDIO = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
         "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 127.0.0.1\r\na=mid:0\r\n"
         "a=rtpmap:0 PCMU/8000\r\na={direction}\r\n")


@pytest.mark.parametrize("sdp, problem", [
    (AUDIO.format(direction="sendrecv"), None),
    (AUDIO.format(direction="sendonly"), None),
    (AUDIO.format(direction="recvonly"), "answer without audio: the agent's audio is recvonly"),
    (AUDIO.format(direction="inactive"), "answer without audio: the agent's audio is inactive"),
    (AUDIO.format(direction="sendrecv").replace("m=audio 9", "m=audio 0"),
     "answer without audio: the audio m-line was rejected (port 0)"),
    (AUDIO.format(direction="sendrecv").replace("m=audio", "m=video").replace(
        "PCMU/8000", "VP8/90000"), "answer without audio: no audio m-line"),
])
def test_an_answer_without_audio_is_named(sdp, problem):
    assert answer_audio_problem(sdp) == problem
