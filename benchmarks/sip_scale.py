"""SIP calls at scale: loadcaller's CPU per call-second and media clock lag, beside SIPp's UAC.

Run from the repository root (SIPp: Debian package sip-tester)::

    python benchmarks/sip_scale.py [--calls 200 500 1000] [--seconds 30] [--variants long short]

Everything runs on 127.0.0.1, each peer in its own process. For each level of N
concurrent calls and each variant of call length:

- ours, on the path users run: a SIPp UAS (``sipp -sn uas -rtp_echo``: every RTP
  packet goes back to its sender) and ``loadcaller run`` (a subprocess) with a
  profile written to a temporary directory: N users, ``--spawn-rate`` users per
  second, calls of ``say`` and ``pause`` steps. ``long``: calls outlast the level;
  ``short``: calls of ``--short-call`` seconds, so calls start and end inside the
  window. Once N calls hold an RTP port (counted in /proc/net/udp, which costs the
  run nothing) and ``--settle`` seconds have passed, the loadcaller process tree's
  CPU is read from /proc over ``--seconds``. Calls up, completed and failed in the
  window come from calls.jsonl afterwards (its instants are on the system's
  monotonic clock); the media clock lag over the window from two /metrics scrapes
  around it (p99 linear within the Prometheus buckets, as histogram_quantile).
  /metrics is scraped only then: one scrape costs loadcaller ~0.15 s of CPU on
  its gevent thread (benchmarks/README.md). If one process does not hold the level
  (mean calls up below 95% of N, a failed call, or lag p99 >= 5 ms) the level is
  run again with ``--processes 2``.
- SIPp's own UAC at the same N (benchmarks/sipp/uac_rtp_stream.xml, ``-l N``, the
  same spawn rate and call length) against the same kind of UAS: ``rtp_stream``
  loops the speech of /usr/share/sip-tester/g711a.pcap (as mu-law) in 20 ms
  packets. Its CPU over the same kind of window; calls up from its -trace_stat file.

CPU ms per call-second = CPU seconds in the window x 1000 / (mean calls up x
window seconds): what one call costs per second of media, whatever else the
machine runs. On loopback the kernel delivers a datagram in the sender's system
call, so each side's system time includes delivering its packets to the other.
The UAS's CPU is printed too: it echoes 50 packets/s per call on the same
machine. SIPp 3.6.1's UAC never reads the echoed RTP (the kernel drops it at its
sockets; each run's lines say how much, from /proc/net/udp), so its figure covers
sending only; ours includes receiving every packet, the jitter and loss figures
and the VAD. This prints figures; it does not pass or fail.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from procstat import cpu_seconds, cpu_times, descendants, tree_cpu_times
from swarm_common import scrape, tempdir

from loadcaller.audio.g711 import alaw_decode, ulaw_encode
from loadcaller.audio.pack import load_pack_audio

UAC_XML = Path(__file__).resolve().parent / "sipp" / "uac_rtp_stream.xml"
PCAP = Path("/usr/share/sip-tester/g711a.pcap")
HELD_LAG_MS = 5.0  # the goal: media clock lag p99 under this
HELD_SHARE = 0.95  # of N calls up, on average over the window
LAG = "loadcaller_media_clock_lag_seconds"
PHRASES = ("hello_order", "order_number", "thanks_bye")
NOT_FAILED = ("completed", "cancelled")


# ---- ports, files, sockets -----------------------------------------------------------


def _udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_udp_port(*, even_pair: bool = False) -> int:
    """A UDP port free on 127.0.0.1 now (``even_pair``: even, and port + 2 free too,
    as SIPp's -rtp_echo binds both)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if not even_pair:
            return port
        port -= port % 2
        if port + 2 <= 65535 and _udp_free(port) and _udp_free(port + 2):
            return port
    raise RuntimeError("no free UDP port pair on 127.0.0.1")


def free_rtp_range(calls: int) -> tuple[int, int]:
    """A range whose even ports are all free now, for ``calls`` calls' RTP: the
    sockets later bound in it are our calls' (:func:`udp_bound` counts them)."""
    span = 2 * calls + 64
    for base in range(20000, 65535 - span, 2048):
        if all(_udp_free(p) for p in range(base, base + span, 2)):
            return base, base + span - 1
    raise RuntimeError(f"no free range of {span} UDP ports on 127.0.0.1")


def udp_bound(lo: int, hi: int) -> int:
    """UDP sockets bound on 127.0.0.1 to a port in [lo, hi] (one per call's RTP)."""
    n = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
            addr, _, port = line.split()[1].partition(":")
            if addr == "0100007F" and lo <= int(port, 16) <= hi:
                n += 1
    return n


def udp_backlog(pids: list[int]) -> tuple[int, int]:
    """(bytes waiting, datagrams dropped) at the UDP sockets these processes hold,
    from /proc/net/udp: what nobody reads piles up, then is dropped."""
    inodes = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    link = os.readlink(fd)
                    if link.startswith("socket:["):
                        inodes.add(link[8:-1])
    queued = dropped = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
            f = line.split()
            if len(f) >= 13 and f[9] in inodes:
                queued += int(f[4].split(":")[1], 16)
                dropped += int(f[12])
    return queued, dropped


def pcap_to_ulaw(pcap: Path, out: Path) -> float:
    """The RTP payloads of a G.711 A-law capture (Ethernet, IPv4, UDP) as raw mu-law,
    the codec the UAS answers with; seconds of audio."""
    data, off, payload = pcap.read_bytes(), 24, bytearray()
    if struct.unpack("<I", data[:4])[0] != 0xA1B2C3D4:
        raise RuntimeError(f"{pcap}: not a little-endian classic pcap")
    while off + 16 <= len(data):
        incl = struct.unpack("<IIII", data[off:off + 16])[2]
        packet, off = data[off + 16:off + 16 + incl], off + 16 + incl
        ip = packet[14:]
        payload += ip[(ip[0] & 15) * 4 + 8 + 12:]  # past the IP, UDP and RTP headers
    out.write_bytes(ulaw_encode(alaw_decode(bytes(payload))))
    return len(payload) / 8000


def raise_fd_limit(calls: int) -> None:
    """Soft RLIMIT_NOFILE up to what ``calls`` calls need, within the hard limit
    (SIPp and loadcaller inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 4 * calls + 256
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, need), hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < need:
        print(f"warning: open files limited to {hard}; {calls} calls want about {need}",
              file=sys.stderr)


# ---- processes -------------------------------------------------------------------------


def _stop(proc: subprocess.Popen[bytes], first: int, grace_s: float, *,
          group: bool = False) -> int | None:
    """``first`` signal, then SIGTERM, then SIGKILL, each wait bounded. With ``group``
    the last two go to the process group (forked workers too)."""
    for sig, wait in ((first, grace_s), (signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        if proc.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group and sig != first:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait)
    if group:  # a worker its parent left behind
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.poll()


class Sipp:
    """One SIPp process in its own directory, on 127.0.0.1, with a statistics file
    written every second and ``-timeout`` bounding its life."""

    def __init__(self, workdir: Path, args: list[str], *, life_s: float) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_udp_port()
        cmd = [shutil.which("sipp") or "sipp", *args, "-i", "127.0.0.1", "-mi", "127.0.0.1",
               "-p", str(self.port), "-nostdin", "-timeout", f"{math.ceil(life_s)}s",
               "-trace_stat", "-stf", "stats.csv", "-fd", "1",
               "-trace_err", "-error_file", "errors.log"]
        with (self.dir / "stdout.log").open("wb") as out:
            self.proc = subprocess.Popen(cmd, cwd=self.dir, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_bound(self, timeout_s: float = 10.0) -> None:
        """Until SIPp holds its SIP port (a UAS is ready), at most ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"sipp exited with {self.proc.returncode}:\n{self.tail()}")
            if not _udp_free(self.port):
                return
            time.sleep(0.05)
        raise RuntimeError(f"sipp did not bind 127.0.0.1:{self.port} in {timeout_s:g}s")

    def stats(self) -> dict[str, str]:
        """The last complete row of the -trace_stat file by column name ({} before one)."""
        path = self.dir / "stats.csv"
        if not path.exists():
            return {}
        rows = list(csv.reader(path.read_text(errors="replace").splitlines(), delimiter=";"))
        full = [r for r in rows[1:] if len(r) >= len(rows[0]) - 1] if rows else []
        return dict(zip(rows[0], full[-1], strict=False)) if full else {}

    def stat(self, name: str, row: dict[str, str] | None = None) -> int:
        try:
            return int((self.stats() if row is None else row).get(name) or 0)
        except ValueError:
            return 0

    def tail(self) -> str:
        out = []
        for name in ("errors.log", "stdout.log"):
            path = self.dir / name
            if path.exists():
                out.append(f"--- sipp {name}\n{path.read_text(errors='replace')[-1500:]}")
        return "\n".join(out)

    def stop(self) -> None:
        _stop(self.proc, signal.SIGTERM, 5.0)


