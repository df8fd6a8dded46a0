"""Callers spread over processes when one process cannot carry them (no --processes)."""

from __future__ import annotations

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
    assert default_processes(1000, twilio)[0] == 3
    assert "Twilio stream callers" in default_processes(1000, twilio)[1]
    assert default_processes(sip_transport.CALLS_PER_PROCESS + 1, sip)[0] == 2
    assert per < sip_transport.CALLS_PER_PROCESS < twilio_stream.CALLS_PER_PROCESS
