"""WebRTC callers at scale: loadcaller's against a plain aiortc caller, PCMU and Opus.

Run from the repository root::

    python benchmarks/webrtc_scale.py [--calls 10 30 60] [--seconds 15] [--codecs PCMU opus]

Everything runs on 127.0.0.1. One aiortc answering peer runs in its own process
(tests/e2e/webrtc_peer.py: Pipecat's JSON signalling; it plays each caller's
words back once the caller stops). For each codec and each level of N calls,
each caller runs in a fresh process of its own:

- ``ours``: N ``Call``s over ``WebRtcTransport`` on one media clock (the path
  ``loadcaller run`` takes, without Locust): ``ClockTrack`` fed by the clock's tick,
  ``TrackTap`` read in the same tick, the VAD and turn measurement running; RTP
  sent from the tick (``DirectRtp``). ``ours-track``: the same with
  ``direct_rtp: false`` (the ``ClockTrack`` handed to aiortc's sender task).
- ``plain``: N aiortc peer connections written the straightforward way: one
  ``MediaStreamTrack`` per call pacing itself (``await asyncio.sleep`` to its
  next 20 ms deadline, raw ``AudioFrame`` s encoded by aiortc's encoder) and one
  task per call awaiting ``remote_track.recv()`` (aiortc's jitter buffer and
  decoder thread). Its "lag" is each frame's lateness against its own schedule.

Once every call is connected and 3 s have passed, the caller process's CPU
(all threads, getrusage) and its lag over ``--seconds`` are measured.
CPU ms per call-second = CPU ms / (calls x seconds). The load average is printed
beside every figure: this machine is shared. "calls per process at lag p99 < 10
ms" is the largest N measured that held it. This prints figures; it does not
pass or fail.
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LAG_GOAL_MS = 10.0


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _loadavg() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


# ---- the callers (run in a child process) -----------------------------------------------


async def _ours(url: str, codec: str, n: int, seconds: float,
                direct: bool = True) -> dict[str, Any]:
    from loadcaller.audio.pack import load_pack_audio
    from loadcaller.calls.call import Call
    from loadcaller.calls.clock import MediaClock
    from loadcaller.calls.histogram import Histogram
    from loadcaller.calls.scenario import CallPolicy, Say, Scenario, WaitForAgent
    from loadcaller.calls.utterance import make_utterance
    from loadcaller.transports.webrtc import WebRtcTarget

    words = make_utterance("hello", load_pack_audio("hello_order", "en-us"))
    steps = tuple(s for _ in range(200) for s in (Say(words), WaitForAgent()))
    target = WebRtcTarget(url=url, codec=codec, direct_rtp=direct)  # type: ignore[arg-type]
    clock = MediaClock()
    clock.start()
    calls = [Call(call_id=f"c{i}", transport=target.new_transport(call_id=f"c{i}"),
                  scenario=Scenario("bench", steps), clock=clock,
                  policy=CallPolicy(max_call_ns=3600 * 10**9)) for i in range(n)]
    tasks = [asyncio.ensure_future(c.run()) for c in calls]
    async with asyncio.timeout(120):
        while sum(c.script is not None for c in calls) < n:
            if any(t.done() for t in tasks):
                failed = [t.result().reason for t in tasks if t.done()]
                raise RuntimeError(f"a call ended during setup: {failed[:3]}")
            await asyncio.sleep(0.1)
    await asyncio.sleep(3)
    clock.lag = Histogram()
    cpu0, t0 = _cpu_s(), time.monotonic()
    await asyncio.sleep(seconds)
    cpu, wall = _cpu_s() - cpu0, time.monotonic() - t0
    up = sum(not t.done() for t in tasks)
    turns = sum(len(c.record.turns) for c in calls)
    out = {"cpu_s": cpu, "wall_s": wall, "up": up, "lag_p99_ms": clock.lag.percentile_ms(99),
           "lag_p50_ms": clock.lag.percentile_ms(50), "turns": turns}
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await clock.stop()
    return out


async def _plain(url: str, codec: str, n: int, seconds: float) -> dict[str, Any]:
    import aiohttp
    import av
    import numpy as np
    from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection
    from aiortc import RTCSessionDescription as Desc
    from aiortc.rtcrtpsender import RTCRtpSender

    from loadcaller.audio.g711 import ulaw_decode
    from loadcaller.audio.pack import load_pack_audio
    from loadcaller.calls.histogram import Histogram

    pcm = ulaw_decode(load_pack_audio("hello_order", "en-us"))
    pcm = np.concatenate([pcm, np.zeros(8000, np.int16)])  # words, then a second of silence
    lag = Histogram()
    measuring = [False]

    class Paced(MediaStreamTrack):
        """The usual aiortc audio track: it sleeps to its own next 20 ms deadline."""

        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self.k = 0
            self.start: float | None = None

        async def recv(self) -> av.AudioFrame:
            loop = asyncio.get_running_loop()
            if self.start is None:
                self.start = loop.time()
            due = self.start + self.k * 0.02
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if measuring[0]:
                lag.record_ns(max(0, int((loop.time() - due) * 1e9)))
            i = (self.k * 160) % (len(pcm) - 160)
            frame = av.AudioFrame.from_ndarray(pcm[i:i + 160].reshape(1, -1), format="s16",
                                               layout="mono")
            frame.sample_rate, frame.pts = 8000, self.k * 160
            frame.time_base = fractions.Fraction(1, 8000)
            self.k += 1
            return frame

    async def read(track: MediaStreamTrack) -> None:
        while True:
            await track.recv()

    pcs: list[RTCPeerConnection] = []
    readers: list[asyncio.Future[None]] = []
    http = aiohttp.ClientSession()
    caps = [c for c in RTCRtpSender.getCapabilities("audio").codecs
            if c.name.lower() == codec.lower()]
    for _ in range(n):
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver(Paced(), direction="sendrecv").setCodecPreferences(caps)
        pc.on("track", lambda t: readers.append(asyncio.ensure_future(read(t))))
        await pc.setLocalDescription(await pc.createOffer())
        async with http.post(url.split("+", 1)[1], json={
                "sdp": pc.localDescription.sdp, "type": "offer"}) as resp:
            ans = await resp.json()
        await pc.setRemoteDescription(Desc(ans["sdp"], "answer"))
        pcs.append(pc)
    async with asyncio.timeout(120):
        while sum(pc.connectionState == "connected" for pc in pcs) < n:
            await asyncio.sleep(0.1)
    await asyncio.sleep(3)
    measuring[0] = True
    cpu0, t0 = _cpu_s(), time.monotonic()
    await asyncio.sleep(seconds)
    cpu, wall = _cpu_s() - cpu0, time.monotonic() - t0
    up = sum(pc.connectionState == "connected" for pc in pcs)
    out = {"cpu_s": cpu, "wall_s": wall, "up": up, "lag_p99_ms": lag.percentile_ms(99),
           "lag_p50_ms": lag.percentile_ms(50), "turns": None}
    for r in readers:
        r.cancel()
    await asyncio.gather(*(pc.close() for pc in pcs), return_exceptions=True)
    await http.close()
    return out


def _child(variant: str, url: str, codec: str, n: int, seconds: float) -> None:
    import uvloop

    if variant == "plain":
        out = uvloop.run(_plain(url, codec, n, seconds))
    else:
        out = uvloop.run(_ours(url, codec, n, seconds, direct=variant == "ours"))
    print("RESULT " + json.dumps(out), flush=True)


# ---- the parent ---------------------------------------------------------------------------


def _peer() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "e2e" / "webrtc_peer.py")],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        raise SystemExit("the answering peer did not start")
    return proc, line.split()[1]


def _measure(variant: str, url: str, codec: str, n: int, seconds: float) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", variant, url, codec, str(n), str(seconds)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 200,
                             cwd=ROOT, check=False)
    except subprocess.TimeoutExpired:
        return {"error": "timed out"}
    for line in res.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[7:]))
    return {"error": (res.stderr.strip().splitlines() or ["no result"])[-1][:200]}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, variant, url, codec, n, seconds = sys.argv
        _child(variant, url, codec, int(n), float(seconds))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, nargs="+", default=[10, 30, 60])
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--codecs", nargs="+", default=["PCMU", "opus"])
    ap.add_argument("--variants", nargs="+", default=["ours", "ours-track", "plain"])
    args = ap.parse_args()
    peer, base = _peer()
    url = f"webrtc+{base}/api/offer"
    held: dict[tuple[str, str], int] = {}
    print(f"{'variant':8} {'codec':5} {'calls':>5} {'up':>4} {'CPU ms/call-s':>14} "
          f"{'lag p50':>8} {'lag p99':>8} {'turns':>6}  load avg", flush=True)
    try:
        for codec in args.codecs:
            for n in args.calls:
                for variant in args.variants:
                    r = _measure(variant, url, codec, n, args.seconds)
                    if "error" in r:
                        print(f"{variant:8} {codec:5} {n:5}  error: {r['error']}  "
                              f"load {_loadavg()}", flush=True)
                        continue
                    per = 1000 * r["cpu_s"] / (max(1, r["up"]) * r["wall_s"])
                    print(f"{variant:8} {codec:5} {n:5} {r['up']:4} {per:14.2f} "
                          f"{r['lag_p50_ms']:7.2f}ms {r['lag_p99_ms']:7.2f}ms "
                          f"{r['turns'] if r['turns'] is not None else '-':>6}  "
                          f"{_loadavg()}", flush=True)
                    if r["up"] == n and r["lag_p99_ms"] < LAG_GOAL_MS:
                        held[(variant, codec)] = max(held.get((variant, codec), 0), n)
        print("\ncalls per process at media-clock lag p99 < 10 ms (largest N measured):")
        for codec in args.codecs:
            for variant in args.variants:
                print(f"  {variant:6} {codec:5} {held.get((variant, codec), 0)}")
        print(f"load average at the end: {_loadavg()}")
    finally:
        peer.terminate()
        try:
            peer.wait(10)
        except subprocess.TimeoutExpired:
            peer.kill()


if __name__ == "__main__":
    main()