def start_uas(workdir: Path, calls: int, life_s: float) -> Sipp:
    uas = Sipp(workdir, ["-sn", "uas", "-rtp_echo", "-mp", str(free_udp_port(even_pair=True)),
                         "-max_socket", str(4 * calls + 64)], life_s=life_s)
    try:
        uas.wait_bound()
    except RuntimeError:
        uas.stop()
        raise
    return uas


# ---- the measurement --------------------------------------------------------------------


@dataclass
class Window:
    """CPU of the measured process (tree) and of the UAS over one window."""

    t0: float
    t1: float
    user_s: float
    system_s: float
    uas_cpu_s: float
    samples: list[float]  # calls up, sampled every second
    load: float

    @property
    def wall(self) -> float:
        return self.t1 - self.t0


def measure(seconds: float, times: Callable[[], tuple[float, float]],
            up: Callable[[], float], uas_pid: int) -> Window:
    """CPU times at both ends of ``seconds``; calls up sampled every second between."""
    (u0, s0), x0, t0 = times(), cpu_seconds(uas_pid), time.monotonic()
    samples = []
    while (left := t0 + seconds - time.monotonic()) > 0:
        time.sleep(min(1.0, left))
        samples.append(up())
    (u1, s1), x1, t1 = times(), cpu_seconds(uas_pid), time.monotonic()
    return Window(t0, t1, u1 - u0, s1 - s0, x1 - x0, samples, os.getloadavg()[0])


