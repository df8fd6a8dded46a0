"""`loadcaller run` over SIP against baresip, a SIP user agent someone else wrote.

baresip (Debian package baresip) answers our calls by itself (an account with
``answermode=auto``) and plays a WAV file made here as its microphone: one spoken
phrase (espeak-ng), starting 0.5 s into each cycle of a fixed length. It does not
listen to us, so its "replies" come on that schedule, which lets the
test check what our caller measured against what baresip actually sent: the
greeting must be heard about 0.5 s after the answer, and every reply onset a
whole number of cycles after the greeting's.

baresip is configured in a temporary directory (``baresip -f DIR``): SIP and
RTP on 127.0.0.1 only, the modules it needs and no user interface; its life is
bounded by ``-t`` and it is stopped at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import wave
from pathlib import Path

import pytest

from tests.peers import require_binary

from .conftest import read_jsonl, run_cli
from .ports import free_port, free_span

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

MODULES = Path("/usr/lib/baresip/modules")  # Debian's baresip-core
LEAD_IN_S = 0.5  # silence before the phrase in each cycle of the WAV
GAP_S = 2.0  # silence after it
CYCLES = 12
NEEDED = ("g711", "aufile", "aubridge")  # codecs, the WAV source, a null player
ONSET_TOLERANCE_S = 0.06  # three 20 ms frames


def free_range(size: int) -> str:
    """``FIRST-LAST``: ``size`` UDP ports all free now, FIRST even (RTP and RTCP pairs),
    so that these calls' ports stay clear of other runs on the machine."""
    base = free_span(size)
    return f"{base}-{base + size - 1}"


