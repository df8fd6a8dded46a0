"""The call runner on a real media clock with a fake transport: how calls end."""

from __future__ import annotations

import asyncio
import errno

import pytest

from loadcaller.calls.call import Call, CallRecord
from loadcaller.calls.clock import MediaClock
from loadcaller.calls.scenario import CallPolicy, Dtmf, Pause, Scenario
from loadcaller.errors import LocalSetupError, SetupFailed
from loadcaller.media.frames import PlayedFrame
from loadcaller.media.outcomes import CallOutcome
from loadcaller.transports.base import CallTransport


class FakeTransport(CallTransport):
    name = "fake"

    def __init__(self, *, fail_after: int | None = None) -> None:
        super().__init__()
        self.fail_after = fail_after
        self.sent = 0
        self.digits: list[str] = []
        self.hung_up = False

    async def connect(self) -> None:
        pass

    def send_audio(self, frame: bytes) -> None:
        self.sent += 1
        if self.fail_after is not None and self.sent > self.fail_after:
            raise RuntimeError("boom")

    def heard(self, now_ns: int) -> list[PlayedFrame]:
        return []

    def send_dtmf(self, digit: str) -> None:
        self.digits.append(digit)

    async def hangup(self) -> None:
        self.hung_up = True


async def place(transport: FakeTransport, *steps: object) -> tuple[Call, MediaClock]:
    clock = MediaClock()
    clock.start()
    call = Call(call_id="c1", transport=transport, scenario=Scenario("s", steps),  # type: ignore[arg-type]
                clock=clock, policy=CallPolicy(max_call_ns=5_000_000_000))
    try:
        async with asyncio.timeout(10):
            await call.run()
    finally:
        await clock.stop()
    return call, clock


async def test_a_call_runs_its_script_on_the_clock_and_hangs_up():
    transport = FakeTransport()
    call, _ = await place(transport, Dtmf("7"), Pause(200_000_000))
    assert call.record.outcome == CallOutcome.COMPLETED
    assert transport.digits == ["7"] and transport.hung_up
    assert 8 <= transport.sent <= 14  # 200 ms of frames, 20 ms apart


async def test_an_exception_in_our_tick_ends_the_call_as_an_error_not_a_silent_hang():
    transport = FakeTransport(fail_after=3)
    call, clock = await place(transport, Pause(3_000_000_000))
    assert call.record.outcome == CallOutcome.ERROR
    assert call.record.reason == "local: RuntimeError: boom"
    assert clock.member_errors == 1 and transport.hung_up


class FailingSetup(FakeTransport):
    def __init__(self, exc: BaseException) -> None:
        super().__init__()
        self.exc = exc

    async def connect(self) -> None:
        raise self.exc


SETUP_FAILURES = [
    # what connect() raises, outcome, the reason starts with
    (SetupFailed("websocket upgrade rejected: HTTP 403"), "failed_setup", "websocket upgrade"),
    (SetupFailed("local: RTP port range 1-2 exhausted"), "error", "local: RTP port range"),
    (LocalSetupError("local: out of ports"), "error", "local: out of ports"),
    (OSError(errno.EMFILE, "Too many open files"), "error",
     "local: too many open files in this process (EMFILE"),
    (OSError(errno.ENFILE, "Too many open files in system"), "error",
     "local: the system's open-file table is full"),
    (OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address"), "error",
     "local: no local address or port available"),
    (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), "failed_setup",
     "setup failed: [Errno 111]"),
    (OSError(errno.EACCES, "Permission denied"), "error", "local: PermissionError during setup"),
    (UnicodeError("encoding with 'idna' codec failed"), "error",
     "local: UnicodeError during setup"),
    (RuntimeError("a bug"), "error", "local: RuntimeError during setup: a bug"),
]


@pytest.mark.parametrize(("exc", "outcome", "reason"), SETUP_FAILURES,
                         ids=[type(c[0]).__name__ + "-" + c[1] for c in SETUP_FAILURES])
async def test_whatever_setup_raises_is_the_call_s_outcome_and_reason(exc, outcome, reason):
    transport = FailingSetup(exc)
    finished: list[CallRecord] = []
    call = Call(call_id="c1", transport=transport, scenario=Scenario("s", (Pause(1),)),
                clock=MediaClock(), on_finish=finished.append)
    rec = await call.run()  # never raises
    assert (rec.outcome, rec.reason[:len(reason)]) == (outcome, reason), rec.reason
    assert finished == [rec] and rec.setup_ns is None
    # a transport that raised what it should have cleaned up; otherwise it is hung up
    assert transport.hung_up != isinstance(exc, (SetupFailed, LocalSetupError))


class WrapsTheOSError(FakeTransport):
    """As the SIP transport does: ``raise SetupFailed(...) from None`` inside ``except``."""

    async def connect(self) -> None:
        try:
            raise OSError(errno.EMFILE, "Too many open files")
        except OSError as exc:
            raise SetupFailed(f"TCP connect to 127.0.0.1:5060 failed: {exc}") from None


async def test_a_setup_failure_that_wraps_running_out_of_files_is_still_ours():
    rec = await Call(call_id="c1", transport=WrapsTheOSError(), scenario=Scenario("s", ()),
                     clock=MediaClock()).run()
    assert rec.outcome == "error"
    assert rec.reason.startswith("local: too many open files in this process (EMFILE")
    assert rec.reason.endswith("[TCP connect to 127.0.0.1:5060 failed: [Errno 24] "
                               "Too many open files]")


async def test_what_emfile_tells_the_user_to_change():
    rec = await Call(call_id="c1", transport=FailingSetup(OSError(errno.EMFILE, "x")),
                     scenario=Scenario("s", ()), clock=MediaClock()).run()
    assert "raise ulimit -n" in rec.reason and "--processes" in rec.reason


class NoDtmf(FakeTransport):
    def send_dtmf(self, digit: str) -> None:
        raise NotImplementedError("no DTMF here")


async def test_an_exception_after_setup_ends_the_call_as_a_local_error():
    transport = NoDtmf()
    call, _ = await place(transport, Dtmf("1"), Pause(200_000_000))
    assert call.record.outcome == CallOutcome.ERROR
    assert call.record.reason == "local: NotImplementedError: no DTMF here"
    assert call.record.setup_ns is not None and transport.hung_up
