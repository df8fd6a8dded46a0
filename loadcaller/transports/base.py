"""The one interface every transport implements (Twilio stream, SIP, WebRTC, PSTN).

A transport is one call's media session, seen from the caller:

- :meth:`CallTransport.connect` sets the call up, or raises
  :class:`~loadcaller.errors.SetupFailed` with a reason (the agent's failure:
  refused, rejected, timed out) or :class:`~loadcaller.errors.LocalSetupError`
  (ours: out of file descriptors or ports; :func:`local_os_error` tells them apart);
- the media clock calls :meth:`send_audio` every 20 ms with a 160-byte mu-law
  frame; the transport encodes it for its wire (base64 JSON, RTP PCMU/PCMA, Opus);
- the media clock calls :meth:`heard` on the same tick to collect the agent's
  audio as the caller hears it: frames stamped with the instant their playout
  began (a Twilio playout queue, an RTP receive window, a WebRTC track);
- :attr:`ended` resolves when the far end or the network ends the call, with a
  :class:`CallEnd` that classifies it;
- :meth:`hangup` ends the call from our side (Twilio ``stop``, SIP BYE).

``send_audio`` and ``heard`` are synchronous and never block: they run inside
the media clock's tick for hundreds of calls.

Each transport also has a target: a pydantic model in the profile's ``target:``
union, keyed by ``transport``, that validates its own URL and builds the
transport for each call (:class:`Target`).
"""

from __future__ import annotations

import abc
import asyncio
import errno
import os
import resource
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from chaos.packet import Impairment
from loadcaller.errors import LocalSetupError
from loadcaller.media.frames import PlayedFrame
from loadcaller.media.outcomes import CallOutcome


def local_os_error(exc: OSError, what: str) -> LocalSetupError | None:
    """The error on our side that ``exc`` (raised while ``what``) is, with what to change.

    Running out of file descriptors or of local ports is this machine's limit,
    not the agent's failure; any other OSError (refused, unreachable, reset)
    returns None.
    """
    code = exc.errno
    if code == errno.EMFILE:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        return LocalSetupError(
            f"local: too many open files in this process (EMFILE, limit {soft}) {what}: "
            "raise ulimit -n, or spread the callers over more processes (--processes)")
    if code == errno.ENFILE:
        return LocalSetupError(
            f"local: the system's open-file table is full (ENFILE) {what}: raise fs.file-max "
            "(sysctl) or run fewer callers on this machine")
    if code == errno.EADDRNOTAVAIL:
        return LocalSetupError(
            f"local: no local address or port available (EADDRNOTAVAIL) {what}: out of "
            "ephemeral ports? widen net.ipv4.ip_local_port_range, or spread the callers "
            "over more machines")
    return None


@dataclass(frozen=True, slots=True)
class CallEnd:
    """Why a call ended, when the far end or the network ended it."""

    outcome: CallOutcome
    reason: str


class CallTransport(abc.ABC):
    """One call's media session (see the module docstring)."""

    name: ClassVar[str]

    def __init__(self) -> None:
        self.ended: asyncio.Future[CallEnd] = asyncio.get_running_loop().create_future()
        # when the call was answered, taken where the answer arrived (a SIP 200, a WebRTC
        # connection state), not when connect() resumed: a busy loop resumes it late,
        # and the agent's greeting may already have been heard by then
        self.answered_ns: int | None = None

    @property
    def remote_id(self) -> str:
        """An identifier the agent also sees (Twilio callSid, SIP Call-ID)."""
        return ""

    @property
    def media_stats(self) -> dict[str, Any] | None:
        """Per-call media figures for calls.jsonl (packets, loss, jitter, MOS), if any."""
        return None

    @property
    def transcripts(self) -> list[tuple[int, str]] | None:
        """The agent's own words as ``(arrival ns, text)``, when it sends them beside its
        audio (a WebRTC data channel's RTVI messages); turns.jsonl gives each turn its own."""
        return None

    @abc.abstractmethod
    async def connect(self) -> None:
        """Set the call up; raise SetupFailed with a reason."""

    @abc.abstractmethod
    def send_audio(self, frame: bytes) -> None:
        """Send one 20 ms mu-law frame now."""

    @abc.abstractmethod
    def heard(self, now_ns: int) -> list[PlayedFrame]:
        """The agent's frames whose playout began by ``now_ns``."""

    def silence_note(self) -> str:
        """What the transport saw that explains an agent gone quiet ("" if nothing): a
        call ending ``no_response`` gets it in its reason, so that a vanished agent
        (its media stopped, our hangup unanswered) reads differently from a slow one."""
        return ""

    def with_impairment(self, *, outbound: Impairment | None,
                        inbound: Impairment | None) -> CallTransport:
        """This transport with packet models on its media (a profile's ``media:``).

        The default wraps it and impairs whole 20 ms frames
        (:class:`~loadcaller.media.impair.ImpairedTransport`); a packet transport
        (SIP/RTP) overrides this to impair its datagrams, so that sequence numbers,
        loss and jitter figures see what a network would do.
        """
        from loadcaller.media.impair import ImpairedTransport

        return ImpairedTransport(self, outbound=outbound, inbound=inbound)

    def send_dtmf(self, digit: str) -> None:  # pragma: no cover - per transport
        """Send a DTMF digit."""
        raise NotImplementedError(f"{self.name} does not send DTMF yet")

    @abc.abstractmethod
    async def hangup(self) -> None:
        """End the call from the caller's side."""

    def _end(self, outcome: CallOutcome, reason: str) -> None:
        if not self.ended.done():
            self.ended.set_result(CallEnd(outcome, reason))


class Target(BaseModel, abc.ABC):
    """Where and how to reach the agent over one transport (a profile's ``target:``).

    Subclasses add ``transport: Literal[...]`` (the union's key) and their own
    fields and URL check; ``schemes`` are the URL schemes ``--target`` maps to it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    schemes: ClassVar[tuple[str, ...]] = ()

    transport: str
    url: str

    @abc.abstractmethod
    def new_transport(self, *, call_id: str) -> CallTransport:
        """A transport for one call (inside the running loop)."""

    def per_process(self) -> tuple[int, str] | None:
        """(calls one process carries, what they are called), or None when no figure is
        known. Over that many callers ``loadcaller run`` spreads them over processes
        (:func:`default_processes`) unless ``--processes`` is given."""
        return None


_CLOSERS: list[Callable[[], Awaitable[None]]] = []


def on_engine_close(closer: Callable[[], Awaitable[None]]) -> None:
    """Have the engine await ``closer`` when it closes: what a transport's calls share in
    one process (PSTN's media-stream server and REST client) ends with the run."""
    if closer not in _CLOSERS:
        _CLOSERS.append(closer)


async def close_shared() -> None:
    """Await every :func:`on_engine_close` closer (the engine's last step)."""
    for closer in list(_CLOSERS):
        await closer()


def default_processes(users: int, target: Target) -> tuple[int, str]:
    """Worker processes for ``users`` callers when --processes is not given.

    One process carries ``target.per_process()`` calls at most (a figure from
    benchmarks/, set below what held on a 2-core machine); the count is capped at
    the CPU count. 0 means one process is enough (run in place).
    """
    known = target.per_process()
    if known is None:
        return 0, ""
    per, what = known
    cpus = os.cpu_count() or 1
    procs = min(cpus, -(-users // per))
    if procs <= 1:
        return 0, ""
    return procs, (f"{users} {what} callers over {procs} processes (at most {per} per "
                   f"process, {cpus} CPUs; --processes overrides)")