async def _check(*args: str) -> None:
    proc = await asyncio.create_subprocess_exec(*args, stdout=subprocess.DEVNULL,
                                                stderr=subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, f"{args[0]} failed: {err.decode()}"


async def agent_speech_wav(directory: Path) -> tuple[Path, float]:
    """A WAV of 8 kHz mono 16-bit: LEAD_IN_S of silence, a phrase, GAP_S of silence,
    CYCLES times. Returns the file and the length of one cycle in seconds."""
    espeak = require_binary("espeak-ng", "espeak-ng")
    sox = require_binary("sox", "sox")
    raw, out = directory / "phrase.wav", directory / "agent.wav"
    await _check(espeak, "-w", str(raw), "Hello, how can I help?")
    await _check(sox, str(raw), "-r", "8000", "-c", "1", "-b", "16", str(out),
                 "pad", str(LEAD_IN_S), str(GAP_S), "repeat", str(CYCLES - 1))
    with wave.open(str(out)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        return out, w.getnframes() / w.getframerate() / CYCLES


class Baresip:
    """One baresip answering ``sip:baresip@127.0.0.1:PORT`` (see the module docstring)."""

    def __init__(self, directory: Path, wav: Path, *, life_s: int = 60) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port(tcp_too=True)  # baresip listens on both
        self.url = f"sip:baresip@127.0.0.1:{self.port}"
        self.log = self.dir / "baresip.log"
        missing = [m for m in (*NEEDED, "account", "menu") if not (MODULES / f"{m}.so").exists()]
        assert not missing, f"baresip modules {missing} missing in {MODULES}"
        (self.dir / "config").write_text("\n".join([
            "poll_method epoll",
            "net_interface 127.0.0.1",  # else SDP offers the address of eth0
            f"sip_listen 127.0.0.1:{self.port}",
            "call_max_calls 8",
            f"audio_source aufile,{wav}",  # the microphone: our WAV, from its start per call
            "audio_player aubridge,nowhere",  # a sink nobody reads (no sound card here)
            "audio_alert aubridge,nowhere",
            f"rtp_ports {free_range(40)}",
            "rtcp_mux no",
            "jitter_buffer_delay 1-5",
            "rtp_stats no",
            f"module_path {MODULES}",
            *(f"module {m}.so" for m in NEEDED),
            "module_tmp account.so",
            "module_app menu.so",  # menu answers calls for answermode=auto
            "",
        ]))
        (self.dir / "accounts").write_text(
            "<sip:baresip@127.0.0.1>;regint=0;answermode=auto;audio_codecs=PCMU,PCMA\n")
        self.args = [require_binary("baresip", "baresip"), "-4", "-s", "-f", str(self.dir),
                     "-t", str(life_s)]
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Baresip:
        with self.log.open("wb") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *self.args, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT)
        for _ in range(200):  # at most 10 s
            if "baresip is ready." in self.output():
                return self
            if self.proc.returncode is not None:
                break
            await asyncio.sleep(0.05)
        await self.stop()
        raise AssertionError(f"baresip did not start:\n{self.output()}")

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        for send in (proc.terminate, proc.kill):
            with contextlib.suppress(ProcessLookupError):
                send()
            try:
                await asyncio.wait_for(proc.wait(), 5)
                return
            except TimeoutError:
                continue

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def write_profile(path: Path, *, url: str, users: int) -> Path:
    """``users`` callers, one call each: hear the greeting, two turns, hang up."""
    path.write_text(f"""name: baresip
target: {{transport: sip, url: "{url}", rtp_ports: "{free_range(4 * users + 4)}",
          setup_timeout: 5s, no_media_timeout: 3s}}
load: {{users: {users}, spawn_rate: 50, duration: 0.5s, stop_timeout: 30s}}
call: {{turn_timeout: 6s, give_up_after_no_response: 2, max_call_duration: 40s}}
scenarios:
  - name: s
    steps:
      - wait_for_agent
      - say: {{phrase: hello_order}}
      - wait_for_agent
      - say: {{phrase: thanks_bye}}
      - wait_for_agent
      - hangup
""")
    return path


async def test_calls_to_baresip_connect_carry_g711_both_ways_and_measure_its_schedule(
        tmp_path):
    wav, cycle_s = await agent_speech_wav(tmp_path)
    async with Baresip(tmp_path / "baresip", wav) as baresip:
        profile = write_profile(tmp_path / "p.yaml", url=baresip.url, users=2)
        code, out, err = await run_cli(
            "run", str(profile), "--results-dir", str(tmp_path / "r"), "--progress-every",
            "0", "--metrics-port", "-1", timeout=90)
        log = baresip.output()
    context = f"--- loadcaller\n{out[-2000:]}\n{err[-3000:]}\n--- baresip\n{log[-4000:]}"
    assert code == 0 and "Traceback" not in err, context
    calls = read_jsonl(tmp_path / "r" / "calls.jsonl")
    turns = read_jsonl(tmp_path / "r" / "turns.jsonl")
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert len(calls) == 2, context
    for call in calls:
        assert call["outcome"] in ("completed", "agent_hangup"), (call, context)
        assert call["transport"] == "sip" and 0 < call["setup_ms"] < 2000
        assert call["remote_id"] in log  # the Call-ID baresip saw (its -s SIP trace)
        media = call["media"]
        assert media["codec"] in ("PCMU", "PCMA"), media
        assert media["packets_sent"] > 100 and media["packets_received"] > 100, media
        assert media["loss_ratio"] < 0.01 and media["malformed"] == 0, media
        assert "rtp_foreign_source" not in media, media
        # baresip starts the WAV when the call is up: its phrase begins LEAD_IN_S in
        assert call["greeting_ms"] is not None, call
        assert LEAD_IN_S * 1000 - 50 < call["greeting_ms"] < LEAD_IN_S * 1000 + 700, call
    assert summary["calls"]["failed"] == 0, summary["calls"]

    assert turns and all(t["outcome"] in ("answered", "no_response", "dropped",
                                          "agent_hangup") for t in turns), turns
    answered = [t for t in turns if t["outcome"] == "answered"]
    assert answered, turns
    by_call = {c["remote_id"]: c for c in calls}
    for turn in answered:
        # baresip speaks on a fixed cycle: every reply onset we measured lies a whole
        # number of cycles after the greeting's onset
        call = by_call[turn["remote_id"]]
        greeting = call["t_start"] + (call["setup_ms"] + call["greeting_ms"]) / 1000
        cycles = (turn["t_reply_onset"] - greeting) / cycle_s
        assert round(cycles) >= 1, (turn, call)
        assert abs(cycles - round(cycles)) * cycle_s < ONSET_TOLERANCE_S, (cycles, turn, call)
        assert 0 < turn["latency_ms"] < 6000, turn