def wait_up(up: Callable[[], float], target: float, timeout_s: float,
            alive: Callable[[], bool]) -> float:
    """Poll ``up()`` every half second until it reaches ``target``; its last value."""
    deadline, n = time.monotonic() + timeout_s, 0.0
    while time.monotonic() < deadline and alive():
        n = up()
        if n >= target:
            break
        time.sleep(0.5)
    return n


@dataclass
class Result:
    side: str  # "ours" or "sipp"
    calls: int
    variant: str
    processes: int = 1
    cpu_pct: float = math.nan
    user_pct: float = math.nan
    sys_pct: float = math.nan
    ms_per_call_s: float = math.nan
    mean_up: float = 0.0
    lag_p99_ms: float = math.nan
    completed: int = 0
    failed: int = 0
    uas_cpu_pct: float = math.nan
    load: float = math.nan
    notes: list[str] = field(default_factory=list)

    def fill(self, w: Window, mean_up: float) -> None:
        self.cpu_pct = 100 * (w.user_s + w.system_s) / w.wall
        self.user_pct, self.sys_pct = 100 * w.user_s / w.wall, 100 * w.system_s / w.wall
        self.mean_up = mean_up
        self.ms_per_call_s = (1000 * (w.user_s + w.system_s) / (mean_up * w.wall)
                              if mean_up else math.nan)
        self.uas_cpu_pct, self.load = 100 * w.uas_cpu_s / w.wall, w.load

    @property
    def held(self) -> bool:
        lag_ok = self.side == "sipp" or self.lag_p99_ms < HELD_LAG_MS  # NaN: not held
        return self.mean_up >= HELD_SHARE * self.calls and self.failed == 0 and lag_ok


