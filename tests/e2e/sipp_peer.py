"""SIPp as the far end of `loadcaller run` over SIP: start it, read what it saw.

SIPp (Debian package sip-tester) is a SIP peer someone else wrote; it checks
the protocol strictly (an unexpected message fails its call) and counts its
calls itself. Each test starts its own SIPp on free ports of 127.0.0.1, in its
own directory, with a bound on everything: ``-timeout`` caps SIPp's whole life,
``-m N`` ends it after N calls, and :meth:`Sipp.stop` escalates from SIGUSR1
(finish the calls in progress) to SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import errno
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.peers import missing_peer, require_binary

from .conftest import run_cli
from .ports import free_port, free_span, free_tcp_port

SCENARIOS = Path(__file__).resolve().parent / "sipp"
PCAP_DIR = Path("/usr/share/sip-tester")  # pcaps shipped with sip-tester
PCAP_G711A = PCAP_DIR / "g711a.pcap"
RUN_ARGS = ("--progress-every", "0", "--metrics-port", "-1")


def sipp_binary() -> str:
    """The sipp executable; a missing one fails under CI and skips elsewhere."""
    return require_binary("sipp", "sip-tester")


def require_pcap(path: Path) -> Path:
    """A pcap shipped with sip-tester (for SIPp's play_pcap_audio)."""
    if not path.exists():
        missing_peer(f"{path} is missing: install the Debian package sip-tester "
                     "(apt-get install sip-tester)")
    return path


# ---- ports --------------------------------------------------------------------------


def free_udp_port(*, even_pair: bool = False) -> int:
    """A UDP port free on 127.0.0.1 now (with ``even_pair``: even, and port + 2 free too,
    as SIPp's ``-rtp_echo`` binds both)."""
    return free_span(3, step=2) if even_pair else free_port()


def free_rtp_range(calls: int) -> str:
    """A ``rtp_ports`` range whose even ports are all free now, for ``calls`` calls
    (the tests' calls stay clear of each other's and of other runs' ports)."""
    span = 2 * calls + 8
    base = free_span(span, step=2)
    return f"{base}-{base + span - 1}"


# ---- profiles -----------------------------------------------------------------------

TWO_TURNS = ("say: {phrase: hello_order}", "wait_for_agent",
             "say: {phrase: thanks_bye}", "wait_for_agent", "hangup")
ONE_TURN = ("say: {phrase: hello_order}", "wait_for_agent", "hangup")


def sip_profile(path: Path, *, url: str, users: int = 1, duration: str = "0.5s",
                steps: tuple[str, ...] = TWO_TURNS, target: str = "",
                turn_timeout: str = "3s", setup_timeout: str = "5s",
                no_media_timeout: str = "3s") -> Path:
    """A small SIP profile: ``users`` callers, each placing one call (``duration``
    shorter than a call), the given steps, short timeouts. ``target`` adds fields."""
    rtp = free_rtp_range(users)
    fields = f'transport: sip, url: "{url}", rtp_ports: "{rtp}", setup_timeout: {setup_timeout}'
    fields += f", no_media_timeout: {no_media_timeout}{', ' + target if target else ''}"
    body = "\n".join(f"      - {s}" for s in steps)
    path.write_text(
        f"""name: sipp
target: {{{fields}}}
load: {{users: {users}, spawn_rate: 200, duration: {duration}, stop_timeout: 30s}}
call: {{turn_timeout: {turn_timeout}, give_up_after_no_response: 2, max_call_duration: 60s}}
scenarios:
  - name: s
    steps:
{body}
"""
    )
    return path


async def run_loadcaller(profile: Path, out: Path, *extra: str, timeout: float = 90,
                         env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """`loadcaller run PROFILE` into ``out``, no progress lines, no /metrics port."""
    return await run_cli("run", str(profile), "--results-dir", str(out), *RUN_ARGS, *extra,
                         timeout=timeout, env=env)


# ---- SIPp ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SipMessage:
    """One message in SIPp's ``-trace_msg`` log, as SIPp saw it."""

    sent: bool  # by SIPp (else received from us)
    text: str

    @property
    def first_line(self) -> str:
        return self.text.split("\r\n", 1)[0].split("\n", 1)[0].strip()

    @property
    def method(self) -> str:
        """The request method, or "" for a response."""
        word = self.first_line.split(" ", 1)[0]
        return "" if word.startswith("SIP/") else word

    @property
    def status(self) -> int:
        """The response status, or 0 for a request."""
        parts = self.first_line.split(" ", 2)
        return int(parts[1]) if parts[0].startswith("SIP/") else 0

    def header(self, name: str) -> str | None:
        """The first header ``name`` (case-insensitive), or None."""
        head = self.text.split("\n\n", 1)[0]
        for line in head.splitlines()[1:]:
            key, sep, value = line.partition(":")
            if sep and key.strip().lower() == name.lower():
                return value.strip()
        return None

    @property
    def body(self) -> str:
        return self.text.split("\n\n", 1)[1].strip() if "\n\n" in self.text else ""


class Sipp:
    """One SIPp process as a UAS on 127.0.0.1 (see the module docstring)."""

    def __init__(self, workdir: Path, scenario: str | Path, *, calls: int | None = None,
                 rtp_echo: bool = False, keys: dict[str, str] | None = None,
                 life_s: int = 60, tcp: bool = False) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tcp = tcp  # SIP over TCP (``-t t1``)
        self.port = free_tcp_port() if tcp else free_udp_port()
        self.media_port = free_udp_port(even_pair=True)
        self.url = f"sip:service@127.0.0.1:{self.port}" + (";transport=tcp" if tcp else "")
        xml = scenario if isinstance(scenario, Path) else SCENARIOS / f"{scenario}.xml"
        args = ["-sf", str(xml)] if xml.exists() else ["-sn", str(scenario)]
        if tcp:
            args += ["-t", "t1"]
        args += ["-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", str(self.port),
                 "-mp", str(self.media_port), "-nostdin", "-timeout", f"{life_s}s",
                 "-trace_err", "-error_file", "errors.log",
                 "-trace_msg", "-message_file", "messages.log",
                 "-trace_stat", "-stf", "stats.csv", "-fd", "1"]
        if calls is not None:
            args += ["-m", str(calls)]
        if rtp_echo:
            args.append("-rtp_echo")
        for key, value in (keys or {}).items():
            args += ["-key", key, value]
        self.args = [sipp_binary(), *args]
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Sipp:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start SIPp and wait (at most 10 s) until it listens on its SIP port (UDP, or
        TCP with ``tcp``)."""
        with (self.dir / "stdout.log").open("wb") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *self.args, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT)
        kind = socket.SOCK_STREAM if self.tcp else socket.SOCK_DGRAM
        for _ in range(200):
            if self.proc.returncode is not None:
                raise AssertionError(f"sipp exited with {self.proc.returncode} at start:\n"
                                     f"{self.output()}")
            with socket.socket(socket.AF_INET, kind) as s:
                try:
                    s.bind(("127.0.0.1", self.port))
                except OSError as exc:
                    if exc.errno == errno.EADDRINUSE:
                        return
                    raise
            await asyncio.sleep(0.05)
        raise AssertionError(f"sipp did not bind 127.0.0.1:{self.port} within 10 s")

    async def wait(self, timeout: float = 15) -> int:
        """SIPp's exit code once it ends by itself (``-m N``), stopping it after ``timeout``."""
        assert self.proc is not None
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            await self.stop()
            raise AssertionError(f"sipp did not exit within {timeout:g}s:\n"
                                 f"{self.errors()}") from None

    async def stop(self, *, now: bool = False) -> int | None:
        """SIGUSR1 (finish the calls in progress), then SIGTERM, then SIGKILL;
        ``now``: begin with SIGTERM (a call still in progress is abandoned)."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return None if proc is None else proc.returncode
        steps = ((signal.SIGUSR1, 6.0), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0))
        for sig, grace in steps[1:] if now else steps:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                return await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                continue
        return proc.returncode

    # ---- what SIPp saw ------------------------------------------------------------

    def output(self) -> str:
        path = self.dir / "stdout.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def errors(self) -> str:
        """SIPp's ``-trace_err`` log: unexpected messages, failed checks."""
        path = self.dir / "errors.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def messages(self) -> list[SipMessage]:
        """Every SIP message SIPp sent or received, in order."""
        path = self.dir / "messages.log"
        if not path.exists():
            return []
        out = []
        for block in path.read_text(errors="replace").split("-" * 47 + " ")[1:]:
            lines = block.split("\n")
            if len(lines) < 3:
                continue
            what = lines[1]
            text = "\n".join(lines[3:]).strip("\n").replace("\r\n", "\n")
            out.append(SipMessage(sent="message sent" in what, text=text))
        return out

    def received(self, method: str = "", status: int = 0) -> list[SipMessage]:
        """Messages from us: requests named ``method`` or responses with ``status``."""
        return [m for m in self.messages() if not m.sent and (
            (method and m.method == method) or (status and m.status == status))]

    def stats_rows(self) -> list[dict[str, str]]:
        """SIPp's ``-trace_stat`` file (a row per ``-fd`` period), by column name."""
        path = self.dir / "stats.csv"
        rows = list(csv.reader(path.read_text().splitlines(), delimiter=";"))
        assert len(rows) >= 2, f"no statistics from sipp:\n{self.output()}"
        return [dict(zip(rows[0], row, strict=False)) for row in rows[1:]]

    def stats(self) -> dict[str, str]:
        """The last (final, once SIPp has exited) row of its statistics."""
        return self.stats_rows()[-1]

    def report(self) -> str:
        """Everything worth printing when an assertion about SIPp fails."""
        return f"--- sipp errors\n{self.errors()[-3000:]}\n--- sipp output\n{self.output()}"


def scenario_copy(directory: Path, name: str, replace: dict[str, str]) -> Path:
    """tests/e2e/sipp/NAME.xml written into ``directory`` with text replaced."""
    text = (SCENARIOS / f"{name}.xml").read_text()
    for old, new in replace.items():
        assert old in text, f"{old!r} not in {name}.xml"
        text = text.replace(old, new)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.xml"
    path.write_text(text)
    return path


def sip_first_lines(messages: list[SipMessage]) -> Iterator[str]:
    """``">"`` + first line for what SIPp sent, ``"<"`` for what it received."""
    for m in messages:
        yield ("> " if m.sent else "< ") + m.first_line
