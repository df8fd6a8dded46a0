"""Callers spread over processes when one process cannot carry them (no --processes)."""

from __future__ import annotations

from loadcaller.cli import spread_processes
from loadcaller.compile import compile_profile
from loadcaller.profile import parse_profile
from loadcaller.swarm.options import SwarmOptions
from loadcaller.transports import base, twilio_stream, webrtc
from loadcaller.transports import sip as sip_transport
from loadcaller.transports.base import default_processes
from loadcaller.transports.sip import SipTarget
from loadcaller.transports.twilio_stream import TwilioTarget
from loadcaller.transports.webrtc import WebRtcTarget


def test_callers_spread_over_processes_by_default(monkeypatch):
    monkeypatch.setattr(base.os, "cpu_count", lambda: 8)
    pcmu = WebRtcTarget(url="webrtc+http://127.0.0.1:1/x")
    per = webrtc.CALLS_PER_PROCESS["PCMU"]
    assert default_processes(per, pcmu) == (0, "")  # one process is enough: run in place
    procs, why = default_processes(per + 1, pcmu)
    assert procs == 2 and f"{per + 1} WebRTC PCMU callers" in why
    assert f"at most {per} per process" in why
    assert default_processes(per * 100, pcmu)[0] == 8  # never more than the CPUs
    opus = WebRtcTarget(url="webrtc+http://127.0.0.1:1/x", codec="opus")
    assert webrtc.CALLS_PER_PROCESS["opus"] < per
    assert default_processes(webrtc.CALLS_PER_PROCESS["opus"] + 1, opus)[0] == 2
    # our own RTP and websocket callers carry more per process than aiortc's
    twilio, sip = TwilioTarget(url="ws://127.0.0.1:1/m"), SipTarget(url="sip:a@127.0.0.1:1")
    assert default_processes(twilio_stream.CALLS_PER_PROCESS, twilio) == (0, "")
    assert default_processes(1000, twilio)[0] == -(-1000 // twilio_stream.CALLS_PER_PROCESS)
    assert "Twilio stream callers" in default_processes(1000, twilio)[1]
    assert default_processes(sip_transport.CALLS_PER_PROCESS + 1, sip)[0] == 2
    assert per < sip_transport.CALLS_PER_PROCESS < twilio_stream.CALLS_PER_PROCESS


def spec(load: str, url: str = "ws://127.0.0.1:1/media"):  # type: ignore[no-untyped-def]
    text = (f'name: t\ntarget: {{url: "{url}"}}\nload: {load}\n'
            "scenarios: [{name: s, steps: [wait_for_agent]}]\n")
    return compile_profile(parse_profile(text, "t.yaml"))


def test_loadcaller_run_forks_workers_only_when_none_were_asked_for(monkeypatch):
    monkeypatch.setattr(base.os, "cpu_count", lambda: 4)
    per = twilio_stream.CALLS_PER_PROCESS
    many = spec(f"{{users: {2 * per + 1}, duration: 10s}}")
    opts, why = spread_processes(SwarmOptions(), many)
    assert opts.processes == 3
    assert why.startswith(f"{2 * per + 1} Twilio stream callers over 3 processes")
    # a load shape's peak counts, not the plan's first users
    peak = spec(f"{{users: 10, duration: 10m, shape: {{type: spike, spike_users: {per + 1}, "
                "at: 1m, hold: 1m}}")
    assert spread_processes(SwarmOptions(), peak)[0].processes == 2
    # the user's choice stands; a master or a worker never forks; few callers run in place
    assert spread_processes(SwarmOptions(processes=1), many) == (SwarmOptions(processes=1), "")
    assert spread_processes(SwarmOptions(role="master"), many)[0].processes == 0
    assert spread_processes(SwarmOptions(role="worker"), many)[0].processes == 0
    assert spread_processes(SwarmOptions(), spec(f"{{users: {per}, duration: 10s}}")) == (
        SwarmOptions(), "")
    sip = spec(f"{{users: {sip_transport.CALLS_PER_PROCESS + 1}, duration: 10s}}",
               url="sip:agent@127.0.0.1:5060")
    assert spread_processes(SwarmOptions(), sip)[0].processes == 2