def lag_buckets(m: dict[str, float]) -> list[tuple[float, float]]:
    """[(le in seconds, cumulative count)] of the media clock lag histogram."""
    out = []
    for key, value in m.items():
        if key.startswith(f"{LAG}_bucket{{"):
            le = key.split('le="', 1)[1].split('"', 1)[0]
            out.append((math.inf if le == "+Inf" else float(le), value))
    return sorted(out)


def window_lag(m0: dict[str, float], m1: dict[str, float]) -> tuple[float, float, float]:
    """(p99 ms, share of ticks later than 5 ms, ticks) between two scrapes; the p99 is
    linear within its bucket, as Prometheus's histogram_quantile."""
    before = dict(lag_buckets(m0))
    rows = [(le, n - before.get(le, 0.0)) for le, n in lag_buckets(m1)]
    total = rows[-1][1] if rows else 0.0
    if total <= 0:
        return math.nan, math.nan, 0.0
    rank, lower, below, p99 = 0.99 * total, 0.0, 0.0, math.nan
    for le, cum in rows:
        if cum >= rank:
            p99 = lower if math.isinf(le) else (
                lower + (le - lower) * (rank - below) / max(cum - below, 1e-9))
            break
        lower, below = le, cum
    on_time = next((cum for le, cum in rows if le >= HELD_LAG_MS / 1000), total)
    return 1000 * p99, (total - on_time) / total, total


def calls_in_window(path: Path, t0: float, t1: float) -> dict[str, Any]:
    """From calls.jsonl: call-seconds inside [t0, t1], calls started in it, outcomes of
    calls that ended in it, RTP packets sent and heard back over the whole run."""
    out: dict[str, Any] = {"call_s": 0.0, "started": 0, "ended": {}, "reasons": {}, "sent": 0,
                           "received": 0}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        start, end = rec.get("t_start") or 0.0, rec.get("t_end") or t1
        out["call_s"] += max(0.0, min(end, t1) - max(start, t0))
        out["started"] += t0 <= start < t1
        if t0 <= end < t1:
            out["ended"][rec["outcome"]] = out["ended"].get(rec["outcome"], 0) + 1
            if rec["outcome"] not in NOT_FAILED:
                why = str(rec.get("reason"))[:80]
                out["reasons"][why] = out["reasons"].get(why, 0) + 1
        media = rec.get("media") or {}
        out["sent"] += media.get("packets_sent", 0)
        out["received"] += media.get("packets_received", 0)
    return out


# ---- loadcaller run ------------------------------------------------------------------------


def scenario_steps(variant: str, *, call_s: float, short_call_s: float) -> list[str]:
    """``long``: say/pause cycles lasting ``call_s`` or more; ``short``: the three
    phrases with equal pauses, ``short_call_s`` in all, then hang up."""
    secs = {p: len(load_pack_audio(p)) / 8000 for p in PHRASES}
    steps = []
    if variant == "short":
        gap_ms = max(0, int((short_call_s - sum(secs.values())) * 1000 / len(PHRASES)))
        for p in PHRASES:
            steps += [f"say: {{phrase: {p}}}", f"pause: {gap_ms}ms"]
    else:
        cycle = secs["hello_order"] + secs["order_number"] + 2.0
        for _ in range(math.ceil(call_s / cycle) + 1):
            steps += ["say: {phrase: hello_order}", "pause: 1s",
                      "say: {phrase: order_number}", "pause: 1s"]
    return [*steps, "hangup"]


def write_profile(path: Path, *, url: str, users: int, spawn_rate: float, duration_s: float,
                  rtp: tuple[int, int], steps: list[str]) -> Path:
    body = "\n".join(f"      - {s}" for s in steps)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"""name: sip-scale
target: {{transport: sip, url: "{url}", rtp_ports: "{rtp[0]}-{rtp[1]}",
         setup_timeout: 20s, no_media_timeout: 10s}}
load: {{users: {users}, spawn_rate: {spawn_rate:g}, duration: {duration_s:.0f}s, stop_timeout: 0s}}
call: {{turn_timeout: 60s, max_call_duration: {duration_s + 600:.0f}s}}
scenarios:
  - name: talk
    steps:
{body}
""")
    return path


