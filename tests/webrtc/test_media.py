"""WebRTC media: the Opus 48 -> 8 kHz path, mu-law frames, the tap's stamps, a real aiortc pair."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.rtcrtpsender import RTCRtpSender

from loadcaller.audio.g711 import ulaw_decode, ulaw_encode
from loadcaller.media.frames import FRAME_NS
from loadcaller.webrtc.media import ClockTrack, TrackTap
from loadcaller.webrtc.resample import Decimator, downmix


def _tone(freq: float, rate: int, seconds: float, amp: float = 8000.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def _peak_hz(x: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * rate / len(x))


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


@pytest.mark.parametrize("freq", [300.0, 1000.0, 3000.0])
def test_decimator_keeps_a_tone_frequency_and_level(freq):
    x = _tone(freq, 48000, 0.5)
    dec = Decimator()
    y = np.concatenate([dec.process(x[i:i + 960]) for i in range(0, len(x), 960)])
    assert len(y) == len(x) // 6
    y = y[100:]  # past the filter's start-up
    assert abs(_peak_hz(y, 8000) - freq) < 20
    assert abs(20 * np.log10(_rms(y) / _rms(x))) < 0.5  # level within half a dB


def test_decimator_rejects_what_would_alias():
    x = _tone(6000.0, 48000, 0.5)  # a naive [::6] slice folds 6 kHz onto 2 kHz at full level
    dec = Decimator()
    y = np.concatenate([dec.process(x[i:i + 960]) for i in range(0, len(x), 960)])[100:]
    assert _rms(x[::6]) > 1000
    assert 20 * np.log10(max(_rms(y), 1e-3) / _rms(x)) < -40


def test_downmix_averages_channels():
    stereo = np.array([100, 300, -200, 0], np.int16)
    assert downmix(stereo, 2).tolist() == [200, -100]


def test_mulaw_round_trip_stays_within_a_quantisation_step():
    x = _tone(440.0, 8000, 0.1)
    back = ulaw_decode(ulaw_encode(x)).astype(np.int32)
    err = np.abs(back - x)
    assert np.all(err <= np.maximum(np.abs(x.astype(np.int32)) // 16, 8))


def test_tap_stamps_frames_with_arrival_and_splits_long_packets():
    tap = TrackTap(_FakeTrack(), None, {0: "PCMU"})
    a, b = bytes([1]) * 160, bytes([2]) * 320
    tap.on_packet(0, 10, a, 1_000)
    tap.on_packet(0, 11, b, 2_000)  # 40 ms in one packet: two frames, 20 ms apart
    tap.on_packet(13, 12, b"\x00", 2_500)  # comfort noise: counted, not heard
    tap.on_packet(0, 11, a, 3_000)  # a duplicate of a slot already heard
    frames = tap.drain(10_000)
    assert [(f.t_ns, f.audio[:1]) for f in frames] == [
        (1_000, b"\x01"), (2_000, b"\x02"), (2_000 + FRAME_NS, b"\x02")]
    tap.on_packet(0, 15, a, 5_000)  # two sequence numbers skipped: lost
    assert tap.drain(20_000)[0].t_ns == 2_000 + FRAME_NS  # never earlier than the last frame
    assert tap.stats.expected == 6 and tap.stats.received == 5 and tap.stats.lost == 1
    assert tap.stats.duplicates_or_late == 1 and tap.other_payload == 1


def test_tap_jitter_follows_rfc3550():
    tap = TrackTap(_FakeTrack(), None, {0: "PCMU"})
    for i in range(3):  # on time: no jitter
        tap.on_packet(0, i, bytes(160), i * FRAME_NS, i * 160)
    assert tap.stats.jitter_ms == 0.0
    tap.on_packet(0, 3, bytes(160), 3 * FRAME_NS + 16_000_000, 3 * 160)  # 16 ms late
    assert tap.stats.jitter_ms == pytest.approx(1.0)  # J += (|D| - J) / 16


class _FakeTrack:
    readyState = "live"


async def _pair(codec: str) -> tuple[RTCPeerConnection, RTCPeerConnection, ClockTrack,
                                      asyncio.Future[TrackTap]]:
    """Two real aiortc peers on 127.0.0.1: a ClockTrack on one, a TrackTap on the other."""
    a = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    b = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    track = ClockTrack(codec)  # type: ignore[arg-type]
    tr = a.addTransceiver(track, direction="sendonly")
    caps = RTCRtpSender.getCapabilities("audio").codecs
    tr.setCodecPreferences([c for c in caps if c.name.lower() == codec.lower()])
    loop = asyncio.get_running_loop()
    tapped: asyncio.Future[TrackTap] = loop.create_future()

    @b.on("track")
    def _on_track(remote):
        receiver = next(t.receiver for t in b.getTransceivers() if t.receiver.track is remote)
        pts = {c.payloadType: ("PCMU" if c.name == "PCMU" else "opus")
               for c in next(t for t in b.getTransceivers())._codecs
               if c.name in ("PCMU", "opus")}
        tapped.set_result(TrackTap(remote, receiver, pts))

    await a.setLocalDescription(await a.createOffer())
    await b.setRemoteDescription(a.localDescription)
    await b.setLocalDescription(await b.createAnswer())
    await a.setRemoteDescription(b.localDescription)
    return a, b, track, tapped


@pytest.mark.parametrize("codec", ["PCMU", "opus"])
async def test_clock_track_to_track_tap_over_real_aiortc(codec):
    a, b, track, tapped = await _pair(codec)
    try:
        tap = await asyncio.wait_for(tapped, 10)
        tone = ulaw_encode(_tone(1000.0, 8000, 2.0))
        heard = []
        for i in range(0, len(tone), 160):  # paced by us, as the media clock would
            track.push(tone[i:i + 160])
            await asyncio.sleep(0.02)
            heard += tap.drain(0)
        for _ in range(50):
            if len(heard) >= 90:
                break
            await asyncio.sleep(0.02)
            heard += tap.drain(0)
        assert len(heard) >= 90 and tap.stats.received >= 90
        stamps = [f.t_ns for f in heard]
        assert stamps == sorted(stamps)
        # RTP taken as aioice received it, before the DTLS task's hop (all but what came
        # before the DTLS handshake was done), and none overtook another
        assert tap.fast_packets >= tap.stats.received - 5
        assert tap.stats.duplicates_or_late == 0 and tap.stats.lost == 0
        pcm = ulaw_decode(b"".join(f.audio for f in heard[20:]))
        assert abs(_peak_hz(pcm, 8000) - 1000.0) < 20
        level = 20 * np.log10(_rms(pcm) / (8000 / np.sqrt(2)))
        assert abs(level) < (1.0 if codec == "PCMU" else 3.0)
    finally:
        await a.close()
        await b.close()
