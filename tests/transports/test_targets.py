"""Targets: each transport validates its own URL; --target picks the transport."""

import asyncio
import socket

import pytest

from loadcaller.errors import ProfileError, SetupFailed
from loadcaller.profile import parse_profile
from loadcaller.transports.ports import PortPool
from loadcaller.transports.sip import SipTarget
from loadcaller.transports.twilio_stream import TwilioTarget

BASE = "scenarios: [{name: s, steps: [{wait_for_agent: {}}]}]\n"


def test_transport_comes_from_the_url_when_not_given():
    p = parse_profile(BASE + "target: {url: 'sip:agent@127.0.0.1:5080;transport=tcp'}")
    assert isinstance(p.target, SipTarget) and p.target.url.endswith("transport=tcp")
    p = parse_profile(BASE + "target: {url: 'wss://agent.example/ws'}")
    assert isinstance(p.target, TwilioTarget)


def test_target_override_switches_transport_and_drops_the_old_fields():
    text = BASE + "target: {url: 'ws://127.0.0.1:9/x', auth_token: t, custom_parameters: {a: b}}"
    p = parse_profile(text, overrides={"target.url": "sip:bot@127.0.0.1:5099"})
    assert isinstance(p.target, SipTarget) and p.target.url == "sip:bot@127.0.0.1:5099"
    p = parse_profile(text, overrides={"target.url": "ws://127.0.0.1:10/y"})
    assert isinstance(p.target, TwilioTarget) and p.target.custom_parameters == {"a": "b"}


@pytest.mark.parametrize("section, message", [
    ("{transport: sip, url: 'ws://x'}", r"target\.url: .*not a sip: or sips: URI"),
    ("{transport: sip, url: 'sip:a@h;transport=sctp'}", "unsupported SIP transport 'sctp'"),
    ("{transport: sip, url: 'sip:a@h', headers: {Call-ID: x}}", "cannot be set as an extra"),
    ("{transport: sip, url: 'sip:a@h', headers: {X-A: \"a\\r\\nVia: b\"}}", "line break"),
    ("{transport: sip, url: 'sip:a@h', rtp_ports: 80-90}", "within 1024-65535"),
    ("{transport: sip, url: 'sip:a@h', rtp_ports: 9000-x}", "not a port range"),
    ("{transport: sip, url: 'sip:a@h', codecs: [G729]}", r"target\.codecs\[0\]"),
    ("{transport: smoke, url: 'x'}", "target: Input tag 'smoke' found using 'transport'"),
])
def test_bad_targets_are_profile_errors_naming_the_field(section, message):
    with pytest.raises(ProfileError, match=message):
        parse_profile(BASE + f"target: {section}")


async def test_port_pool_skips_ports_in_use_and_names_the_range_when_exhausted():
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    pool = PortPool(port, port + 1)
    try:
        sock, _ = await pool.bind("127.0.0.1", asyncio.DatagramProtocol)
        assert sock.get_extra_info("sockname")[1] == port + 1  # the taken one was skipped
        with pytest.raises(SetupFailed, match=rf"RTP port range {port}-{port + 1} exhausted"):
            await pool.bind("127.0.0.1", asyncio.DatagramProtocol)
        sock.close()
    finally:
        taken.close()