class LoadcallerRun:
    """``loadcaller run`` as users run it, in its own process group."""

    def __init__(self, profile: Path, out: Path, processes: int) -> None:
        self.out = out
        self.log = out.parent / "loadcaller.stderr"
        args = [sys.executable, "-m", "loadcaller", "run", str(profile), "--results-dir",
                str(out), "--progress-every", "0", "--metrics-port", "0"]
        if processes > 1:
            args += ["--processes", str(processes)]
        with self.log.open("wb") as err:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err,
                                         start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stderr(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def metrics_url(self, timeout_s: float = 60.0) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.alive():
            for line in self.stderr().splitlines():
                word = line.split()
                if len(word) == 2 and word[0] == "metrics" and word[1].startswith("http"):
                    return word[1]
            time.sleep(0.1)
        raise RuntimeError(f"no /metrics from loadcaller run:\n{self.stderr()[-2000:]}")

    def stop(self, calls: int) -> int | None:
        """SIGINT (hang every call up, write the summary), escalating, bounded."""
        return _stop(self.proc, signal.SIGINT, 30.0 + calls / 20, group=True)

    def summary(self) -> dict[str, Any]:
        path = self.out / "summary.json"
        return json.loads(path.read_text()) if path.exists() else {}


def run_ours(n: int, variant: str, processes: int, args: argparse.Namespace,
             work: Path) -> Result:
    res = Result("ours", n, variant, processes)
    up_timeout = 2 * n / args.spawn_rate + 60
    duration = up_timeout + args.settle + args.seconds + 120  # SIGINT ends it sooner
    uas = start_uas(work / "uas", n, duration + 300)
    try:
        rtp = free_rtp_range(n)
        profile = write_profile(
            work / "profile.yaml", url=f"sip:service@127.0.0.1:{uas.port}", users=n,
            spawn_rate=args.spawn_rate, duration_s=duration, rtp=rtp,
            steps=scenario_steps(variant, call_s=duration, short_call_s=args.short_call))
        run = LoadcallerRun(profile, work / "results", processes)
        try:
            url = run.metrics_url()
            target = n if variant == "long" else HELD_SHARE * n
            reached = wait_up(lambda: udp_bound(*rtp), target, up_timeout, run.alive)
            if not run.alive():
                raise RuntimeError(f"loadcaller run exited ({run.proc.returncode}):\n"
                                   f"{run.stderr()[-2000:]}")
            if reached < target:
                res.notes.append(f"only {reached:.0f} of {n} calls up after {up_timeout:.0f}s")
            m0 = scrape(url)  # before the settle time: its own cost stays out of the window
            time.sleep(args.settle)
            w = measure(args.seconds, lambda: tree_cpu_times(run.proc.pid),
                        lambda: udp_bound(*rtp), uas.pid)
            m1 = scrape(url)
            queued, dropped = udp_backlog(descendants(run.proc.pid))
            uas_calls = uas.stat("CurrentCall")
        finally:
            code = run.stop(n)
        calls = calls_in_window(run.out / "calls.jsonl", w.t0, w.t1)
        sockets_up = sum(w.samples) / len(w.samples)  # the fallback without calls.jsonl
        res.fill(w, calls["call_s"] / w.wall if calls["call_s"] else sockets_up)
        res.lag_p99_ms, late, ticks = window_lag(m0, m1)
        res.completed = calls["ended"].get("completed", 0)
        res.failed = sum(v for k, v in calls["ended"].items() if k not in NOT_FAILED)
        summary = run.summary()
        gen, totals = summary.get("generator", {}), summary.get("calls", {})
        run_p99 = (gen.get("media_clock_lag_ms") or {}).get("p99")
        res.notes += [
            f"CPU user {res.user_pct:.1f}% + system {res.sys_pct:.1f}%; RTP sockets up "
            f"{min(w.samples):.0f}-{max(w.samples):.0f}; ticks > {HELD_LAG_MS:g} ms "
            f"{100 * late:.2f}% of {ticks:.0f} (scrape to scrape); UAS calls {uas_calls}",
            f"whole run: {totals.get('started', '?')} calls {totals.get('outcomes', {})}, "
            f"lag p99 {run_p99} ms, saturated {gen.get('saturated')}, exit {code}",
        ]
        if calls["sent"]:
            res.notes.append(f"RTP heard back {calls['received']}/{calls['sent']} "
                             f"({100 * calls['received'] / calls['sent']:.2f}%); at window end "
                             f"{queued} B unread, {dropped} dropped at our sockets")
        if calls["reasons"]:
            res.notes.append(f"failures in window: {calls['reasons']}")
        if not summary:
            res.notes.append(f"no summary.json; loadcaller stderr:\n{run.stderr()[-1500:]}")
    finally:
        uas.stop()
    return res


# ---- SIPp's UAC ----------------------------------------------------------------------------


def run_sipp_uac(n: int, variant: str, args: argparse.Namespace, work: Path) -> Result:
    res = Result("sipp", n, variant)
    up_timeout = 2 * n / args.spawn_rate + 60
    life = up_timeout + args.settle + args.seconds + 120
    length_ms = int(life * 1000 if variant == "long" else args.short_call * 1000)
    rate = args.spawn_rate if variant == "long" else max(args.spawn_rate,
                                                         2 * n / args.short_call)
    uas = start_uas(work / "uas", n, life + 300)
    try:
        (work / "uac").mkdir(parents=True, exist_ok=True)
        pcap_to_ulaw(PCAP, work / "uac" / "g711u.raw")
        uac = Sipp(work / "uac",
                   [f"127.0.0.1:{uas.port}", "-sf", str(UAC_XML), "-l", str(n),
                    "-r", f"{rate:g}", "-d", str(length_ms),
                    "-mp", str(free_udp_port(even_pair=True)), "-max_socket", str(4 * n + 64)],
                   life_s=life)
        try:
            target = n if variant == "long" else HELD_SHARE * n
            reached = wait_up(lambda: uac.stat("CurrentCall"), target, up_timeout, uac.alive)
            if not uac.alive():
                raise RuntimeError(f"sipp UAC exited ({uac.proc.returncode}):\n{uac.tail()}")
            if reached < target:
                res.notes.append(f"only {reached:.0f} of {n} calls up after {up_timeout:.0f}s")
            time.sleep(args.settle)
            s0 = uac.stats()
            w = measure(args.seconds, lambda: cpu_times(uac.pid),
                        lambda: uac.stat("CurrentCall"), uas.pid)
            s1 = uac.stats()
            queued, dropped = udp_backlog([uac.pid])
            uas_calls = uas.stat("CurrentCall")
        finally:
            uac.stop()
        res.fill(w, sum(w.samples) / len(w.samples))
        res.completed = uac.stat("SuccessfulCall(C)", s1) - uac.stat("SuccessfulCall(C)", s0)
        res.failed = uac.stat("FailedCall(C)", s1) - uac.stat("FailedCall(C)", s0)
        res.notes.append(f"CPU user {res.user_pct:.1f}% + system {res.sys_pct:.1f}%; echo at "
                         f"its sockets at window end: {queued} B unread, {dropped} datagrams "
                         f"dropped; UAS calls {uas_calls}")
        if res.failed:
            res.notes.append(uac.tail()[-800:])
    finally:
        uas.stop()
    return res


# ---- main ------------------------------------------------------------------------------------


def _f(v: float, fmt: str = ".2f") -> str:
    return "-" if v != v else format(v, fmt)  # NaN


def print_detail(r: Result) -> None:
    who = f"loadcaller x{r.processes}" if r.side == "ours" else "SIPp UAC"
    lag = f", lag p99 {_f(r.lag_p99_ms)} ms" if r.side == "ours" else ""
    print(f"  {who:<13} {r.variant:<5} {r.calls:>5} calls: CPU {_f(r.cpu_pct, '.1f')}% = "
          f"{_f(r.ms_per_call_s, '.3f')} ms/call-s over {r.mean_up:.0f} calls up{lag}; "
          f"{r.completed} completed, {r.failed} failed in the window; UAS CPU "
          f"{_f(r.uas_cpu_pct, '.1f')}%; loadavg {_f(r.load)}"
          + ("" if r.held else "  (did not hold)"), flush=True)
    for note in r.notes:
        print(f"      {note}", flush=True)


def print_table(rows: list[tuple[Result, Result | None]], short_call: float) -> None:
    print(f"\n{'calls':>5} {'calls last':>10} {'procs':>5} {'ours CPU %':>10} "
          f"{'ours ms/call-s':>14} {'our lag p99 ms':>14} {'SIPp UAC CPU %':>14} "
          f"{'SIPp ms/call-s':>14} {'loadavg ours/SIPp':>17}")
    for r, s in rows:
        length = "the level" if r.variant == "long" else f"{short_call:g} s"
        print(f"{r.calls:>5} {length:>10} {r.processes:>5} {_f(r.cpu_pct, '.1f'):>10} "
              f"{_f(r.ms_per_call_s, '.3f'):>14} {_f(r.lag_p99_ms):>14} "
              f"{_f(s.cpu_pct, '.1f') if s else '-':>14} "
              f"{_f(s.ms_per_call_s, '.3f') if s else '-':>14} "
              f"{_f(r.load) + '/' + (_f(s.load) if s else '-'):>17}"
              + ("" if r.held else "  did not hold"))
    print(f"\nGoal: 1,000 calls in one process with lag p99 < {HELD_LAG_MS:g} ms at no more CPU "
          "per call-second than SIPp's UAC (which does not read the echo). CPU % is of one "
          "core; lag p99 is the window's.")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, nargs="+", default=[200, 500, 1000])
    ap.add_argument("--seconds", type=float, default=30.0, help="measurement window per run")
    ap.add_argument("--variants", nargs="+", choices=("long", "short"), default=["long", "short"])
    ap.add_argument("--spawn-rate", type=float, default=100.0, help="calls started per second")
    ap.add_argument("--short-call", type=float, default=12.0, metavar="S",
                    help="call length of the short variant (s)")
    ap.add_argument("--settle", type=float, default=3.0, metavar="S",
                    help="wait after the calls are up, before the window")
    ap.add_argument("--processes", type=int, nargs="+",
                    help="loadcaller --processes values to run (default: 1, then 2 where 1 "
                    "did not hold)")
    ap.add_argument("--no-sipp-uac", action="store_true", help="skip SIPp's UAC")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    if shutil.which("sipp") is None:
        print("sipp not found (apt-get install sip-tester)", file=sys.stderr)
        return 1
    raise_fd_limit(max(args.calls))
    work = tempdir()
    print(f"SIP scale on 127.0.0.1, {os.cpu_count()} CPUs: {args.seconds:g} s windows, "
          f"{args.spawn_rate:g} calls/s spawn; work dir {work}", flush=True)
    rows: list[tuple[Result, Result | None]] = []
    try:
        for n in args.calls:
            for variant in args.variants:
                ours: list[Result] = []
                for procs in args.processes or [1, 2]:
                    if not args.processes and procs == 2 and ours[-1].held:
                        break
                    try:
                        r = run_ours(n, variant, procs, args, work / f"ours-{n}-{variant}-{procs}")
                    except (RuntimeError, OSError) as exc:
                        r = Result("ours", n, variant, procs, notes=[f"run failed: {exc}"])
                    print_detail(r)
                    ours.append(r)
                sipp = None
                if not args.no_sipp_uac:
                    try:
                        sipp = run_sipp_uac(n, variant, args, work / f"sipp-{n}-{variant}")
                    except (RuntimeError, OSError) as exc:
                        sipp = Result("sipp", n, variant, notes=[f"run failed: {exc}"])
                    print_detail(sipp)
                rows += [(r, sipp) for r in ours]
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print_table(rows, args.short_call)
    return 0


if __name__ == "__main__":
    sys.exit(main())
